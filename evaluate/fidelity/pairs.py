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

Unlike SDMetrics, contingency tables are computed on all rows (its report samples 50,000 rows), in SQL.
Slots of repeated column groups (``ICD9_DGNS_CD_1..10``) are not paired with each other or with other
columns; their codes are compared by ``fidelity.code_hierarchy``.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import duckdb
import numpy as np

from data_schemas.model import Column
from evaluate.context import EvalContext
from evaluate.fidelity._common import SHAPES, mean, numeric_expr, require_rows, scalar, split_columns, value_expr
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped

NAME = "fidelity.column_pair_trends"
DISCRETE_BINS = 10


def bin_edges(low: float | None, high: float | None, bins: int = DISCRETE_BINS) -> np.ndarray:
    """``numpy.histogram_bin_edges`` of a column with this min and max (None: no values), as SDMetrics bins."""
    data = np.array([], dtype=float) if low is None or high is None else np.array([low, high], dtype=float)
    return np.histogram_bin_edges(data, bins=bins)


def digitize_sql(expr: str, edges: np.ndarray) -> str:
    """SQL for ``numpy.digitize(x, edges)``: the number of edges <= x, and ``len(edges)`` for a missing x."""
    terms = " + ".join(f"CAST({expr} >= {float(e)!r} AS INTEGER)" for e in edges)
    return f"CASE WHEN {expr} IS NULL THEN {len(edges)} ELSE {terms} END"


def _side_stats(con: duckdb.DuckDBPyConnection, relation: str, columns: list[Column]) -> tuple[int, dict[str, tuple[int, float | None, float | None]]]:
    """Rows, and per column (non-null count, min, max) with datetimes in nanoseconds, as SDMetrics sees them."""
    parts = ["count(*)"]
    for col in columns:
        if SHAPES[col.type] == "continuous":
            num = numeric_expr(col, datetime_unit="ns")
            parts.extend([f"count({num})", f"min({num})", f"max({num})"])
        else:
            parts.extend([f"count({value_expr(col)})", "NULL", "NULL"])
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchall()[0]
    out = {}
    for i, col in enumerate(columns):
        nn, lo, hi = row[1 + 3 * i : 4 + 3 * i]
        out[col.name] = (int(nn), None if lo is None else float(lo), None if hi is None else float(hi))
    return int(row[0]), out


def _correlations(con: duckdb.DuckDBPyConnection, relation: str, pairs: list[tuple[Column, Column]]) -> list[float | None]:
    """Pearson's r of each pair on the rows where both are present (one pass); None where undefined."""
    if not pairs:
        return []
    parts = [f"corr({numeric_expr(a)}, {numeric_expr(b)})" for a, b in pairs]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchall()[0]
    return [None if v is None or not math.isfinite(v) else float(v) for v in row]


def _contingency(
    con: duckdb.DuckDBPyConnection, real: str, synthetic: str, a: tuple[str, str], b: tuple[str, str], n_real: int, n_syn: int
) -> tuple[float, float | None]:
    """(total variation distance of the joint tables, Cramér's V of the real table) in one pass.

    ``a`` and ``b`` are (real-side SQL, synthetic-side SQL) of each column. Cramér's V (Cramér 1946) uses
    ``chi2 = n * (sum O_ij^2 / (R_i C_j) - 1)``, equal to Pearson's chi-squared without continuity
    correction as in ``scipy.stats.contingency.association``; None when the real table has a single row
    or column.
    """
    row = con.execute(
        f"""
        WITH u AS (SELECT {a[0]} AS a, {b[0]} AS b, false AS s FROM {real}
                   UNION ALL SELECT {a[1]}, {b[1]}, true FROM {synthetic}),
        g AS (SELECT a, b, count(*) FILTER (WHERE NOT s) AS cr, count(*) FILTER (WHERE s) AS cs FROM u GROUP BY a, b),
        m AS (SELECT a, b, CAST(cr AS DOUBLE) AS cr, CAST(cs AS DOUBLE) AS cs,
                     CAST(sum(cr) OVER (PARTITION BY a) AS DOUBLE) AS ra,
                     CAST(sum(cr) OVER (PARTITION BY b) AS DOUBLE) AS rb FROM g)
        SELECT sum(abs(cr / {float(n_real)!r} - cs / {float(n_syn)!r})) / 2,
               sum(CASE WHEN cr > 0 THEN cr * cr / (ra * rb) END),
               count(DISTINCT a) FILTER (WHERE cr > 0) + coalesce(max(CASE WHEN a IS NULL AND cr > 0 THEN 1 END), 0),
               count(DISTINCT b) FILTER (WHERE cr > 0) + coalesce(max(CASE WHEN b IS NULL AND cr > 0 THEN 1 END), 0)
        FROM m"""
    ).fetchall()[0]
    tvd = float(row[0] or 0.0)
    k = min(int(row[2] or 0), int(row[3] or 0))
    if k < 2 or row[1] is None:
        return tvd, None
    phi2 = max(float(row[1]) - 1.0, 0.0)
    return tvd, math.sqrt(phi2 / (k - 1))


def pair_trends_table(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    table: str,
    columns: list[Column],
    *,
    correlation_threshold: float = 0.5,
    association_threshold: float = 0.3,
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Every pair of ``columns`` of one table: one details row per scored pair, and skipped pairs."""
    n_real, st_r = _side_stats(con, real, columns)
    n_syn, st_s = _side_stats(con, synthetic, columns)
    skipped: list[Skipped] = []
    usable = []
    for col in columns:
        if st_r[col.name][0] == 0:
            skipped.append(Skipped("no non-null values in the real data: not paired", table=table, column=col.name))
        else:
            usable.append(col)
    edges = {}
    finite = {}
    for col in usable:
        if SHAPES[col.type] != "continuous":
            continue
        e_r = bin_edges(*st_r[col.name][1:]) if _finite(st_r[col.name]) else None
        e_s = bin_edges(*st_s[col.name][1:]) if _finite(st_s[col.name]) else None
        finite[col.name] = e_r is not None and e_s is not None
        if finite[col.name]:
            edges[col.name] = (e_r, e_s)

    def side_exprs(col: Column) -> tuple[str, str]:
        if SHAPES[col.type] == "discrete":
            return value_expr(col), value_expr(col)
        e_r, e_s = edges[col.name]
        num = numeric_expr(col, datetime_unit="ns")
        return digitize_sql(num, e_r), digitize_sql(num, e_s)

    rows: list[dict[str, Any]] = []
    corr_pairs: list[tuple[Column, Column]] = []
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
            continue
        cont = [c for c in (a, b) if SHAPES[c.type] == "continuous"]
        if any(not finite.get(c.name, False) for c in cont):
            skipped.append(Skipped("infinite values: the continuous column cannot be binned", table=table, column=label))
            continue
        tvd, assoc = _contingency(con, real, synthetic, side_exprs(a), side_exprs(b), n_real, n_syn)
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
    r_real = _correlations(con, real, corr_pairs)
    r_syn = _correlations(con, synthetic, corr_pairs)
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


def _finite(stat: tuple[int, float | None, float | None]) -> bool:
    nn, lo, hi = stat
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
        t_rows, t_skipped = pair_trends_table(
            ctx.con,
            ctx.train.sql_name(tname),
            ctx.synthetic.sql_name(tname),
            tname,
            list(split.scored),
            correlation_threshold=corr_t,
            association_threshold=assoc_t,
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
