"""Column pair trends: correlation similarity for two continuous columns, contingency similarity otherwise.

Follows SDMetrics' ``ColumnPairTrends`` property (``sdmetrics/reports/single_table/_properties/
column_pair_trends.py``) so that the numbers agree with its QualityReport on the same data:

* continuous = numerical or datetime, discrete = categorical, code or boolean (from the schema);
* two continuous columns: CorrelationSimilarity ``1 - |r_real - r_syn| / 2`` with Pearson's r on the rows
  where both are present, datetimes as numbers; a column that is constant on either side is left out;
* otherwise ContingencySimilarity ``1 - 0.5 * sum_{a,b} |P_real(a, b) - P_syn(a, b)|`` over the joint
  frequency table with missing values as a category; a continuous column is first cut into the 10
  equal-width bins of ``numpy.histogram_bin_edges`` over *that side's own* range, and ``numpy.digitize``
  puts a missing value in bin 11, together with the maximum (both SDMetrics behaviours, kept so that the
  values agree);
* the property averages only pairs that are strong in the real data: ``|r_real| > 0.5`` for correlations
  and Cramér's V ``> 0.3`` for contingency tables (SDMetrics' defaults; options
  ``real_correlation_threshold`` and ``real_association_threshold``, 0 to average every pair).

Unlike SDMetrics, contingency tables are computed on all rows (its report samples 50,000 rows). DuckDB
reads and types the columns and streams them as Arrow record batches of at most ``BATCH_ROWS`` rows; each
chunk becomes small integer codes (``numpy.digitize`` for the bins, the very function SDMetrics calls)
whose joint counts are accumulated with ``numpy.bincount``, one count per column and bundle of partner
columns whose pair tables are its marginals (sorted unique keys for joint tables too large to hold), so
memory stays bounded by the chunk and the count tables. On Spark the engine counts the same codes itself
(``GROUP BY GROUPING SETS``, a set per bundle) and only the non-empty cells reach Python.
Slots of repeated column groups (``ICD9_DGNS_CD_1..10``) are not paired with each other or with other
columns; their codes are compared by ``fidelity.code_hierarchy``.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.model import Column
from data_schemas.rules import quote
from evaluate.context import EvalContext
from evaluate.fidelity._common import SHAPES, mean, mean_result, numeric_expr, require_rows, scalar, split_columns, value_expr
from evaluate.fidelity.parallel import parallel_map
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped
from synth.engine import is_spark

NAME = "fidelity.column_pair_trends"
DISCRETE_BINS = 10


def bin_edges(low: float | None, high: float | None, bins: int = DISCRETE_BINS) -> np.ndarray:
    """``numpy.histogram_bin_edges`` of a column with this min and max (None: no values), as SDMetrics bins."""
    data = np.array([], dtype=float) if low is None or high is None else np.array([low, high], dtype=float)
    return np.histogram_bin_edges(data, bins=bins)


def _side_stats(
    con: duckdb.DuckDBPyConnection, relation: str, columns: list[Column]
) -> tuple[int, dict[str, tuple[int, float | None, float | None, float | None]]]:
    """Rows, and per column (non-null count, min, max in ns for datetimes as SDMetrics sees them, mean in
    the correlation unit: seconds for datetimes)."""
    parts = ["count(*)"]
    for col in columns:
        if SHAPES[col.type] == "continuous":
            num = numeric_expr(col, datetime_unit="ns")
            parts.extend([f"count({num})", f"min({num})", f"max({num})", f"avg({numeric_expr(col)})"])
        else:
            parts.extend([f"count({value_expr(col)})", "NULL", "NULL", "NULL"])
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchall()[0]
    out = {}
    for i, col in enumerate(columns):
        nn, lo, hi, avg = row[1 + 4 * i : 5 + 4 * i]
        out[col.name] = (int(nn), *(None if v is None else float(v) for v in (lo, hi, avg)))
    return int(row[0]), out  # type: ignore[return-value]


def _pearson(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    pairs: list[tuple[Column, Column]],
    centers: dict[str, float],
    nullable: set[str],
) -> list[float | None]:
    """Pearson's r (Pearson 1896) of each pair on the rows where both are present, in one pass.

    Pairs of columns without missing values use sums of shifted values ``x' = x - c_x`` (c = the column
    mean, which keeps the sums well conditioned): ``r = (S_xy - S_x S_y / n) / sqrt((S_xx - S_x^2 / n)
    (S_yy - S_y^2 / n))``, each column's sums shared by all its pairs; pairs with a nullable column use
    DuckDB's ``corr`` on complete rows. None where r is undefined (n < 2 or no variance).
    """
    if not pairs:
        return []
    shifted = {c.name: f"({numeric_expr(c)} - {float(centers.get(c.name) or 0.0)!r})" for p in pairs for c in p}
    parts: list[str] = ["count(*)"]
    single: dict[str, tuple[int, int]] = {}
    slots: list[tuple[str, Any]] = []

    def add(sql: str) -> int:
        parts.append(sql)
        return len(parts) - 1

    for a, b in pairs:
        if a.name in nullable or b.name in nullable:
            slots.append(("corr", add(f"corr({numeric_expr(a)}, {numeric_expr(b)})")))
            continue
        for c in (a, b):
            if c.name not in single:
                e = shifted[c.name]
                single[c.name] = (add(f"sum({e})"), add(f"sum({e} * {e})"))
        xy = add(f"sum({shifted[a.name]} * {shifted[b.name]})")
        slots.append(("sums", (single[a.name], single[b.name], xy)))
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchall()[0]
    n = float(row[0] or 0)
    out: list[float | None] = []
    for kind, ref in slots:
        if kind == "corr":
            v = row[ref]
            out.append(None if v is None or not math.isfinite(v) else max(-1.0, min(1.0, float(v))))
            continue
        (ix, ixx), (iy, iyy), ixy = ref
        if n < 2:
            out.append(None)
            continue
        sx, sy = float(row[ix] or 0.0), float(row[iy] or 0.0)
        vxx = float(row[ixx] or 0.0) - sx * sx / n
        vyy = float(row[iyy] or 0.0) - sy * sy / n
        cxy = float(row[ixy] or 0.0) - sx * sy / n
        if not (vxx > 0 and vyy > 0) or not all(math.isfinite(v) for v in (vxx, vyy, cxy)):
            out.append(None)
            continue
        out.append(max(-1.0, min(1.0, cxy / math.sqrt(vxx * vyy))))
    return out


DENSE_CELLS = 1 << 21
GROUP_CELLS = 1 << 23
"""Dense cells counted in one pass over a side (64 MiB of int64 counts); more pairs take more passes."""
"""Largest joint table (cells) counted as a dense array; larger ones are counted as sorted unique keys."""
BATCH_ROWS = 1 << 20
COUNT_ON_ENGINE: bool | None = None
"""Where the SQL path counts pair tables: None = on the engine when it is Spark (the rows never leave the
executors), streamed to numpy on DuckDB (in-process, as fast); True / False force one (tests hold them equal)."""


def _dictionaries(con: duckdb.DuckDBPyConnection, real: str, synthetic: str, columns: list[Column]) -> dict[str, pa.Array]:
    """The distinct non-null values of each category column over both sides (their order is irrelevant:
    codes only have to be the same on both sides)."""
    out = {}
    for col in columns:
        v = value_expr(col)
        table = con.sql(
            f"SELECT CAST(v AS VARCHAR) AS v FROM (SELECT {v} AS v FROM {real} UNION SELECT {v} FROM {synthetic}) WHERE v IS NOT NULL"
        ).to_arrow_table()
        out[col.name] = table.column("v").combine_chunks()
    return out


def _codes(column: Column, values: pa.Array, dictionary: pa.Array | None, edges: np.ndarray | None) -> np.ndarray:
    """Small integer codes of one batch of a column: category -> 1 + its index in the dictionary (0 when
    missing), boolean -> 1/2 (0 when missing), continuous -> ``numpy.digitize`` on that side's edges (the
    very function SDMetrics calls; a missing value, NaN here, goes to bin ``len(edges)``)."""
    if SHAPES[column.type] == "continuous":
        assert edges is not None
        return np.digitize(values.to_numpy(zero_copy_only=False), edges).astype(np.int64)
    if column.type == "boolean":
        ints = pc.cast(values, pa.int8()).fill_null(-1)
    else:
        assert dictionary is not None
        ints = pc.index_in(values, value_set=dictionary).fill_null(-1)
    return ints.to_numpy(zero_copy_only=False).astype(np.int64) + 1


class _Bundle:
    """Dense joint counts of an anchor column with one or more partner columns, on one side.

    One ``numpy.bincount`` per chunk counts the anchor with all its partners at once; the table of the
    anchor with each partner is then a marginal of that joint (Fienberg 1970: marginal tables of a
    multi-way table), so k pairs cost one pass instead of k.
    """

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.counts = np.zeros(int(np.prod(sizes)), dtype=np.int64)

    def add(self, codes: list[np.ndarray], weights: np.ndarray | None = None) -> None:
        """Count rows of codes (``weights``: each row stands for that many, as the engine's grouped counts)."""
        key = codes[0]
        for size, code in zip(self.sizes[1:], codes[1:]):
            key = key * size + code
        if weights is None:
            self.counts += np.bincount(key, minlength=len(self.counts))
        else:
            self.counts += np.bincount(key, weights=weights, minlength=len(self.counts)).astype(np.int64)

    def table(self, partner: int) -> np.ndarray:
        """The (anchor, partner) table, partner counted from 1."""
        joint = self.counts.reshape(self.sizes)
        axes = tuple(i for i in range(1, len(self.sizes)) if i != partner)
        return joint.sum(axis=axes) if axes else joint


class _Sparse:
    """Joint counts of two columns whose table is too large to hold densely: the sorted keys and the
    counts of the non-empty cells, merged chunk by chunk."""

    def __init__(self, size_a: int, size_b: int) -> None:
        self.size_a = size_a
        self.size_b = size_b
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    def add(self, codes: list[np.ndarray], weights: np.ndarray | None = None) -> None:
        if weights is None:
            keys, counts = np.unique(codes[0] * self.size_b + codes[1], return_counts=True)
        else:
            keys, inverse = np.unique(codes[0] * self.size_b + codes[1], return_inverse=True)
            counts = np.bincount(inverse, weights=weights, minlength=len(keys)).astype(np.int64)
        if len(self.keys):
            keys, inverse = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
            counts = np.bincount(inverse, weights=np.concatenate([self.counts, counts]), minlength=len(keys)).astype(np.int64)
        self.keys, self.counts = keys, counts


def plan_bundles(
    pairs: list[tuple[Column, Column]], sizes: dict[str, int], *, cells: int = DENSE_CELLS
) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Group pairs by anchor (their first column) into bundles whose joint table has at most ``cells``
    cells: [(columns, pairs)], columns = anchor then partners. A pair too large even alone is its own
    bundle of two (counted sparsely)."""
    by_anchor: dict[str, list[str]] = {}
    for a, b in pairs:
        by_anchor.setdefault(a.name, []).append(b.name)
    plan: list[tuple[list[str], list[tuple[str, str]]]] = []
    for anchor, partners in by_anchor.items():
        current: list[str] = []
        size = sizes[anchor]
        for b in sorted(partners, key=lambda n: (sizes[n], n)):
            if current and size * sizes[b] > cells:
                plan.append(([anchor, *current], [(anchor, c) for c in current]))
                current, size = [], sizes[anchor]
            current.append(b)
            size *= sizes[b]
        if current:
            plan.append(([anchor, *current], [(anchor, c) for c in current]))
    return plan


def _stream_counts(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: list[Column],
    plan: list[tuple[list[str], list[tuple[str, str]]]],
    sizes: dict[str, int],
    dictionaries: dict[str, pa.Array],
    edges: dict[str, np.ndarray],
) -> dict[tuple[str, str], np.ndarray | _Sparse]:
    """Joint counts of every planned pair on one side, from record batches of about ``BATCH_ROWS`` rows.

    DuckDB reads, types and casts the columns; each chunk becomes integer codes counted with
    ``numpy.bincount``, so memory stays bounded by the chunk and the tables of counts.
    """
    selects = [f"{v} AS {quote(col.name)}" for col, v in zip(columns, _pair_values(columns))]
    counters = [_counter([sizes[c] for c in cols]) for cols, _ in plan]
    reader = con.sql(f"SELECT {', '.join(selects)} FROM {relation}").to_arrow_reader(BATCH_ROWS)
    pending: list[pa.RecordBatch] = []
    rows = 0

    def flush() -> None:
        table = pa.Table.from_batches(pending)
        codes = {
            col.name: _codes(col, table.column(i).combine_chunks(), dictionaries.get(col.name), edges.get(col.name))
            for i, col in enumerate(columns)
        }
        for (cols, _), counter in zip(plan, counters):
            counter.add([codes[c] for c in cols])

    for batch in reader:  # DuckDB hands out small batches: count them in chunks of about BATCH_ROWS rows
        pending.append(batch)
        rows += batch.num_rows
        if rows >= BATCH_ROWS:
            flush()
            pending, rows = [], 0
    if pending:
        flush()
    return _pair_tables(plan, counters)


def _pair_values(columns: list[Column]) -> list[str]:
    """SQL of each column's value as the pair codes read it: continuous as DOUBLE (ns for datetimes, as SDMetrics
    sees them), booleans as they are, categories as text."""
    out = []
    for col in columns:
        if SHAPES[col.type] == "continuous":
            out.append(numeric_expr(col, datetime_unit="ns"))
        elif col.type == "boolean":
            out.append(value_expr(col))
        else:
            out.append(f"CAST({value_expr(col)} AS VARCHAR)")
    return out


def _counter(shape: list[int]) -> _Bundle | _Sparse:
    """A bundle's counter: dense, unless it is a pair whose table is too large to hold."""
    return _Sparse(shape[0], shape[1]) if len(shape) == 2 and shape[0] * shape[1] > DENSE_CELLS else _Bundle(shape)


