"""Per-column fidelity: shapes (KS and TV complements), missing values, range and category coverage.

Column roles come from the schema: numerical and datetime columns are continuous (KS complement),
categorical, code and boolean columns are discrete (TV complement); id columns, direct identifiers and
free text are never scored and are listed as skipped with the reason. Values agree with SDMetrics'
metrics of the same names (KSComplement, TVComplement, MissingValueSimilarity, RangeCoverage,
CategoryCoverage) and with the "Column Shapes" property of its QualityReport, on all rows.

Where SDMetrics returns NaN because the synthetic column has no values at all, these metrics score the
column 0 (the worst value) and say so in the notes, so that a failing column is never averaged away.
"""
from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from evaluate.context import EvalContext
from evaluate.fidelity import arrow_counts as counts
from evaluate.fidelity._common import (
    SHAPES,
    ColumnStats,
    clip01,
    column_stats,
    continuous_detail,
    continuous_profile,
    discrete_detail,
    discrete_profiles,
    kind_of,
    mean,
    never_scored_reason,
    require_rows,
    robust_ranges,
    split_columns,
    value_expr,
)
from evaluate.fidelity.parallel import parallel_map
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped

NO_REAL = "no non-null values in the real data"
NO_REAL_ROWS = "the real table has no rows"
NO_SYN_ROWS = "the synthetic table has no rows"


def _result(name: str, rows: list[dict[str, Any]], skipped: list[Skipped], notes: list[str], description: str) -> MetricResult:
    """A per-column result: value is the mean of the scored columns' values, None when none was scored."""
    value = mean(r["value"] for r in rows)
    if value is None:
        notes = [*notes, f"no column could be scored by {description}"]
    return MetricResult(
        name=name,
        family="fidelity",
        value=value,
        goal="maximize",
        range=(0.0, 1.0),
        n=len(rows),
        details=tuple(rows),
        skipped=tuple(skipped),
        notes=tuple(notes),
    )


def _stats(ctx: EvalContext, table: str, columns: list[Any]) -> tuple[dict[str, ColumnStats], dict[str, ColumnStats]]:
    return (
        column_stats(ctx.con, ctx.train.sql_name(table), columns),
        column_stats(ctx.con, ctx.synthetic.sql_name(table), columns),
    )


