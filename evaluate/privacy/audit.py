"""The empirical privacy audit: a lower bound on epsilon from canary patients, in one training run.

Steinke, Nasr and Jagielski, "Privacy auditing with one (1) training run" (NeurIPS 2023): ``m``
canaries (``canaries.py``: copies of training patients, each marked by values made up for it alone)
are each put in the training data independently with probability 1/2; the release's generator, with
the release's parameters, is refitted on the training set plus the canaries put in and samples a
cohort; a canary is guessed "in" when the cohort holds one of its made-up values and "out" otherwise.
If the generator is (epsilon, delta)-DP for adding or removing one patient, the number of right
guesses ``v`` out of ``r`` is dominated by a Binomial(r, e^eps / (1 + e^eps)) plus a delta term (their
Theorem 5.2), so ``P[v or more right] <= p(eps)`` and every epsilon whose ``p(eps)`` is below
``1 - confidence`` is ruled out. The result is the largest epsilon ruled out (at least 0) and the
largest the design could have ruled out at all (every guess right): **the audit cannot show more than
that**, whatever the generator does.

It separates the generators that learn their categories from the data (``copy``, SDV's, which give a
canary's made-up values back) from a DP generator whose domains are public or privately selected (a
value held by one patient is dropped with probability at least 1 - delta). A bound of 0 does not prove
privacy; a bound at the design's limit means the true epsilon may be far higher.

The audit refits the generator, so it runs only when asked (``synthmed evaluate ID --data DIR --audit
canaries``): ``EvalOptions.params["privacy.audit"]`` carries ``generator_factory`` (a zero-argument
callable returning an unfitted generator, as for the shadow-model attack), ``n_canaries`` (default
100), ``delta`` (the release's delta; 0 for a non-DP release) and ``confidence`` (default 0.95).
Without a factory the result is skipped and says how to run it: the membership attacks' own targets
cannot bound epsilon from one fitted generator (their membership is not drawn independently of how
they were chosen).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_schemas.rules import quote
from evaluate.context import EvalContext
from evaluate.privacy.canaries import CanaryError, canary_scores, make_canaries, with_canaries
from evaluate.privacy.params import check_float, check_int, confidence_param, get_param
from evaluate.registry import metric
from evaluate.result import MetricResult, skipped_result

NAME = "privacy.audit"
RESULT = "privacy.epsilon_lower_bound"
DEFAULT_CANARIES = 100
HOW_TO_RUN = "run `synthmed evaluate RELEASE_ID --data DIR --audit canaries` (it inserts canary patients and refits the generator)"


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[at least ``v`` of ``r`` guesses right] if the generator is (epsilon, delta)-DP, ``m`` canaries.

    Steinke, Nasr and Jagielski 2023, Theorem 5.2: P[Binomial(r, q) >= v] + 2 m delta max_i
    P[v - i <= Binomial(r, q) < v] / i, with q = e^eps / (1 + e^eps).
    """
    if not 0 <= v <= r <= m:
        raise ValueError(f"p_value needs 0 <= v <= r <= m; got v={v}, r={r}, m={m}")
    if v == 0:
        return 1.0
    from scipy.stats import binom  # lazily: scipy.stats takes a second to import, and only the audit needs it

    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(binom.sf(v - 1, r, q))
    below = binom.pmf(v - np.arange(1, v + 1), r, q)  # P[Binomial = v - i], i = 1..v
    alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(m: int, r: int, v: int, *, delta: float, confidence: float) -> float:
    """The largest epsilon that ``v`` right guesses out of ``r`` rule out at ``confidence`` (0 when none is)."""
    level = 1.0 - confidence
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < level:
        low, high = high, high * 2.0
        if high > 1e3:  # pragma: no cover - v = r with r in the millions
            return low
    for _ in range(60):
        mid = 0.5 * (low + high)
        if p_value(m, r, v, mid, delta) < level:
            low = mid
        else:
            high = mid
    return low


@dataclass(frozen=True)
class CanaryAudit:
    """One canary audit: what was inserted, how the guesses went, the bound and the design's limit."""

    canaries: int
    left_out: int
    included: int
    guesses: int
    correct: int
    included_with_trace: int
    excluded_with_trace: int
    epsilon_lower_bound: float
    max_certifiable: float
    delta: float
    confidence: float
    marker_columns: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        return {
            "kind": "audit", "method": "canaries", "canaries": self.canaries, "canaries_left_out": self.left_out,
            "included": self.included, "guesses": self.guesses, "correct": self.correct,
            "accuracy": self.correct / self.guesses if self.guesses else None,
            "included_with_trace": self.included_with_trace, "excluded_with_trace": self.excluded_with_trace,
            "epsilon_lower_bound": self.epsilon_lower_bound, "max_certifiable": self.max_certifiable,
            "delta": self.delta, "confidence": self.confidence, "marker_columns": list(self.marker_columns),
        }


