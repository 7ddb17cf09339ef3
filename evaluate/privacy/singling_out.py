"""Singling-out risk in the style of Anonymeter (Giomi et al., PoPETs 2023; Cohen and Nissim, PNAS 2020).

The attacker builds queries from the synthetic data that match exactly one synthetic record, and
hopes each matches exactly one real patient. Multivariate mode (default): a query takes a random
synthetic record and ``n_cols`` random columns; a category becomes ``col == value``, a number
``col >= value`` when above the synthetic median and ``col <= value`` otherwise, a missing value
``col is missing``. Univariate mode: one-column queries on values held by a single synthetic record
and on the minimum and maximum of numbers. Queries that single out a synthetic record are kept,
distinct, until ``n_attacks`` (or ``max_attempts`` candidates).

* attack rate: share of the queries found (at most ``n_attacks``) that single out a training patient
  (the denominator is the queries found, as in Anonymeter: asking for more attacks than the synthetic
  data can make must not dilute the rate);
* control rate: the same on the holdout. When the two differ in size (a release's 80/20 split), both
  are measured at the smaller size: the larger side's successes are their exact expectation over
  random subsets of that size (each query's matches, then the hypergeometric chance of keeping exactly
  one: ``expected_singles``). Anonymeter instead extrapolates the control's successes to the original
  size with a fitted model (``P(n) = norm * integral_0^w n w' (1 - w')^(n-1) dw'``); from 2,000 holdout
  patients to 8,000 training patients of DE-SynPUF that model's factor ranged from 1.1 to 2.7 where the
  true ratio (measured on 8,000 holdout patients) was 1.7 to 3.0, and made fresh patients look like a
  singling-out risk in 3 runs of 28. The price: at the smaller size a query that singles out one
  training patient counts only in the subsets holding that patient, so a copy's signal is diluted by
  the size ratio (the near-copy share, ``dcr.py``, is the statistic for a few copies);
* baseline rate: random queries (random columns, random synthetic values, random operators) that
  single out a training patient;
* risk: ``(attack - control) / (1 - control)`` with its CI (``stats.privacy_risk``).

Rows are deduplicated first, as Anonymeter does. Queries are counted with sorted column indexes: the
most selective condition gives a contiguous slice of candidate rows and only those are checked
against the other conditions, instead of scanning the table once per query.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.attack_data import MixedFrame, attack_features, attack_frames, empty_columns, risk_result
from evaluate.privacy.inputs import privacy_inputs, rng_for
from evaluate.privacy.params import check_choice, check_columns, check_int, confidence_param, get_param
from evaluate.privacy.stats import PrivacyRisk, privacy_risk
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped, skipped_result

NAME = "privacy.singling_out"
RESULT = "privacy.singling_out.risk"

# a predicate: (column position in frame.names, operator, value); value is a float or a category code
Predicate = tuple[int, str, float]
Query = tuple[Predicate, ...]
_SLICED = ("eq", "le", "lt", "ge", "gt", "isnull")


class QueryCounter:
    """Counts the rows of one frame that match conjunctive queries, with one sorted index per column."""

    def __init__(self, frame: MixedFrame) -> None:
        self.n = frame.n_rows
        self.n_numeric = len(frame.numeric_names)
        self.values: list[np.ndarray] = [frame.numeric[:, j] for j in range(frame.numeric.shape[1])]
        self.values += [frame.categorical[:, j] for j in range(frame.categorical.shape[1])]
        self.order: list[np.ndarray] = []
        self.sorted: list[np.ndarray] = []
        self.valid: list[tuple[int, int]] = []  # [lo, hi) of present values in sorted order
        for j, v in enumerate(self.values):
            order = np.argsort(v, kind="stable")
            s = v[order]
            self.order.append(order)
            self.sorted.append(s)
            if j < self.n_numeric:
                self.valid.append((0, int(np.searchsorted(s, np.nan))))  # NaN sort last
            else:
                self.valid.append((int(np.searchsorted(s, 0)), self.n))  # -1 (missing) sorts first

    def _slice(self, p: Predicate) -> tuple[int, int] | None:
        col, op, val = p
        s = self.sorted[col]
        lo, hi = self.valid[col]
        if s.dtype.kind in "iu" and float(val).is_integer():
            val = s.dtype.type(val)  # a float against integer codes would cast the whole column on every search
        if op == "isnull":
            return (hi, self.n) if col < self.n_numeric else (0, lo)
        if op == "eq":
            return int(lo + np.searchsorted(s[lo:hi], val, "left")), int(lo + np.searchsorted(s[lo:hi], val, "right"))
        if op == "le":
            return lo, int(lo + np.searchsorted(s[lo:hi], val, "right"))
        if op == "lt":
            return lo, int(lo + np.searchsorted(s[lo:hi], val, "left"))
        if op == "ge":
            return int(lo + np.searchsorted(s[lo:hi], val, "left")), hi
        if op == "gt":
            return int(lo + np.searchsorted(s[lo:hi], val, "right")), hi
        return None

    def _mask(self, p: Predicate, rows: np.ndarray) -> np.ndarray:
        col, op, val = p
        v = self.values[col][rows]
        numeric = col < self.n_numeric
        present = ~np.isnan(v) if numeric else v >= 0
        if op == "isnull":
            return ~present
        if op == "notnull":
            return present
        if op == "eq":
            return v == val
        if op == "ne":
            return present & (v != val)
        if op == "le":
            return v <= val
        if op == "lt":
            return v < val
        if op == "ge":
            return v >= val
        return v > val

    def count(self, query: Query) -> int:
        """Rows matching every predicate (a missing value matches no comparison, as in Polars)."""
        best: tuple[int, int, int] | None = None
        for i, p in enumerate(query):
            sl = self._slice(p)
            if sl is not None and (best is None or sl[1] - sl[0] < best[1] - best[0]):
                best = (sl[0], sl[1], i)
        if best is None:
            rows = np.arange(self.n)
            rest: Sequence[Predicate] = query
        else:
            lo, hi, i = best
            if hi <= lo:
                return 0
            rows = self.order[query[i][0]][lo:hi]
            rest = query[:i] + query[i + 1 :]
        for p in rest:
            rows = rows[self._mask(p, rows)]
            if rows.size == 0:
                return 0
        return int(rows.size)


# -- query generation ------------------------------------------------------------------------------------


def _as_float_matrix(frame: MixedFrame) -> np.ndarray:
    """All columns as float64 (category codes as numbers), NaN where missing."""
    cat = frame.categorical.astype(np.float64)
    cat[frame.categorical < 0] = np.nan
    return np.concatenate([frame.numeric.astype(np.float64), cat], axis=1)


_OPS = ("isnull", "eq", "ge", "le")


def multivariate_queries(syn: MixedFrame, counter: QueryCounter, *, n_queries: int, n_cols: int, max_attempts: int,
                         rng: np.random.Generator, batch: int = 1000, screen: int = 2048) -> tuple[list[Query], int]:
    """Distinct queries from random synthetic records that single out one synthetic record; and attempts made.

    Candidates are built a batch at a time with array operations. As a query built from a record always
    matches that record, it singles out when no *other* record matches; a batch is first screened on a
    seeded subset of ``screen`` records (any other match there rejects the candidate, which is exact),
    and only the survivors are counted on all records.
    """
    nn = len(syn.numeric_names)
    n_all = len(syn.names)
    values = _as_float_matrix(syn)
    with np.errstate(all="ignore"):
        medians = np.array([np.nanmedian(values[:, j]) if (~np.isnan(values[:, j])).any() else np.nan
                            for j in range(nn)])
    order = np.argsort(np.array(syn.names, dtype=object).astype(str), kind="stable")
    rank = np.empty(n_all, dtype=np.int64)
    rank[order] = np.arange(n_all)
    subset = np.sort(rng.choice(syn.n_rows, size=min(screen, syn.n_rows), replace=False))
    sub_values = values[subset]
    position = np.full(syn.n_rows, -1, dtype=np.int64)
    position[subset] = np.arange(subset.size)
    found: list[Query] = []
    seen: set[Query] = set()
    attempts = 0
    while len(found) < n_queries and attempts < max_attempts:
        size = min(batch, max_attempts - attempts)
        rows = rng.integers(0, syn.n_rows, size=size)
        cols = np.argsort(rng.random((size, n_all)), axis=1)[:, :n_cols]
        cols = np.take_along_axis(cols, np.argsort(rank[cols], axis=1, kind="stable"), axis=1)  # by column name
        vals = values[rows[:, None], cols]
        missing = np.isnan(vals)
        numeric = cols < nn
        with np.errstate(invalid="ignore"):
            above = vals > np.where(numeric, medians[np.minimum(cols, max(nn - 1, 0))] if nn else 0.0, 0.0)
        ops = np.where(missing, 0, np.where(~numeric, 1, np.where(above, 2, 3)))
        # screening: does another record of the subset match every condition?
        match = np.ones((size, subset.size), dtype=bool)
        with np.errstate(invalid="ignore"):
            for j in range(n_cols):
                v = sub_values[:, cols[:, j]].T  # (size, subset)
                x = vals[:, j, None]
                o = ops[:, j, None]
                match &= np.where(o == 0, np.isnan(v), np.where(o == 1, v == x, np.where(o == 2, v >= x, v <= x)))
        own = position[rows]
        inside = own >= 0
        match[np.flatnonzero(inside), own[inside]] = False
        for i in np.flatnonzero(~match.any(axis=1)):
            q = tuple((int(c), _OPS[int(o)], 0.0 if o == 0 else float(v)) for c, o, v in zip(cols[i], ops[i], vals[i]))
            if q in seen:
                continue
            if counter.count(q) == 1:
                seen.add(q)
                found.append(q)
                if len(found) >= n_queries:
                    break
        attempts += size
    return found, attempts


def univariate_queries(syn: MixedFrame, counter: QueryCounter, *, n_queries: int, rng: np.random.Generator) -> list[Query]:
    """One-column queries on rare values, minima and maxima of the synthetic data that single out one record."""
    nn = len(syn.numeric_names)
    queries: list[Query] = []
    for c in range(len(syn.names)):
        v = syn.numeric[:, c] if c < nn else syn.categorical[:, c - nn]
        missing = np.isnan(v) if c < nn else v < 0
        if missing.sum() == 1:
            queries.append(((c, "isnull", 0.0),))
        present = v[~missing]
        if c < nn and present.size:
            queries.extend([((c, "le", float(present.min())),), ((c, "ge", float(present.max())),)])
        vals, counts = np.unique(present, return_counts=True)
        queries.extend(((c, "eq", float(x)),) for x in vals[counts == 1])
    perm = rng.permutation(len(queries))
    out = []
    for i in perm:
        if counter.count(queries[i]) == 1:
            out.append(queries[i])
            if len(out) >= n_queries:
                break
    return out


def random_queries(syn: MixedFrame, *, n_queries: int, n_cols: int, rng: np.random.Generator) -> list[Query]:
    """The random-guess baseline: random columns, random synthetic values (missing included), random operators."""
    nn = len(syn.numeric_names)
    uniques = []
    for c in range(len(syn.names)):
        v = syn.numeric[:, c] if c < nn else syn.categorical[:, c - nn]
        missing = np.isnan(v) if c < nn else v < 0
        u = list(np.unique(v[~missing]).astype(float))
        uniques.append(u + ([None] if missing.any() else []))
    out: list[Query] = []
    for _ in range(n_queries):
        cols = rng.choice(len(syn.names), size=n_cols, replace=False)
        preds = []
        for c in sorted(int(x) for x in cols):
            u = uniques[c]
            val = u[int(rng.integers(0, len(u)))] if u else None
            ops = ("eq", "ne", "gt", "lt", "ge", "le") if c < nn else ("eq", "ne")
            op = ops[int(rng.integers(0, len(ops)))]
            if val is None:
                preds.append((c, "isnull" if op == "eq" else "notnull", 0.0))
            else:
                preds.append((c, op, float(val)))
        out.append(tuple(preds))
    return out


# -- control size correction ----------------------------------------------------------------------------


def singling_out_probability_integral(n: float, w_min: float, w_max: float) -> float:
    """Integral over query weights [w_min, w_max] of the chance n*w*(1-w)^(n-1) that a query singles out."""
    return ((n * w_min + 1) * (1 - w_min) ** n - (n * w_max + 1) * (1 - w_max) ** n) / (n + 1)


def expected_singles(matches: np.ndarray, n: int, size: int) -> float:
    """Expected queries matching exactly one row of a random ``size``-row subsample of ``n`` rows.

    A query matching ``m`` of the ``n`` rows keeps ``Hypergeometric(n, m, size)`` of them, exactly one
    with probability ``m C(n - m, size - 1) / C(n, size)``.
    """
    total = 0.0
    base = math.lgamma(n + 1) - math.lgamma(size + 1) - math.lgamma(n - size + 1)
    for m in matches[(matches > 0) & (matches <= n - size + 1)]:
        m = int(m)
        rest = math.lgamma(n - m + 1) - math.lgamma(size) - math.lgamma(n - m - size + 2)
        total += m * math.exp(rest - base)
    return total


def singles_at(matches: np.ndarray, n: int, size: int) -> float:
    """Queries that single out one of ``n`` rows (``size == n``), or are expected to in a random ``size``-row subset."""
    if size >= n:
        return float(np.sum(matches == 1))
    return expected_singles(matches, n, size)


# -- the attack -------------------------------------------------------------------------------------------


def singling_out_risk(
    ori: MixedFrame,
    syn: MixedFrame,
    control: MixedFrame | None,
    *,
    n_attacks: int = 500,
    n_cols: int = 3,
    mode: str = "multivariate",
    max_attempts: int = 10_000_000,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> tuple[PrivacyRisk, dict[str, Any]]:
    """The singling-out risk of ``syn`` for ``ori`` against ``control`` (see the module docstring)."""
    ori, syn = ori.unique(), syn.unique()
    control = control.unique() if control is not None else None
    if min(ori.n_rows, syn.n_rows) == 0 or (control is not None and control.n_rows == 0):
        raise EmptyInputError("singling out needs original, synthetic and control records")
    n_cols = min(n_cols, len(syn.names))
    syn_counter = QueryCounter(syn)
    attempts = 0
    if mode == "multivariate":
        queries, attempts = multivariate_queries(syn, syn_counter, n_queries=n_attacks, n_cols=n_cols,
                                                 max_attempts=max_attempts, rng=rng)
    else:
        queries = univariate_queries(syn, syn_counter, n_queries=n_attacks, rng=rng)
    if not queries:
        raise EmptyInputError(
            f"no query singles out a synthetic record in {max(attempts, 1):,} attempt(s): singling out cannot be measured"
        )
    # the rates are over the queries found, not the attacks asked for (as Anonymeter since 1.0.1: a query
    # that was never built cannot fail), and the baseline makes as many random queries
    n = len(queries)
    baseline = random_queries(syn, n_queries=n, n_cols=n_cols if mode == "multivariate" else 1, rng=rng)
    ori_counter = QueryCounter(ori)
    ori_matches = np.array([ori_counter.count(q) for q in queries], dtype=np.int64)
    base_matches = np.array([ori_counter.count(q) for q in baseline], dtype=np.int64)
    size = ori.n_rows
    n_control: float | None = None
    if control is not None:
        ctrl_counter = QueryCounter(control)
        ctrl_matches = np.array([ctrl_counter.count(q) for q in queries], dtype=np.int64)
        size = min(ori.n_rows, control.n_rows)
        n_control = singles_at(ctrl_matches, control.n_rows, size)
    n_success = singles_at(ori_matches, ori.n_rows, size)
    n_baseline = singles_at(base_matches, ori.n_rows, size)
    risk = privacy_risk(n_success=n_success, n_attacks=n, n_baseline=n_baseline, n_control=n_control,
                        confidence=confidence)
    info = {"n_queries": len(queries), "n_attempts": attempts, "compared_at": size,
            "n_original": ori.n_rows, "n_synthetic": syn.n_rows, "n_control": None if control is None else control.n_rows}
    return risk, info


@metric(NAME, family="privacy", description="Anonymeter-style singling-out risk with baseline and control",
        produces=(RESULT,), needs_holdout=True)
def singling_out(ctx: EvalContext) -> list[MetricResult]:
    n_attacks = check_int(get_param(ctx, NAME, "n_attacks", 500), "n_attacks", NAME, low=1, high=1_000_000)
    n_cols = check_int(get_param(ctx, NAME, "n_cols", 3), "n_cols", NAME, low=1, high=100)
    mode = check_choice(get_param(ctx, NAME, "mode", "multivariate"), "mode", NAME, ("multivariate", "univariate"))
    max_attempts = check_int(get_param(ctx, NAME, "max_attempts", 100_000), "max_attempts", NAME, low=1)
    confidence = confidence_param(ctx, NAME)
    inputs = privacy_inputs(ctx)
    available = [f.name for f in attack_features(inputs)]
    columns = get_param(ctx, NAME, "columns", None)
    columns = available if columns is None else check_columns(columns, "columns", NAME, available)
    empty = empty_columns(inputs, columns)
    columns = [c for c in columns if c not in empty]
    skipped = tuple(Skipped("no value in the training sample", column=c) for c in empty)
    if not columns:
        return [skipped_result(RESULT, "privacy", "minimize", "no usable attack column")]
    ori, ctrl, syn = (f.select(columns) for f in attack_frames(inputs))
    try:
        risk, info = singling_out_risk(ori, syn, ctrl, n_attacks=n_attacks, n_cols=n_cols, mode=mode,
                                       max_attempts=max_attempts, rng=rng_for(ctx.options.seed, 61), confidence=confidence)
    except EmptyInputError as exc:
        return [skipped_result(RESULT, "privacy", "minimize", str(exc))]
    notes = [inputs.sampling_note(),
             f"{mode} queries on {len(columns)} column(s), {n_cols} per query; {info['n_queries']} of {n_attacks} "
             f"singling-out queries found in {info['n_attempts']:,} attempts; original data: all "
             f"{info['n_original']:,} distinct training records"]
    if info["n_queries"] < n_attacks:
        notes.append(f"fewer queries than attacks were found: the rates are over the {info['n_queries']} queries found "
                     "(a wider CI), as in Anonymeter")
    if info["n_control"] is not None and info["n_control"] != info["n_original"]:
        notes.append(f"rates compared at {info['compared_at']:,} records: the larger side's successes are their exact "
                     "expectation over random subsets of that size (not Anonymeter's extrapolation of the control)")
    return [risk_result(RESULT, "singling out", risk, seed=ctx.options.seed, notes=notes,
                        details=({"kind": "attack", **info, "mode": mode, "n_cols": n_cols, "columns": list(columns)},),
                        skipped=skipped)]
