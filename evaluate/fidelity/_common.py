"""Shared pieces of the fidelity metrics: column roles from the schema, SQL value expressions and the
two profile queries (continuous and discrete) every per-column metric is built on.

Everything heavy is one SQL statement over the union of the real and the synthetic relation, so it runs
in DuckDB on data larger than memory; Python only sees aggregates (a handful of numbers and at most
``TOP`` categories or ``BINS`` bins per column).
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import duckdb

from data_schemas.model import Column, Schema, Table
from data_schemas.rules import quote
from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.result import MetricResult, Skipped

Shape = Literal["continuous", "discrete"]
Kind = Literal["number", "integer", "date", "timestamp", "category", "boolean"]

TOP = 20
"""Categories kept per column in details (the rest is summed into ``other``)."""
BINS = 20
"""Bins of the numeric marginals kept in details."""

SHAPES: dict[str, Shape] = {
    "numerical": "continuous",
    "datetime": "continuous",
    "categorical": "discrete",
    "code": "discrete",
    "boolean": "discrete",
}


def never_scored_reason(column: Column) -> str | None:
    """Why a column is never compared as a distribution, from its schema role (never from its dtype)."""
    if column.privacy == "direct_identifier":
        return "direct identifier: never scored"
    if column.type == "id":
        return "id column: keys are not compared as distributions"
    if column.type == "text":
        return "free text: not scored"
    return None


def kind_of(column: Column) -> Kind:
    """How values of a scored column are compared, from the schema type."""
    if column.type == "numerical":
        return "integer" if column.integer else "number"
    if column.type == "datetime":
        return "date" if column.unit == "date" else "timestamp"
    if column.type == "boolean":
        return "boolean"
    return "category"


def value_expr(column: Column, alias: str | None = None) -> str:
    """SQL for a column's value with NaN read as missing (pandas' reading, which SDMetrics follows)."""
    ref = quote(column.name) if alias is None else f"{alias}.{quote(column.name)}"
    if column.type == "numerical" and not column.integer:
        return f"nullif({ref}, 'nan'::DOUBLE)"
    return ref


def numeric_expr(column: Column, alias: str | None = None, *, datetime_unit: Literal["s", "ns"] = "s") -> str:
    """SQL for a continuous column as DOUBLE: numbers as they are, datetimes as seconds (or ns) since 1970."""
    v = value_expr(column, alias)
    if column.type == "datetime":
        return f"CAST(epoch_ns({v}) AS DOUBLE)" if datetime_unit == "ns" else f"epoch({v})"
    return f"CAST({v} AS DOUBLE)"


@dataclass(frozen=True)
class TableColumns:
    """The columns of one table a metric scores, and those it skips with the reason."""

    table: str
    scored: tuple[Column, ...]
    skipped: tuple[Skipped, ...]


def split_columns(
    table: Table,
    *,
    types: Iterable[str] | None = None,
    include_groups: bool = True,
    wrong_type_reason: str | None = None,
) -> TableColumns:
    """Scored and skipped columns of ``table``: roles first, then the metric's types and group rule."""
    wanted = set(types) if types is not None else set(SHAPES)
    scored: list[Column] = []
    skipped: list[Skipped] = []
    for col in table.columns.values():
        reason = never_scored_reason(col)
        if reason is None and col.type not in wanted:
            reason = wrong_type_reason or f"{col.type} column: not scored by this metric"
        if reason is None and col.group is not None and not include_groups:
            reason = f"slot of the repeated column group {col.group!r}: slots are not paired with each other"
        if reason is not None:
            skipped.append(Skipped(reason, table=table.name, column=col.name))
        else:
            scored.append(col)
    return TableColumns(table.name, tuple(scored), tuple(skipped))