def _pair_tables(plan: list[tuple[list[str], list[tuple[str, str]]]],
                 counters: list[_Bundle | _Sparse]) -> dict[tuple[str, str], np.ndarray | _Sparse]:
    """Each planned pair's table: a dense bundle's marginal, or the sparse pair itself."""
    out: dict[tuple[str, str], np.ndarray | _Sparse] = {}
    for (cols, bundle_pairs), counter in zip(plan, counters):
        for j, pair in enumerate(bundle_pairs, start=1):
            out[pair] = counter if isinstance(counter, _Sparse) else counter.table(j)
    return out


def _code_sql(column: Column, value: str, edges: np.ndarray | None) -> str:
    """SQL of ``_codes`` on the engine: ``numpy.digitize`` as the number of edges at or below the value (a missing
    value in bin ``len(edges)``), booleans 1/2 (0 missing); categories stay text, coded in Python on the result."""
    if SHAPES[column.type] == "continuous":
        assert edges is not None
        steps = " + ".join(f"CAST({value} >= CAST('{float(e)!r}' AS DOUBLE) AS INTEGER)" for e in edges)
        return f"CASE WHEN {value} IS NULL THEN {len(edges)} ELSE {steps} END"
    if column.type == "boolean":
        return f"CASE WHEN {value} IS NULL THEN 0 WHEN {value} THEN 2 ELSE 1 END"
    return value