def run_canary_audit(
    ctx: EvalContext, factory: Callable[[], Any], *, n_canaries: int, delta: float, confidence: float
) -> CanaryAudit:
    """Insert canaries into the training set, refit and sample with ``factory()``, guess, bound (module docstring)."""
    rng = np.random.default_rng([ctx.options.seed, 61])
    canaries = make_canaries(ctx.train, n_canaries, rng)
    m = canaries.n
    if m < 2:
        raise CanaryError(f"only {m} canary could be made valid under the schema's rules; the audit needs at least 2")
    included = rng.random(m) < 0.5
    train = with_canaries(ctx.train, canaries, included)
    synthetic = None
    try:
        generator = factory()
        generator.fit(train)
        n_train = int(train.con.execute(
            f"SELECT count(DISTINCT {quote(ctx.schema.patient.column)}) FROM {train.sql_name(ctx.schema.patient.table)}"
        ).fetchall()[0][0])
        size = generator.release_size(n_train)  # as the release would: a DP generator's own noisy estimate
        synthetic = generator.sample(int(size or n_train), seed=ctx.options.seed)
        scores = canary_scores(synthetic, canaries)
    finally:
        train.con.execute(f"DROP SCHEMA IF EXISTS {quote(train.namespace)} CASCADE")
        if synthetic is not None and synthetic.con is not ctx.con:
            synthetic.con.close()
    guess_in = scores > 0
    correct = int((guess_in == included).sum())
    return CanaryAudit(
        canaries=m, left_out=canaries.dropped, included=int(included.sum()), guesses=m, correct=correct,
        included_with_trace=int((guess_in & included).sum()), excluded_with_trace=int((guess_in & ~included).sum()),
        epsilon_lower_bound=epsilon_lower_bound(m, m, correct, delta=delta, confidence=confidence),
        max_certifiable=epsilon_lower_bound(m, m, m, delta=delta, confidence=confidence),
        delta=delta, confidence=confidence, marker_columns=tuple(f"{t}.{c}" for t, c in canaries.marker_columns),
    )


def limit_text(max_certifiable: float) -> str:
    """The sentence the report and the app show beside an audited bound."""
    return f"the audit cannot show more than {max_certifiable:.2f}"


@metric(NAME, family="privacy", description="one-run canary audit: empirical lower bound on epsilon (refits the generator)",
        produces=(RESULT,))
def privacy_audit(ctx: EvalContext) -> list[MetricResult]:
    factory = get_param(ctx, NAME, "generator_factory", None)
    if factory is None:
        return [skipped_result(RESULT, "privacy", "minimize", f"the epsilon audit did not run: {HOW_TO_RUN}")]
    confidence = confidence_param(ctx, NAME)
    delta = check_float(get_param(ctx, NAME, "delta", 0.0), "delta", NAME, low=0.0, high=0.1)
    n_canaries = check_int(get_param(ctx, NAME, "n_canaries", DEFAULT_CANARIES), "n_canaries", NAME, low=2, high=100_000)
    try:
        audit = run_canary_audit(ctx, factory, n_canaries=n_canaries, delta=delta, confidence=confidence)
    except CanaryError as exc:
        return [skipped_result(RESULT, "privacy", "minimize", str(exc))]
    saturated = audit.epsilon_lower_bound >= audit.max_certifiable - 1e-6
    notes = (
        f"one-run canary audit (Steinke, Nasr and Jagielski 2023): {audit.canaries} canary patients, each put in the "
        f"training data with probability 1/2 ({audit.included} were), the generator refitted on them; a canary is "
        "guessed 'in' when the sample holds one of its made-up values",
        f"{audit.correct} of {audit.guesses} guesses right: with probability {confidence:.0%} the generator is not "
        f"(epsilon, {delta:g})-DP for any epsilon below {audit.epsilon_lower_bound:.2f}",
        f"{limit_text(audit.max_certifiable)} (every guess right, {audit.canaries} canaries, delta {delta:g}); "
        + ("the bound is at that limit: the true epsilon may be far higher" if saturated
           else "a value below it is what the canaries showed, and a small value does not prove privacy"),
    )
    return [
        MetricResult(
            name=RESULT, family="privacy", value=audit.epsilon_lower_bound, goal="minimize",
            range=(0.0, audit.max_certifiable), n=audit.canaries, details=(audit.row(),), notes=notes, seed=ctx.options.seed,
        )
    ]