@metric(
    "fidelity.column_shapes",
    family="fidelity",
    description="Per-column marginals: KS complement (numbers, dates) and TV complement (categories, codes)",
    produces=("fidelity.column_shapes", "fidelity.ks_complement", "fidelity.tv_complement"),
)
def column_shapes(ctx: EvalContext) -> list[MetricResult]:
    """Column Shapes as in SDMetrics' QualityReport: the mean over scored columns of

    * KS complement ``1 - max_x |F_r(x) - F_s(x)|`` for continuous columns (two-sample KS, exact), and
    * TV complement ``1 - 0.5 * sum_k |p_k - q_k|`` for discrete columns,

    both on non-null values. Details carry per column the score and the marginals of both sides
    (top categories + ``other``, or up to 20 equal-width bins) as frequencies, for plots.
    """
    require_rows(ctx, "fidelity.column_shapes")
    shapes: list[dict[str, Any]] = []
    ks_rows: list[dict[str, Any]] = []
    tv_rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    ks_skipped: list[Skipped] = []
    tv_skipped: list[Skipped] = []
    notes: list[str] = []
    for tname in ctx.schema.topological_order():
        split = split_columns(ctx.schema.tables[tname])
        skipped.extend(split.skipped)
        if not split.scored:
            continue
        real, syn = ctx.train.sql_name(tname), ctx.synthetic.sql_name(tname)
        arrow_r, arrow_s = ctx.train.arrow.get(tname), ctx.synthetic.arrow.get(tname)
        fast = arrow_r is not None and arrow_s is not None  # both sides read from typed Parquet: count codes
        if fast:
            assert arrow_r is not None and arrow_s is not None
            stats_r, stats_s = parallel_map(lambda side: counts.column_stats(list(split.scored), side), (arrow_r, arrow_s))
            profiles = dict(zip([c.name for c in split.scored],
                                parallel_map(lambda col: _arrow_profile(col, arrow_r, arrow_s, stats_r, stats_s), split.scored)))
        else:
            stats_r, stats_s = _stats(ctx, tname, list(split.scored))
            continuous_cols = [c for c in split.scored if SHAPES[c.type] == "continuous" and stats_r[c.name].non_null
                               and stats_s[c.name].non_null]
            ranges_r, ranges_s = robust_ranges(ctx.con, real, continuous_cols), robust_ranges(ctx.con, syn, continuous_cols)
            discrete = _discrete_profiles(ctx, real, syn, split.scored, stats_r, stats_s)
        for col in split.scored:
            kind = kind_of(col)
            continuous = SHAPES[col.type] == "continuous"
            label = "ks_complement" if continuous else "tv_complement"
            (ks_skipped if not continuous else tv_skipped).append(
                Skipped(f"{col.type} column: scored by {label}", table=tname, column=col.name)
            )
            sr, ss = stats_r[col.name], stats_s[col.name]
            if sr.non_null == 0:
                reason = NO_REAL_ROWS if sr.rows == 0 else NO_REAL
                skipped.append(Skipped(reason, table=tname, column=col.name))
                (ks_skipped if continuous else tv_skipped).append(Skipped(reason, table=tname, column=col.name))
                continue
            row: dict[str, Any] = {"table": tname, "column": col.name, "metric": label, "type": col.type}
            if ss.non_null == 0:
                row.update(value=0.0, n_real=sr.non_null, n_synthetic=0)
                notes.append(f"{tname}.{col.name}: the synthetic column has no non-null values; scored 0")
            elif continuous and fast:
                prof = profiles[col.name]
                row.update(
                    value=clip01(prof.complement),
                    n_real=prof.n_real,
                    n_synthetic=prof.n_synthetic,
                    bins=continuous_detail(prof, kind),
                )
            elif continuous:
                span = _span_of(col, kind, ranges_r[col.name], ranges_s[col.name]) or _span(sr, ss, col.type)
                prof = continuous_profile(ctx.con, real, syn, value_expr(col), kind=kind, span=span)
                row.update(
                    value=clip01(prof.complement),
                    n_real=prof.n_real,
                    n_synthetic=prof.n_synthetic,
                    bins=continuous_detail(prof, kind),
                )
            else:
                dprof = profiles[col.name] if fast else discrete[col.name]
                row.update(
                    value=clip01(dprof.complement),
                    n_real=dprof.n_real,
                    n_synthetic=dprof.n_synthetic,
                    frequencies=discrete_detail(dprof),
                )
            shapes.append(row)
            brief = {k: row[k] for k in ("table", "column", "value", "n_real", "n_synthetic")}
            (ks_rows if continuous else tv_rows).append(brief)
    return [
        _result("fidelity.column_shapes", shapes, skipped, notes, "column shapes"),
        _result("fidelity.ks_complement", ks_rows, skipped_of_roles(skipped) + ks_skipped, notes, "the KS complement"),
        _result("fidelity.tv_complement", tv_rows, skipped_of_roles(skipped) + tv_skipped, notes, "the TV complement"),
    ]


def _arrow_profile(col: Any, real: pa.Table, synthetic: pa.Table, stats_r: dict[str, ColumnStats],
                   stats_s: dict[str, ColumnStats]) -> Any:
    """One column's profile from both sides' typed Arrow columns (None when a side has no values to profile):
    a KS profile for numbers and dates, a TV profile for categories; columns are profiled in threads."""
    if stats_r[col.name].non_null == 0 or stats_s[col.name].non_null == 0:
        return None
    if SHAPES[col.type] == "continuous":
        kind = kind_of(col)
        side_r, side_s = counts.continuous(col, real.column(col.name)), counts.continuous(col, synthetic.column(col.name))
        span = _span_of(col, kind, counts.robust_range(side_r), counts.robust_range(side_s)) or _span(
            stats_r[col.name], stats_s[col.name], col.type)
        return counts.continuous_profile(side_r, side_s, kind=kind, span=span)
    return counts.discrete_profile(counts.discrete_codes(col, real.column(col.name), synthetic.column(col.name)))