def _grouped_counts(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: list[Column],
    plan: list[tuple[list[str], list[tuple[str, str]]]],
    sizes: dict[str, int],
    dictionaries: dict[str, pa.Array],
    edges: dict[str, np.ndarray],
) -> dict[tuple[str, str], np.ndarray | _Sparse]:
    """``_stream_counts`` counted by the engine: one GROUP BY GROUPING SETS statement, a set per bundle, so only the
    non-empty cells leave it (on Spark the rows stay on the executors; streaming them to the driver collected the
    whole table there, over Spark's 1 GiB result limit at 10M claims). The same codes, the same tables."""
    values = _pair_values(columns)
    slot = {col.name: i for i, col in enumerate(columns)}
    inner = ", ".join(f"{v} AS v{i}" for i, v in enumerate(values))
    coded = ", ".join(f"{_code_sql(col, f'v{i}', edges.get(col.name))} AS c{i}" for i, col in enumerate(columns))
    sets = ", ".join("(" + ", ".join(f"c{slot[c]}" for c in cols) + ")" for cols, _ in plan)
    flags = ", ".join(f"grouping(c{i}) AS g{i}" for i in range(len(columns)))
    result = con.sql(
        f"SELECT {', '.join(f'c{i}' for i in range(len(columns)))}, {flags}, count(*) AS n "
        f"FROM (SELECT {coded} FROM (SELECT {inner} FROM {relation})) GROUP BY GROUPING SETS ({sets})"
    ).to_arrow_table()
    grouped = np.array([result.column(f"g{i}").to_numpy(zero_copy_only=False) for i in range(len(columns))]).reshape(len(columns), -1)
    weights = result.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    counters: list[_Bundle | _Sparse] = []
    for cols, _ in plan:
        inside = np.zeros(len(columns), dtype=bool)
        inside[[slot[c] for c in cols]] = True
        rows = np.flatnonzero(np.all(grouped == np.where(inside, 0, 1)[:, None], axis=0))
        codes = []
        for c in cols:
            col, values_c = columns[slot[c]], result.column(f"c{slot[c]}").take(pa.array(rows)).combine_chunks()
            if SHAPES[col.type] == "discrete" and col.type != "boolean":
                codes.append(_codes(col, values_c, dictionaries[c], None))
            else:
                codes.append(values_c.to_numpy(zero_copy_only=False).astype(np.int64))
        counters.append(_counter([sizes[c] for c in cols]))
        counters[-1].add(codes, weights[rows])
    return _pair_tables(plan, counters)