def patient_tables(schema: Schema) -> list[str]:
    """Tables holding patient rows (not reference tables), root first."""
    return [t for t in schema.topological_order() if not schema.tables[t].reference]


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The first value of the first row of a query (fully fetched, as duckdb 2.0 requires)."""
    rows = con.execute(sql).fetchall()
    return rows[0][0] if rows else None


def row_count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(scalar(con, f"SELECT count(*) FROM {relation}"))


def require_rows(ctx: EvalContext, metric: str) -> dict[str, tuple[int, int]]:
    """Rows per table (real, synthetic); EmptyInputError when either side has no rows in any table."""
    counts = {
        t: (row_count(ctx.con, ctx.train.sql_name(t)), row_count(ctx.con, ctx.synthetic.sql_name(t)))
        for t in ctx.schema.tables
    }
    if not any(r for r, _ in counts.values()):
        raise EmptyInputError(f"{metric}: the real (train) data has no rows in any table")
    if not any(s for _, s in counts.values()):
        raise EmptyInputError(f"{metric}: the synthetic data has no rows in any table")
    return counts


@dataclass(frozen=True)
class ColumnStats:
    """Counts and range of one column on one side."""

    rows: int
    non_null: int
    low: float | None = None
    high: float | None = None

    @property
    def nulls(self) -> int:
        return self.rows - self.non_null


def column_stats(
    con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[Column]
) -> dict[str, ColumnStats]:
    """One pass over ``relation``: rows, non-null counts, and min / max (as DOUBLE) of continuous columns.

    Datetimes are given in seconds since 1970 (DuckDB ``epoch``).
    """
    parts = ["count(*)"]
    for col in columns:
        parts.append(f"count({value_expr(col)})")
        if SHAPES.get(col.type) == "continuous":
            num = numeric_expr(col)
            parts.extend([f"min({num})", f"max({num})"])
        else:
            parts.extend(["NULL", "NULL"])
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchall()[0]
    rows = int(row[0])
    out: dict[str, ColumnStats] = {}
    for i, col in enumerate(columns):
        nn, lo, hi = row[1 + 3 * i : 4 + 3 * i]
        out[col.name] = ColumnStats(rows, int(nn), None if lo is None else float(lo), None if hi is None else float(hi))
    return out


TAIL_ROWS = 10  # real values at least beyond a stored edge, so no stored number is an individual's exact value
TAIL_SHARE = 0.01
QUANTILE_VALUES = 100_000_000  # values the quantiles of one statement hold at most: DuckDB's quantile state does not spill


def robust_range(con: duckdb.DuckDBPyConnection, relation: str, column: Column) -> tuple[float, float] | None:
    """Low and high quantiles of a continuous column (numeric unit of ``numeric_expr``), for what is stored.

    The exact minimum and maximum of real data single out people (the oldest birth date, the largest
    claim), so stored aggregates (histogram edges, ranges) use the interpolated quantiles at
    ``q = max(1%, 10 / n)`` and ``1 - q`` instead: at least ``TAIL_ROWS`` real values lie beyond each.
    None when the column has no values.
    """
    return robust_ranges(con, relation, [column])[column.name]


def _batches(parts: Sequence[tuple[str, int]], budget: int) -> list[list[str]]:
    """Consecutive expressions grouped so that each group's values add up to at most ``budget`` (one larger part
    alone)."""
    out: list[list[str]] = []
    held = budget + 1
    for expr, n in parts:
        if held + n > budget:
            out.append([])
            held = 0
        out[-1].append(expr)
        held += n
    return out


def robust_ranges(
    con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[Column]
) -> dict[str, tuple[float, float] | None]:
    """``robust_range`` of several columns of one relation in few statements (counts, then the quantiles), not two
    per column: on Spark each statement is a job, and a table's columns were most of the fidelity family's.

    Each quantile holds all of its column's values (DuckDB's quantile state does not spill), so a statement takes
    quantiles of at most ``QUANTILE_VALUES`` values in all: 100M claims' columns in one statement ran out of
    DuckDB's memory budget."""
    if not columns:
        return {}
    nums = [numeric_expr(col) for col in columns]
    counts = con.execute(f"SELECT {', '.join(f'count({num})' for num in nums)} FROM {relation}").fetchall()[0]
    parts: list[tuple[str, int]] = []
    for num, n in zip(nums, counts):
        if n:
            q = min(0.5, max(TAIL_SHARE, TAIL_ROWS / n))
            parts.extend([(f"quantile_cont({num}, {q!r})", int(n)), (f"quantile_cont({num}, {1 - q!r})", int(n))])
    row: list[Any] = []
    for batch in _batches(parts, QUANTILE_VALUES):
        row.extend(con.execute(f"SELECT {', '.join(batch)} FROM {relation}").fetchall()[0])
    out: dict[str, tuple[float, float] | None] = {}
    at = 0
    for col, n in zip(columns, counts):
        if n:
            out[col.name] = (float(row[at]), float(row[at + 1]))
            at += 2
        else:
            out[col.name] = None
    return out