def _discrete_profiles(ctx: EvalContext, real: str, syn: str, columns: Any, stats_r: dict[str, ColumnStats],
                       stats_s: dict[str, ColumnStats]) -> dict[str, Any]:
    """The discrete columns' profiles of one table (those with values on both sides), in one statement; column shapes
    and category coverage ask in the same words, so an engine that keeps answers (Spark) runs it once."""
    cols = [c for c in columns if SHAPES[c.type] == "discrete" and stats_r[c.name].non_null and stats_s[c.name].non_null]
    profiles = discrete_profiles(ctx.con, real, syn, [value_expr(c) for c in cols])
    return {c.name: p for c, p in zip(cols, profiles)}


def skipped_of_roles(skipped: list[Skipped]) -> list[Skipped]:
    """The skips that come from schema roles (ids, identifiers, text), shared by the sub-results."""
    return [s for s in skipped if s.reason not in (NO_REAL, NO_REAL_ROWS)]


def _span_of(col: Any, kind: str, r: tuple[float, float] | None, s: tuple[float, float] | None) -> tuple[float, float] | None:
    """The histogram's span for stored details, from both sides' robust quantiles (``robust_range``), never the exact
    real extremes; values beyond fall into the end bins. In the histogram unit (days for dates), rounded inwards for
    integers and dates so each edge keeps at least ``TAIL_ROWS`` real values beyond it."""
    if r is None or s is None:
        return None
    lo, hi = min(r[0], s[0]), max(r[1], s[1])
    if col.type == "datetime":
        lo, hi = lo / 86400.0, hi / 86400.0
    if kind in ("integer", "date"):
        lo, hi = float(math.ceil(lo)), float(math.floor(hi))
        hi = max(hi, lo)
    return lo, hi


def _span(sr: ColumnStats, ss: ColumnStats, ctype: str) -> tuple[float, float]:
    """(min, max) over both sides in the histogram unit: days for datetimes (stats are in seconds)."""
    lo = min(x for x in (sr.low, ss.low) if x is not None)
    hi = max(x for x in (sr.high, ss.high) if x is not None)
    if ctype == "datetime":
        return lo / 86400.0, hi / 86400.0
    return lo, hi


@metric(
    "fidelity.missing_value_similarity",
    family="fidelity",
    description="Per-column share of missing values, real vs synthetic (1 - |difference|)",
)
def missing_value_similarity(ctx: EvalContext) -> list[MetricResult]:
    """Mean over columns of ``1 - |m_r - m_s|``, m = share of NULL (or NaN) rows (SDMetrics' MissingValueSimilarity).

    Every column but ids and direct identifiers is scored, free text included (its missingness is data).
    """
    require_rows(ctx, "fidelity.missing_value_similarity")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for tname in ctx.schema.topological_order():
        table = ctx.schema.tables[tname]
        cols = []
        for col in table.columns.values():
            reason = never_scored_reason(col)
            if reason is not None and col.type != "text":
                skipped.append(Skipped(reason, table=tname, column=col.name))
            elif col.privacy == "direct_identifier":
                skipped.append(Skipped("direct identifier: never scored", table=tname, column=col.name))
            else:
                cols.append(col)
        if not cols:
            continue
        stats_r, stats_s = _stats(ctx, tname, cols)
        for col in cols:
            sr, ss = stats_r[col.name], stats_s[col.name]
            if sr.rows == 0 or ss.rows == 0:
                skipped.append(Skipped(NO_REAL_ROWS if sr.rows == 0 else NO_SYN_ROWS, table=tname, column=col.name))
                continue
            mr, ms = sr.nulls / sr.rows, ss.nulls / ss.rows
            rows.append(
                {"table": tname, "column": col.name, "value": clip01(1.0 - abs(mr - ms)), "real": mr, "synthetic": ms}
            )
    return [_result("fidelity.missing_value_similarity", rows, skipped, [], "missing value similarity")]