def similarity_from_tables(real: np.ndarray, synthetic: np.ndarray) -> tuple[float, float | None]:
    """(total variation distance, Cramér's V of the real table) from two dense joint count tables.

    TVD ``0.5 * sum |R / n_r - S / n_s|`` over every cell. Cramér's V (Cramér 1946) is
    ``sqrt(phi2 / (min(r, c) - 1))`` with ``phi2 = chi2 / n = sum O_ij^2 / (R_i C_j) - 1`` over the rows and
    columns present in the real table, as ``scipy.stats.contingency.association`` computes it (no
    continuity correction); None when the real table has a single row or column.
    """
    tvd = 0.5 * float(np.abs(real / real.sum() - synthetic / synthetic.sum()).sum())
    obs = real[real.sum(axis=1) > 0][:, real.sum(axis=0) > 0].astype(np.float64)
    k = min(obs.shape)
    if k < 2:
        return tvd, None
    phi2 = max(float((obs * obs / np.outer(obs.sum(axis=1), obs.sum(axis=0))).sum()) - 1.0, 0.0)
    return tvd, math.sqrt(phi2 / (k - 1))


def similarity_from_sparse(real: _Sparse, synthetic: _Sparse) -> tuple[float, float | None]:
    """The same two numbers from the non-empty cells of both sides (see ``similarity_from_tables``).

    The cells of both sides are aligned by binary search in the sorted keys: with q the synthetic share of
    a cell, ``sum |p - q| = sum_{real cells} |p - q| + (1 - sum_{real cells} q)``.
    """
    kr, cr = real.keys, real.counts.astype(np.float64)
    ks, cs = synthetic.keys, synthetic.counts.astype(np.float64)
    p = cr / cr.sum()
    q_all = cs / cs.sum()
    idx = np.minimum(np.searchsorted(ks, kr), max(len(ks) - 1, 0))
    q = np.where(ks[idx] == kr, q_all[idx], 0.0) if len(ks) else np.zeros_like(p)
    tvd = 0.5 * (float(np.abs(p - q).sum()) + max(0.0, 1.0 - float(q.sum())))
    i, j = kr // real.size_b, kr % real.size_b
    r_tot = np.bincount(i, weights=cr, minlength=real.size_a)
    c_tot = np.bincount(j, weights=cr, minlength=real.size_b)
    k = min(int(np.count_nonzero(r_tot)), int(np.count_nonzero(c_tot)))
    if k < 2:
        return tvd, None
    phi2 = max(float((cr * cr / (r_tot[i] * c_tot[j])).sum()) - 1.0, 0.0)
    return tvd, math.sqrt(phi2 / (k - 1))


def _similarity(real: np.ndarray | _Sparse, synthetic: np.ndarray | _Sparse) -> tuple[float, float | None]:
    """A pair's contingency similarity from its two count tables, dense or sparse (both the same form)."""
    if isinstance(real, _Sparse) and isinstance(synthetic, _Sparse):
        return similarity_from_sparse(real, synthetic)
    assert isinstance(real, np.ndarray) and isinstance(synthetic, np.ndarray)
    return similarity_from_tables(real, synthetic)


