"""The empirical privacy audit: the lower bound on epsilon that the membership attacks prove.

If a generator is (epsilon, delta)-differentially private with the patient as the unit, every
membership test on a patient has ``TPR <= exp(epsilon) * FPR + delta`` and
``TNR <= exp(epsilon) * FNR + delta`` (Kairouz, Oh and Viswanath, ICML 2015). An attack that reaches
some TPR at some FPR therefore proves ``epsilon >= ln((TPR - delta) / FPR)`` (Jagielski, Ullman and
Oprea, "Auditing differentially private machine learning", NeurIPS 2020). Here, for every membership
attack that ran on the evaluation (scores kept by ``attack_scores``; the distance and DOMIAS attacks
are run if they have not been, the shadow-model attack only reused):

* the targets are split at random (seeded, stratified) into a half that *chooses* the operating
  point (the threshold and side that maximise the bound on that half) and a half that *measures*
  it, so the threshold is not fitted to the counts it is judged on;
* on the measuring half, TPR and FPR (or TNR and FNR) get one-sided Clopper-Pearson bounds, each at
  ``(1 - confidence) / (2 m)`` for ``m`` attacks (Bonferroni), and the bound uses the conservative
  ends: ``ln((TPR_low - delta) / FPR_high)``;
* the result is the largest bound over the attacks, at least 0: with probability ``confidence`` the
  release's true epsilon is at least that (the targets are treated as independent trials, as in
  Jagielski et al.; Steinke, Nasr and Jagielski, "Privacy auditing with one (1) training run",
  NeurIPS 2023, justify auditing with one fitted generator and many randomly included targets).

This is a *lower* bound: a generator with a large theoretical epsilon may show a small one because
the attacks are weak; a non-DP release has no other epsilon. ``delta`` (default 0) can be set to the
release's delta under ``params["privacy.audit"]["delta"]``. The largest bound the target counts can
show at all is reported too (with 100 targets per class it is about 3.3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import beta

from evaluate.context import EvalContext
from evaluate.privacy.attack_scores import AttackScores, remembered
from evaluate.privacy.inputs import rng_for
from evaluate.privacy.params import check_float, confidence_param, get_param
from evaluate.registry import METRICS, metric
from evaluate.result import Interval, MetricResult, Skipped, skipped_result

NAME = "privacy.audit"
RESULT = "privacy.epsilon_lower_bound"
ATTACKS = ("distance", "domias", "shadow")
RERUNNABLE = ("distance", "domias")
MIN_PER_CLASS = 4


def cp_lower(k: np.ndarray | float, n: int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound of a success rate (``k`` of ``n``) at level ``1 - alpha``."""
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low = beta.ppf(alpha, k, n - k + 1)
    return np.where(k <= 0, 0.0, np.nan_to_num(low, nan=0.0))