@metric(
    "fidelity.range_coverage",
    family="fidelity",
    description="How much of each continuous column's real range the synthetic data covers",
)
def range_coverage(ctx: EvalContext) -> list[MetricResult]:
    """Mean over continuous columns of SDMetrics' RangeCoverage:
    ``max(0, 1 - (max(0, (min_s - min_r) / (max_r - min_r)) + max(0, (max_r - max_s) / (max_r - min_r))))``.

    A real column with a single value has no range: it is skipped (SDMetrics returns NaN).
    """
    require_rows(ctx, "fidelity.range_coverage")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    for tname in ctx.schema.topological_order():
        split = split_columns(
            ctx.schema.tables[tname], types=("numerical", "datetime"), wrong_type_reason="not continuous: see category_coverage"
        )
        skipped.extend(split.skipped)
        if not split.scored:
            continue
        stats_r, stats_s = _stats(ctx, tname, list(split.scored))
        real_ranges = robust_ranges(ctx.con, ctx.train.sql_name(tname), list(split.scored))
        for col in split.scored:
            sr, ss = stats_r[col.name], stats_s[col.name]
            if sr.non_null == 0:
                skipped.append(Skipped(NO_REAL_ROWS if sr.rows == 0 else NO_REAL, table=tname, column=col.name))
                continue
            assert sr.low is not None and sr.high is not None
            if sr.high == sr.low:
                skipped.append(Skipped("the real column has a single value: its range is empty", table=tname, column=col.name))
                continue
            if ss.non_null == 0 or ss.low is None or ss.high is None:
                value = 0.0
                notes.append(f"{tname}.{col.name}: the synthetic column has no non-null values; scored 0")
            else:
                width = sr.high - sr.low
                value = max(1.0 - (max((ss.low - sr.low) / width, 0.0) + max((sr.high - ss.high) / width, 0.0)), 0.0)
            real_range = real_ranges[col.name]
            rows.append(
                {
                    "table": tname,
                    "column": col.name,
                    "value": clip01(value),
                    # the exact real extremes are used for the value but never stored (they single people out)
                    "real_low": None if real_range is None else real_range[0],
                    "real_high": None if real_range is None else real_range[1],
                    "real_quantiles": "interpolated, at least 10 real values beyond each (robust_range)",
                    "synthetic_min": ss.low,
                    "synthetic_max": ss.high,
                    "unit": "seconds since 1970" if col.type == "datetime" else "value",
                }
            )
    return [_result("fidelity.range_coverage", rows, skipped, notes, "range coverage")]


@metric(
    "fidelity.category_coverage",
    family="fidelity",
    description="Share of each discrete column's real categories that appear in the synthetic data",
)
def category_coverage(ctx: EvalContext) -> list[MetricResult]:
    """Mean over discrete columns of SDMetrics' CategoryCoverage: ``|C_s ∩ C_r| / |C_r|`` on non-null values.

    Details also count synthetic categories never seen in the real data.
    """
    require_rows(ctx, "fidelity.category_coverage")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    for tname in ctx.schema.topological_order():
        split = split_columns(
            ctx.schema.tables[tname], types=("categorical", "code", "boolean"), wrong_type_reason="not discrete: see range_coverage"
        )
        skipped.extend(split.skipped)
        if not split.scored:
            continue
        real, syn = ctx.train.sql_name(tname), ctx.synthetic.sql_name(tname)
        stats_r, stats_s = _stats(ctx, tname, list(split.scored))
        profiles = _discrete_profiles(ctx, real, syn, split.scored, stats_r, stats_s)
        for col in split.scored:
            sr, ss = stats_r[col.name], stats_s[col.name]
            if sr.non_null == 0:
                skipped.append(Skipped(NO_REAL_ROWS if sr.rows == 0 else NO_REAL, table=tname, column=col.name))
                continue
            if ss.non_null == 0:
                notes.append(f"{tname}.{col.name}: the synthetic column has no non-null values; scored 0")
                rows.append({"table": tname, "column": col.name, "value": 0.0, "real_categories": None, "covered": 0})
                continue
            prof = profiles[col.name]
            rows.append(
                {
                    "table": tname,
                    "column": col.name,
                    "value": clip01(prof.categories_covered / prof.categories_real),
                    "real_categories": prof.categories_real,
                    "covered": prof.categories_covered,
                    "synthetic_only": prof.categories_synthetic - prof.categories_covered,
                }
            )
    return [_result("fidelity.category_coverage", rows, skipped, notes, "category coverage")]