def contingency_pairs(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    pairs: list[tuple[Column, Column]],
    edges: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[tuple[str, str], tuple[float, float | None]]:
    """(TVD, real Cramér's V) of every pair, from one streamed pass over each side."""
    columns = list({c.name: c for p in pairs for c in p}.values())
    categories = [c for c in columns if SHAPES[c.type] == "discrete" and c.type != "boolean"]
    dictionaries = _dictionaries(con, real, synthetic, categories)
    sizes: dict[str, int] = {}
    for col in columns:
        if SHAPES[col.type] == "continuous":
            sizes[col.name] = len(edges[col.name][0]) + 1
        elif col.type == "boolean":
            sizes[col.name] = 3
        else:
            sizes[col.name] = len(dictionaries[col.name]) + 1
    out: dict[tuple[str, str], tuple[float, float | None]] = {}
    by_name = {c.name: c for p in pairs for c in p}
    count = _grouped_counts if (is_spark(con) if COUNT_ON_ENGINE is None else COUNT_ON_ENGINE) else _stream_counts
    for group in _memory_groups(plan_bundles(pairs, sizes), sizes):
        columns = [by_name[n] for n in dict.fromkeys(c for cols, _ in group for c in cols)]
        r = count(con, real, columns, group, sizes, dictionaries, {k: v[0] for k, v in edges.items()})
        s = count(con, synthetic, columns, group, sizes, dictionaries, {k: v[1] for k, v in edges.items()})
        for key in (pair for _, bundle_pairs in group for pair in bundle_pairs):
            out[key] = _similarity(r[key], s[key])
    return out


def contingency_pairs_arrow(
    real: pa.Table,
    synthetic: pa.Table,
    pairs: list[tuple[Column, Column]],
    edges: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[tuple[str, str], tuple[float, float | None]]:
    """``contingency_pairs`` on the typed Arrow tables the loader read: every column is coded once per side
    (dictionary codes, ``numpy.digitize`` bins) and every table counted with ``numpy.bincount``."""
    from evaluate.fidelity import arrow_counts as counts

    columns = list({c.name: c for p in pairs for c in p}.values())

    def code(col: Column) -> tuple[tuple[np.ndarray, np.ndarray], int]:
        """Both sides' codes of a column, and its number of codes."""
        if SHAPES[col.type] == "continuous":
            e_r, e_s = edges[col.name]
            return (counts.pair_codes(col, real.column(col.name), e_r, None, 0),
                    counts.pair_codes(col, synthetic.column(col.name), e_s, None, 1)), len(e_r) + 1
        codes = counts.discrete_codes(col, real.column(col.name), synthetic.column(col.name))
        return (codes.real + 1, codes.synthetic + 1), 3 if col.type == "boolean" else codes.size + 1

    done = dict(zip((c.name for c in columns), parallel_map(code, columns)))
    coded = {name: pair for name, (pair, _size) in done.items()}
    sizes = {name: size for name, (_pair, size) in done.items()}
    out: dict[tuple[str, str], tuple[float, float | None]] = {}
    for group in _memory_groups(plan_bundles(pairs, sizes), sizes):

        def count(side: int, group: list[tuple[list[str], list[tuple[str, str]]]] = group) -> dict[tuple[str, str], np.ndarray | _Sparse]:
            found: dict[tuple[str, str], np.ndarray | _Sparse] = {}
            for cols, bundle_pairs in group:
                counter = _counter([sizes[c] for c in cols])
                for start in range(0, len(coded[cols[0]][side]), BATCH_ROWS):
                    counter.add([coded[c][side][start:start + BATCH_ROWS] for c in cols])
                for j, pair in enumerate(bundle_pairs, start=1):
                    found[pair] = counter if isinstance(counter, _Sparse) else counter.table(j)
            return found

        tables = parallel_map(count, (0, 1))
        for key in (pair for _, bundle_pairs in group for pair in bundle_pairs):
            out[key] = _similarity(tables[0][key], tables[1][key])
    return out


def _memory_groups(
    plan: list[tuple[list[str], list[tuple[str, str]]]], sizes: dict[str, int], *, cells: int = GROUP_CELLS
) -> list[list[tuple[list[str], list[tuple[str, str]]]]]:
    """Bundles cut into groups of at most ``cells`` dense cells, each counted in its own pass over the data,
    so the tables held at once stay bounded however many pairs a table has."""
    groups: list[list[tuple[list[str], list[tuple[str, str]]]]] = []
    current: list[tuple[list[str], list[tuple[str, str]]]] = []
    used = 0
    for bundle in plan:
        size = min(int(np.prod([sizes[c] for c in bundle[0]])), DENSE_CELLS)
        if current and used + size > cells:
            groups.append(current)
            current, used = [], 0
        current.append(bundle)
        used += size
    if current:
        groups.append(current)
    return groups


def pair_trends_table(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    table: str,
    columns: list[Column],
    *,
    correlation_threshold: float = 0.5,
    association_threshold: float = 0.3,
    arrow: tuple[pa.Table, pa.Table] | None = None,
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Every pair of ``columns`` of one table: one details row per scored pair, and skipped pairs.

    ``arrow``: the typed Arrow tables of both sides, when the loader read them from typed Parquet; the
    contingency tables are then counted on their codes (``contingency_pairs_arrow``), with the same result."""
    if arrow is not None:
        from evaluate.fidelity import arrow_counts as counts

        (n_real, st_r), (n_syn, st_s) = parallel_map(lambda side: counts.side_stats(columns, side), arrow)
    else:
        n_real, st_r = _side_stats(con, real, columns)
        n_syn, st_s = _side_stats(con, synthetic, columns)
    skipped: list[Skipped] = []
    usable = []
    for col in columns:
        if st_r[col.name][0] == 0:
            skipped.append(Skipped("no non-null values in the real data: not paired", table=table, column=col.name))
        else:
            usable.append(col)
    edges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    unbinned: dict[str, str] = {}
    for col in usable:
        if SHAPES[col.type] != "continuous":
            continue
        if not (_finite(st_r[col.name]) and _finite(st_s[col.name])):
            unbinned[col.name] = "infinite values: the continuous column cannot be binned"
            continue
        try:
            edges[col.name] = (bin_edges(*st_r[col.name][1:3]), bin_edges(*st_s[col.name][1:3]))
        except ValueError as exc:  # numpy cannot make 10 bins (a single huge value): SDMetrics fails the same way
            unbinned[col.name] = f"cannot be cut into {DISCRETE_BINS} bins as SDMetrics does ({exc})"

    corr_pairs: list[tuple[Column, Column]] = []
    cont_pairs: list[tuple[Column, Column]] = []
    for a, b in itertools.combinations(usable, 2):
        label = f"{a.name} / {b.name}"
        if SHAPES[a.type] == SHAPES[b.type] == "continuous":
            constant = [
                side
                for side, st in (("real", st_r), ("synthetic", st_s))
                for c in (a, b)
                if st[c.name][0] > 0 and st[c.name][1] == st[c.name][2]
            ]
            if constant:
                skipped.append(Skipped(f"a column is constant in the {constant[0]} data: correlation undefined", table=table, column=label))
            else:
                corr_pairs.append((a, b))
        elif any(c.name in unbinned for c in (a, b)):
            reason = next(unbinned[c.name] for c in (a, b) if c.name in unbinned)
            skipped.append(Skipped(reason, table=table, column=label))
        else:
            cont_pairs.append((a, b))

    rows: list[dict[str, Any]] = []
    if cont_pairs:
        if arrow is not None:
            results = contingency_pairs_arrow(arrow[0], arrow[1], cont_pairs, edges)
        else:
            results = contingency_pairs(con, real, synthetic, cont_pairs, edges)
        for a, b in cont_pairs:
            tvd, assoc = results[(a.name, b.name)]
            contributes = True if association_threshold <= 0 else (assoc is not None and assoc > association_threshold)
            rows.append(
                {
                    "table": table,
                    "column_1": a.name,
                    "column_2": b.name,
                    "metric": "contingency_similarity",
                    "value": min(1.0, max(0.0, 1.0 - tvd)),
                    "real_correlation": None,
                    "synthetic_correlation": None,
                    "real_association": assoc,
                    "contributes": contributes,
                }
            )
    nullable_r = {c.name for c in usable if st_r[c.name][0] < n_real}
    nullable_s = {c.name for c in usable if st_s[c.name][0] < n_syn}
    if arrow is not None:
        r_real, r_syn = parallel_map(lambda side: counts.pearson(side, corr_pairs), arrow)
    else:
        r_real = _pearson(con, real, corr_pairs, {k: v[3] for k, v in st_r.items() if v[3] is not None}, nullable_r)
        r_syn = _pearson(con, synthetic, corr_pairs, {k: v[3] for k, v in st_s.items() if v[3] is not None}, nullable_s)
    for (a, b), rr, rs in zip(corr_pairs, r_real, r_syn):
        if rr is None or rs is None:
            side = "real" if rr is None else "synthetic"
            skipped.append(
                Skipped(f"correlation undefined in the {side} data (fewer than 2 complete rows or no variance)", table=table, column=f"{a.name} / {b.name}")
            )
            continue
        contributes = True if correlation_threshold <= 0 else abs(rr) > correlation_threshold
        rows.append(
            {
                "table": table,
                "column_1": a.name,
                "column_2": b.name,
                "metric": "correlation_similarity",
                "value": min(1.0, max(0.0, 1.0 - abs(rr - rs) / 2.0)),
                "real_correlation": rr,
                "synthetic_correlation": rs,
                "real_association": None,
                "contributes": contributes,
            }
        )
    order = {c.name: i for i, c in enumerate(columns)}
    rows.sort(key=lambda r: (order[r["column_1"]], order[r["column_2"]]))
    return rows, skipped


def _avg_rank(expr: str) -> str:
    """SQL window expression: the average rank of ``expr`` (ties share the mean of their ranks), as scipy ranks."""
    return f"(rank() OVER (ORDER BY {expr}) + (count(*) OVER (PARTITION BY {expr}) - 1) / 2.0)"


SPEARMAN_MAX_ROWS = 1_000_000
"""Above this many rows a side's Spearman ranks come from a seeded sample of this size: ranking sorts every
column, which would dominate time and memory on tens of millions of rows. DuckDB draws a reservoir of exactly this
many rows; Spark (which has no reservoir sample) a seeded Bernoulli sample of the same expected size, so above
this size the two engines' continuous pair trends agree to sampling error, not to 1e-9."""


def _spearman(
    con: duckdb.DuckDBPyConnection, relation: str, pairs: list[tuple[Column, Column]], nullable: set[str], n_rows: int
) -> list[float | None]:
    """Spearman's rho (Spearman 1904) of each pair: Pearson's r of average ranks on the rows where both are present.

    Columns without missing values are ranked once and all their pairs read in one query; a pair with a
    nullable column is ranked on its complete rows (as SDMetrics' ``dropna`` of the pair does). Sides of
    more than ``SPEARMAN_MAX_ROWS`` rows are ranked on a seeded sample of that size.
    """
    if not pairs:
        return []
    if n_rows > SPEARMAN_MAX_ROWS and is_spark(con):
        share = 100.0 * SPEARMAN_MAX_ROWS / n_rows
        relation = f"(SELECT * FROM (SELECT * FROM {relation}) USING SAMPLE {share!r} PERCENT (bernoulli, 17))"
    elif n_rows > SPEARMAN_MAX_ROWS:
        relation = f"(SELECT * FROM {relation} USING SAMPLE reservoir({SPEARMAN_MAX_ROWS} ROWS) REPEATABLE (17))"
    out: dict[int, float | None] = {}
    full = [(i, a, b) for i, (a, b) in enumerate(pairs) if a.name not in nullable and b.name not in nullable]
    if full:
        cols = list({c.name: c for _, a, b in full for c in (a, b)}.values())
        ranks = ", ".join(f"{_avg_rank(numeric_expr(c))} AS {quote('__r_' + c.name)}" for c in cols)
        corrs = ", ".join(f"corr({quote('__r_' + a.name)}, {quote('__r_' + b.name)})" for _, a, b in full)
        row = con.execute(f"SELECT {corrs} FROM (SELECT {ranks} FROM {relation})").fetchall()[0]
        out.update({i: row[k] for k, (i, _, _) in enumerate(full)})
    for i, (a, b) in enumerate(pairs):
        if i in out:
            continue
        ea, eb = numeric_expr(a), numeric_expr(b)
        sql = (f"SELECT corr(ra, rb) FROM (SELECT {_avg_rank(ea)} AS ra, {_avg_rank(eb)} AS rb FROM {relation} "
               f"WHERE {ea} IS NOT NULL AND {eb} IS NOT NULL)")
        out[i] = con.execute(sql).fetchall()[0][0]
    return [None if (v := out[i]) is None or not math.isfinite(v) else max(-1.0, min(1.0, float(v))) for i in range(len(pairs))]


def _both_arrow(ctx: EvalContext, table: str) -> tuple[pa.Table, pa.Table] | None:
    real, synthetic = ctx.train.arrow.get(table), ctx.synthetic.arrow.get(table)
    return None if real is None or synthetic is None else (real, synthetic)


def _finite(stat: tuple[int, float | None, float | None, float | None]) -> bool:
    nn, lo, hi, _ = stat
    return nn == 0 or (lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi))


@metric(
    NAME,
    family="fidelity",
    description="Pairwise trends: correlation similarity (numbers, dates) and contingency similarity (the rest)",
    produces=(NAME, "fidelity.correlation_similarity.pearson", "fidelity.contingency_similarity"),
)
def column_pair_trends(ctx: EvalContext) -> list[MetricResult]:
    """Column Pair Trends (SDMetrics QualityReport), plus the plain means of both pair metrics over all pairs.

    ``fidelity.column_pair_trends`` averages the pairs that pass the real-data strength thresholds
    (``contributes`` in details); when no pair passes, it averages every scored pair and says so.
    ``fidelity.correlation_similarity.pearson`` and ``fidelity.contingency_similarity`` average every
    scored pair of their kind, without thresholds.
    """
    require_rows(ctx, NAME)
    corr_t = float(ctx.options.param(NAME, "real_correlation_threshold", 0.5))
    assoc_t = float(ctx.options.param(NAME, "real_association_threshold", 0.3))
    for pname, val in (("real_correlation_threshold", corr_t), ("real_association_threshold", assoc_t)):
        if not 0.0 <= val <= 1.0:
            raise ValueError(f"The {pname!r} parameter of {NAME} must be a number in [0, 1]; got {val!r} instead.")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for tname in ctx.schema.topological_order():
        split = split_columns(ctx.schema.tables[tname], include_groups=False)
        skipped.extend(split.skipped)
        if len(split.scored) < 2:
            if split.scored:
                skipped.append(Skipped("the only scored column of its table: no pair", table=tname, column=split.scored[0].name))
            continue
        if scalar(ctx.con, f"SELECT count(*) FROM {ctx.train.sql_name(tname)}") == 0:
            skipped.extend(Skipped("the real table has no rows", table=tname, column=c.name) for c in split.scored)
            continue
        if scalar(ctx.con, f"SELECT count(*) FROM {ctx.synthetic.sql_name(tname)}") == 0:
            skipped.extend(Skipped("the synthetic table has no rows", table=tname, column=c.name) for c in split.scored)
            continue
        t_rows, t_skipped = pair_trends_table(
            ctx.con,
            ctx.train.sql_name(tname),
            ctx.synthetic.sql_name(tname),
            tname,
            list(split.scored),
            correlation_threshold=corr_t,
            association_threshold=assoc_t,
            arrow=_both_arrow(ctx, tname),
        )
        rows.extend(t_rows)
        skipped.extend(t_skipped)
    notes = [
        "contingency tables on all rows (SDMetrics' report samples 50,000 rows per pair)",
        f"the property averages pairs with |r_real| > {corr_t:g} (correlation) or Cramér's V > {assoc_t:g} (contingency)",
    ]
    contributing = [r for r in rows if r["contributes"]]
    value = mean(r["value"] for r in contributing)
    if value is None and rows:
        value = mean(r["value"] for r in rows)
        notes.append("no pair passes the real-data strength thresholds: the mean over every scored pair is reported")
    corr_rows = [r for r in rows if r["metric"] == "correlation_similarity"]
    cont_rows = [r for r in rows if r["metric"] == "contingency_similarity"]
    brief = ("table", "column_1", "column_2", "value")
    return [
        MetricResult(
            name=NAME,
            family="fidelity",
            value=value,
            goal="maximize",
            n=len(contributing) if contributing else len(rows),
            details=tuple(rows),
            skipped=tuple(skipped),
            notes=tuple(notes),
        ),
        MetricResult(
            name="fidelity.correlation_similarity.pearson",
            family="fidelity",
            value=mean(r["value"] for r in corr_rows),
            goal="maximize",
            n=len(corr_rows),
            details=tuple({k: r[k] for k in (*brief, "real_correlation", "synthetic_correlation")} for r in corr_rows),
            skipped=tuple(skipped),
            notes=("1 - |r_real - r_syn| / 2 for every pair of continuous columns",),
        ),
        MetricResult(
            name="fidelity.contingency_similarity",
            family="fidelity",
            value=mean(r["value"] for r in cont_rows),
            goal="maximize",
            n=len(cont_rows),
            details=tuple({k: r[k] for k in (*brief, "real_association")} for r in cont_rows),
            skipped=tuple(skipped),
            notes=("1 - total variation distance of the joint frequency table, continuous columns in 10 bins",),
        ),
    ]


SPEARMAN = "fidelity.correlation_similarity.spearman"


def spearman_table(
    con: duckdb.DuckDBPyConnection, real: str, synthetic: str, table: str, columns: list[Column]
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Spearman correlation similarity of every pair of continuous ``columns`` of one table."""
    continuous = [c for c in columns if SHAPES[c.type] == "continuous"]
    n_real, st_r = _side_stats(con, real, continuous)
    n_syn, st_s = _side_stats(con, synthetic, continuous)
    pairs, skipped = [], []
    for a, b in itertools.combinations(continuous, 2):
        if any(st[c.name][0] == 0 or st[c.name][1] == st[c.name][2] for st in (st_r, st_s) for c in (a, b)):
            skipped.append(Skipped("a column is empty or constant on one side: rank correlation undefined", table=table, column=f"{a.name} / {b.name}"))
        else:
            pairs.append((a, b))
    nullable_r = {c.name for c in continuous if st_r[c.name][0] < n_real}
    nullable_s = {c.name for c in continuous if st_s[c.name][0] < n_syn}
    rows = []
    for (a, b), qr, qs in zip(pairs, _spearman(con, real, pairs, nullable_r, n_real), _spearman(con, synthetic, pairs, nullable_s, n_syn)):
        if qr is None or qs is None:
            skipped.append(Skipped("rank correlation undefined (fewer than 2 complete rows)", table=table, column=f"{a.name} / {b.name}"))
            continue
        rows.append({"table": table, "column_1": a.name, "column_2": b.name, "value": min(1.0, max(0.0, 1.0 - abs(qr - qs) / 2.0)),
                     "real_correlation": qr, "synthetic_correlation": qs})
    return rows, skipped


@metric(SPEARMAN, family="fidelity", description="Spearman rank-correlation similarity of every pair of continuous columns")
def spearman_similarity(ctx: EvalContext) -> list[MetricResult]:
    """``1 - |rho_real - rho_syn| / 2`` averaged over pairs of numbers and dates (SDMetrics' CorrelationSimilarity, Spearman).

    Its own metric, not part of Column Pair Trends (which, as in SDMetrics' QualityReport, uses Pearson):
    ranking sorts every column, which costs more than the whole pair-trends pass.
    """
    require_rows(ctx, SPEARMAN)
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for tname in ctx.schema.topological_order():
        split = split_columns(ctx.schema.tables[tname], include_groups=False)
        real, syn = ctx.train.sql_name(tname), ctx.synthetic.sql_name(tname)
        if scalar(ctx.con, f"SELECT count(*) FROM {real}") == 0 or scalar(ctx.con, f"SELECT count(*) FROM {syn}") == 0:
            continue
        t_rows, t_skipped = spearman_table(ctx.con, real, syn, tname, list(split.scored))
        rows.extend(t_rows)
        skipped.extend(t_skipped)
    return [
        mean_result(SPEARMAN, "maximize", rows, skipped, (
            "1 - |rho_real - rho_syn| / 2 for every pair of continuous columns (Spearman's rank correlation)",
            f"a side of more than {SPEARMAN_MAX_ROWS:,} rows is ranked on a seeded sample of {SPEARMAN_MAX_ROWS:,} rows",
        ))
    ]