def union_sql(real: str, synthetic: str, selects: Sequence[str], synthetic_selects: Sequence[str] | None = None) -> str:
    """Rows of both sides with a boolean ``s`` (false = real, true = synthetic)."""
    syn = synthetic_selects if synthetic_selects is not None else selects
    return (
        f"SELECT {', '.join(selects)}, false AS s FROM {real} "
        f"UNION ALL SELECT {', '.join(syn)}, true AS s FROM {synthetic}"
    )


# --------------------------------------------------------------------------------------------------------------
# Continuous columns: KS statistic on the full data, plus a small histogram for plots.


@dataclass(frozen=True)
class ContinuousProfile:
    """Two-sample Kolmogorov-Smirnov statistic of one column and an equal-width histogram of both sides.

    ``edges`` has ``len(real) + 1`` entries in the column's numeric unit (days since 1970 for dates).
    """

    statistic: float
    n_real: int
    n_synthetic: int
    edges: tuple[float, ...]
    real: tuple[int, ...]
    synthetic: tuple[int, ...]

    @property
    def complement(self) -> float:
        return 1.0 - self.statistic


def continuous_profile(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    expr: str,
    *,
    kind: Kind,
    bins: int = BINS,
    span: tuple[float, float] | None = None,
) -> ContinuousProfile:
    """KS statistic ``D = max_x |F_real(x) - F_syn(x)|`` (Kolmogorov 1933, Smirnov 1939), exact on all rows.

    Computed as SciPy's ``ks_2samp`` does (both ECDFs at every distinct value, as counts / n in float64),
    after rounding floats to 14 decimals like SDMetrics' KSComplement. NULL (and NaN) are left out.
    ``span`` is the (min, max) over both sides in the histogram unit (days since 1970 for datetimes) when
    the caller knows it already; otherwise one more pass finds it. Raises EmptyInputError when either
    side has no non-null value.
    """
    ks_expr = f"round({expr}, 14)" if kind == "number" else expr
    num = "epoch(v) / 86400.0" if kind in ("date", "timestamp") else "CAST(v AS DOUBLE)"
    base = f"""
        WITH u AS ({union_sql(real, synthetic, [f"{ks_expr} AS v"])}),
        g AS MATERIALIZED (
            SELECT v, count(*) FILTER (WHERE NOT s) AS cr, count(*) FILTER (WHERE s) AS cs
            FROM u WHERE v IS NOT NULL GROUP BY v),
        tot AS (SELECT CAST(sum(cr) AS DOUBLE) AS nr, CAST(sum(cs) AS DOUBLE) AS ns FROM g)
    """
    if span is None:
        first = con.execute(
            f"SELECT count(v), min({num}), max({num}) FROM ({union_sql(real, synthetic, [f'{ks_expr} AS v'])})"
        ).fetchall()[0]
        span = (float(first[1]), float(first[2])) if first[0] else (0.0, 0.0)
    lo, width, nb = _bin_layout(float(span[0]), float(span[1]), kind, bins)
    row = con.execute(
        f"""{base},
        c AS (SELECT sum(cr) OVER w AS fr, sum(cs) OVER w AS fs FROM g
              WINDOW w AS (ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
        h AS (SELECT CAST(least(greatest(floor(({num} - {lo!r}) / {width!r}), 0), {nb - 1}) AS BIGINT) AS b,
                     sum(cr) AS r, sum(cs) AS s FROM g GROUP BY b)
        SELECT (SELECT max(abs(CAST(fr AS DOUBLE) / nr - CAST(fs AS DOUBLE) / ns)) FROM c, tot),
               (SELECT list(struct_pack(b := b, r := r, s := s)) FROM h),
               (SELECT nr FROM tot), (SELECT ns FROM tot)"""
    ).fetchall()[0]
    nr = 0 if row[2] is None else int(row[2])
    ns = 0 if row[3] is None else int(row[3])
    if not nr or not ns:
        side = "real" if not nr else "synthetic"
        raise EmptyInputError(f"the {side} column has no non-null values; the KS statistic needs at least one on each side")
    r_counts = [0] * nb
    s_counts = [0] * nb
    for item in row[1] or []:
        r_counts[int(item["b"])] = int(item["r"])
        s_counts[int(item["b"])] = int(item["s"])
    edges = tuple(lo + i * width for i in range(nb + 1))
    return ContinuousProfile(float(row[0]), nr, ns, edges, tuple(r_counts), tuple(s_counts))