def cp_upper(k: np.ndarray | float, n: int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound of a success rate (``k`` of ``n``) at level ``1 - alpha``."""
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        high = beta.ppf(1.0 - alpha, k + 1, n - k)
    return np.where(k >= n, 1.0, np.nan_to_num(high, nan=1.0))


def _log_ratio(num: np.ndarray, den: np.ndarray, delta: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64) - delta
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(num / den)
    return np.where((num > 0) & (den > 0), out, np.where(num > 0, np.inf, -np.inf))


def _counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (distinct scores, highest first) and the members / non-members scoring at least each."""
    thresholds = np.unique(scores)[::-1]
    pos = np.searchsorted(-np.sort(-scores[labels]), -thresholds, side="right") if labels.any() else np.zeros(thresholds.size)
    neg = np.searchsorted(-np.sort(-scores[~labels]), -thresholds, side="right") if (~labels).any() else np.zeros(thresholds.size)
    return thresholds, pos.astype(np.float64), neg.astype(np.float64)


@dataclass(frozen=True)
class AuditPoint:
    """The operating point chosen for one attack and the bound it proves on the measuring half."""

    attack: str
    side: str  # "tpr/fpr": scores >= threshold say member; "tnr/fnr": the other way round
    threshold: float
    rate: float  # TPR (or TNR) on the measuring half
    false_rate: float  # FPR (or FNR)
    rate_low: float
    false_rate_high: float
    epsilon_point: float
    epsilon_low: float
    epsilon_high: float
    max_certifiable: float
    n_members: int
    n_non_members: int

    def row(self) -> dict[str, Any]:
        finite = lambda v: None if not math.isfinite(v) else float(v)  # noqa: E731
        return {
            "kind": "audit", "attack": self.attack, "side": self.side, "threshold": finite(self.threshold),
            "rate": self.rate, "false_rate": self.false_rate, "rate_low": self.rate_low,
            "false_rate_high": self.false_rate_high, "epsilon_point": finite(self.epsilon_point),
            "epsilon_lower_bound": self.epsilon_low, "max_certifiable": self.max_certifiable,
            "n_members": self.n_members, "n_non_members": self.n_non_members,
        }


def audit_attack(scores: np.ndarray, labels: np.ndarray, *, attack: str, alpha: float, delta: float,
                 rng: np.random.Generator) -> AuditPoint:
    """Choose an operating point on one half of the targets, bound epsilon on the other (``alpha`` per rate)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    choose = np.zeros(scores.size, dtype=bool)
    for cls in (True, False):
        idx = np.flatnonzero(labels == cls)
        choose[rng.permutation(idx)[: idx.size // 2]] = True
    a_s, a_l = scores[choose], labels[choose]
    b_s, b_l = scores[~choose], labels[~choose]
    na_p, na_n = int(a_l.sum()), int((~a_l).sum())
    nb_p, nb_n = int(b_l.sum()), int((~b_l).sum())
    thresholds, tp, fp = _counts(a_s, a_l)
    fn, tn = na_p - tp, na_n - fp
    # the bound each candidate point would prove on the choosing half: pick the best (finite) one
    lower_tpr = _log_ratio(cp_lower(tp, na_p, alpha), cp_upper(fp, na_n, alpha), delta)
    lower_tnr = _log_ratio(cp_lower(tn, na_n, alpha), cp_upper(fn, na_p, alpha), delta)
    both = np.concatenate([lower_tpr, lower_tnr])
    best = int(np.argmax(both))
    side = "tpr/fpr" if best < thresholds.size else "tnr/fnr"
    threshold = float(thresholds[best % thresholds.size])
    member = b_s >= threshold
    tp_b, fp_b = float((member & b_l).sum()), float((member & ~b_l).sum())
    if side == "tpr/fpr":
        k_rate, n_rate, k_false, n_false = tp_b, nb_p, fp_b, nb_n
    else:
        k_rate, n_rate, k_false, n_false = nb_n - fp_b, nb_n, nb_p - tp_b, nb_p
    rate_low = float(cp_lower(k_rate, n_rate, alpha))
    rate_high = float(cp_upper(k_rate, n_rate, alpha))
    false_low = float(cp_lower(k_false, n_false, alpha))
    false_high = float(cp_upper(k_false, n_false, alpha))
    low = float(_log_ratio(rate_low, false_high, delta))
    high = float(_log_ratio(rate_high, false_low, delta))
    point = float(_log_ratio(k_rate / n_rate, k_false / n_false, delta))
    max_cert = float(_log_ratio(cp_lower(n_rate, n_rate, alpha), cp_upper(0, n_false, alpha), delta))
    return AuditPoint(attack, side, threshold, k_rate / n_rate, k_false / n_false, rate_low, false_high, point,
                      max(0.0, low), high, max(0.0, max_cert), nb_p, nb_n)


def _scores(ctx: EvalContext, attack: str) -> AttackScores | None:
    found = remembered(ctx, attack)
    if found is None and attack in RERUNNABLE:
        METRICS[f"privacy.mia.{attack}"].fn(ctx)  # runs the attack once; it remembers its scores
        found = remembered(ctx, attack)
    return found


@metric(NAME, family="privacy", description="empirical lower bound on epsilon from the membership attacks' TPR and FPR",
        produces=(RESULT,), needs_holdout=True)
def privacy_audit(ctx: EvalContext) -> list[MetricResult]:
    confidence = confidence_param(ctx, NAME)
    delta = check_float(get_param(ctx, NAME, "delta", 0.0), "delta", NAME, low=0.0, high=0.1)
    available: list[AttackScores] = []
    skipped: list[Skipped] = []
    for attack in ATTACKS:
        found = _scores(ctx, attack)
        if found is None:
            why = "did not run on this evaluation" if attack not in RERUNNABLE else "was skipped (see its result)"
            skipped.append(Skipped(f"the {attack} attack {why}; its scores are not in the audit"))
        elif min(int(found.labels.sum()), int((~found.labels).sum())) < 2 * MIN_PER_CLASS:
            skipped.append(Skipped(f"the {attack} attack has fewer than {2 * MIN_PER_CLASS} targets per class"))
        else:
            available.append(found)
    if not available:
        res = skipped_result(RESULT, "privacy", "minimize", "no membership attack produced scores to audit")
        return [replace(res, skipped=(*res.skipped, *skipped))]
    alpha = (1.0 - confidence) / (2.0 * len(available))
    points = [
        audit_attack(a.scores, a.labels, attack=a.attack, alpha=alpha, delta=delta,
                     rng=rng_for(ctx.options.seed, 61, ATTACKS.index(a.attack)))
        for a in available
    ]
    best = max(points, key=lambda p: (p.epsilon_low, p.epsilon_point))
    top = max(p.max_certifiable for p in points)
    notes = (
        f"epsilon >= ln((rate - delta) / false rate) at the conservative Clopper-Pearson ends (delta={delta:g}); "
        f"with probability {confidence:.0%} the true epsilon is at least the value (Bonferroni over {len(points)} attack(s))",
        f"best attack: {best.attack} ({best.side}, threshold chosen on half of the targets, measured on "
        f"{best.n_members} members and {best.n_non_members} non-members)",
        f"the largest bound these target counts can show is {top:.2f}; a small value does not prove privacy",
    )
    high = best.epsilon_high if math.isfinite(best.epsilon_high) else max(top, best.epsilon_low)
    return [
        MetricResult(
            name=RESULT, family="privacy", value=best.epsilon_low, goal="minimize", range=(0.0, max(top, best.epsilon_low)),
            ci=Interval(best.epsilon_low, max(best.epsilon_low, high), confidence),
            n=best.n_members + best.n_non_members, details=tuple(p.row() for p in points), skipped=tuple(skipped),
            notes=notes, seed=ctx.options.seed,
        )
    ]