def _num(expr: str, kind: Kind) -> str:
    return f"epoch({expr}) / 86400.0" if kind in ("date", "timestamp") else f"CAST({expr} AS DOUBLE)"


def _bin_layout(lo: float, hi: float, kind: Kind, bins: int) -> tuple[float, float, int]:
    """(first edge, width, number of bins): one bin per value for small integer ranges, else equal width."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0, 1
    if kind in ("integer", "date") and hi - lo + 1 <= bins:
        return lo, 1.0, int(hi - lo) + 1
    if hi <= lo:
        return lo - 0.5, 1.0, 1
    return lo, (hi - lo) / bins, bins


def ks_complement_sql(con: duckdb.DuckDBPyConnection, real: str, synthetic: str, expr: str, *, kind: Kind = "number") -> float:
    """1 - KS statistic of ``expr`` between two relations (see continuous_profile)."""
    return continuous_profile(con, real, synthetic, expr, kind=kind).complement


# --------------------------------------------------------------------------------------------------------------
# Discrete columns: total variation distance, coverage, top categories for plots.


@dataclass(frozen=True)
class DiscreteProfile:
    """Frequencies of one discrete column on both sides, as aggregates.

    ``total_variation`` is ``0.5 * sum_k |p_k - q_k|`` over every category seen on either side.
    """

    total_variation: float
    n_real: int
    n_synthetic: int
    categories_real: int
    categories_synthetic: int
    categories_covered: int
    top: tuple[tuple[str, int, int], ...]

    @property
    def complement(self) -> float:
        return 1.0 - self.total_variation


def discrete_profile(
    con: duckdb.DuckDBPyConnection, real: str, synthetic: str, expr: str, *, top: int = TOP
) -> DiscreteProfile:
    """Category frequencies of both sides in one pass; NULL is left out (as SDMetrics' TVComplement does).

    Raises EmptyInputError when either side has no non-null value.
    """
    profile = discrete_profiles(con, real, synthetic, [expr], top=top)[0]
    if isinstance(profile, str):
        raise EmptyInputError(profile)
    return profile


def discrete_profiles(
    con: duckdb.DuckDBPyConnection, real: str, synthetic: str, exprs: Sequence[str], *, top: int = TOP
) -> list[DiscreteProfile | str]:
    """``discrete_profile`` of several expressions over the same two relations in one statement (each grouped on its
    own values, then windowed per expression): one Spark job per table, not one per column. An expression whose side
    has no non-null value gets the reason as a string instead of a profile."""
    if not exprs:
        return []
    grouped = " UNION ALL ".join(
        f"""SELECT {i} AS i, CAST(v AS VARCHAR) AS v, cr, cs FROM (
              SELECT v, count(*) FILTER (WHERE NOT s) AS cr, count(*) FILTER (WHERE s) AS cs
              FROM ({union_sql(real, synthetic, [f"{expr} AS v"])}) WHERE v IS NOT NULL GROUP BY v)"""
        for i, expr in enumerate(exprs))
    rows = con.execute(
        f"""
        WITH g AS ({grouped}),
        t AS (SELECT i, v, cr, cs, CAST(sum(cr) OVER (PARTITION BY i) AS DOUBLE) AS nr,
                     CAST(sum(cs) OVER (PARTITION BY i) AS DOUBLE) AS ns FROM g),
        z AS (SELECT i, v, cr, cs, nr, ns,
                     sum(abs(CASE WHEN nr > 0 THEN cr / nr ELSE 0 END - CASE WHEN ns > 0 THEN cs / ns ELSE 0 END))
                         OVER (PARTITION BY i) AS l1,
                     sum(CAST(cr > 0 AS INTEGER)) OVER (PARTITION BY i) AS kr,
                     sum(CAST(cs > 0 AS INTEGER)) OVER (PARTITION BY i) AS ks,
                     sum(CAST(cr > 0 AND cs > 0 AS INTEGER)) OVER (PARTITION BY i) AS kc,
                     row_number() OVER (PARTITION BY i ORDER BY cr DESC, cs DESC, v) AS rk
              FROM t)
        SELECT i, v, cr, cs, nr, ns, l1, kr, ks, kc FROM z WHERE rk <= {max(1, int(top))} ORDER BY i, rk"""
    ).fetchall()
    by_expr: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_expr.setdefault(int(row[0]), []).append(row[1:])
    out: list[DiscreteProfile | str] = []
    for i in range(len(exprs)):
        got = by_expr.get(i, [])
        nr = int(got[0][3]) if got else 0
        ns = int(got[0][4]) if got else 0
        if not nr or not ns:
            side = "real" if not nr else "synthetic"
            out.append(f"the {side} column has no non-null values; category frequencies need at least one on each side")
            continue
        first = got[0]
        out.append(DiscreteProfile(
            total_variation=min(1.0, max(0.0, 0.5 * float(first[5]))),
            n_real=nr,
            n_synthetic=ns,
            categories_real=int(first[6]),
            categories_synthetic=int(first[7]),
            categories_covered=int(first[8]),
            top=tuple((str(r[0]), int(r[1]), int(r[2])) for r in got[: max(0, int(top))]),
        ))
    return out


def tv_complement_sql(con: duckdb.DuckDBPyConnection, real: str, synthetic: str, expr: str) -> float:
    """1 - total variation distance of ``expr`` between two relations (see discrete_profile)."""
    return discrete_profile(con, real, synthetic, expr).complement


# --------------------------------------------------------------------------------------------------------------
# Small helpers for results.


def mean(values: Iterable[float]) -> float | None:
    """Mean of the values, None when there are none (never NaN)."""
    vals = [float(v) for v in values]
    if not vals:
        return None
    out = math.fsum(vals) / len(vals)
    return out


def mean_result(
    name: str,
    goal: Literal["maximize", "minimize"],
    rows: Sequence[dict[str, Any]],
    skipped: Iterable[Skipped] = (),
    notes: Iterable[str] = (),
) -> MetricResult:
    """A fidelity result whose value is the mean of its detail rows' ``value`` (None without rows)."""
    return MetricResult(
        name=name,
        family="fidelity",
        value=mean(r["value"] for r in rows),
        goal=goal,
        n=len(rows),
        details=tuple(rows),
        skipped=tuple(skipped),
        notes=tuple(notes),
    )


def clip01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def discrete_detail(profile: DiscreteProfile) -> dict[str, Any]:
    """Top categories and ``other`` as frequencies, for plots: {categories, real, synthetic}."""
    cats = [c for c, _, _ in profile.top]
    real = [r / profile.n_real for _, r, _ in profile.top]
    syn = [s / profile.n_synthetic for _, _, s in profile.top]
    other_r = 1.0 - math.fsum(real)
    other_s = 1.0 - math.fsum(syn)
    if other_r > 1e-12 or other_s > 1e-12:
        cats.append("other")
        real.append(max(other_r, 0.0))
        syn.append(max(other_s, 0.0))
    return {"categories": cats, "real": [round(x, 6) for x in real], "synthetic": [round(x, 6) for x in syn]}


def continuous_detail(profile: ContinuousProfile, kind: Kind) -> dict[str, Any]:
    """Histogram of both sides as frequencies, with edges (ISO dates for date columns), for plots."""
    if kind in ("date", "timestamp"):
        edges: list[Any] = [_day_label(e, kind) for e in profile.edges]
    else:
        edges = [round(e, 6) for e in profile.edges]
    return {
        "edges": edges,
        "real": [round(c / profile.n_real, 6) for c in profile.real],
        "synthetic": [round(c / profile.n_synthetic, 6) for c in profile.synthetic],
    }


def _day_label(days: float, kind: Kind) -> str:
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(days=days)
    return moment.date().isoformat() if kind == "date" else moment.isoformat(timespec="minutes")
