"""Statistics of the privacy evaluator, as small pure functions.

* Success rates with the Wilson score interval (Wilson, JASA 1927) and the residual risk of an attack
  over a control set, ``(attack - control) / (1 - control)`` with its error propagated, exactly as
  Anonymeter computes them (Giomi et al., PoPETs 2023; ``anonymeter/stats/confidence.py``): the rate
  reported is the Wilson centre ``(k + z^2/2) / (n + z^2)``, the interval the centre plus or minus the
  Wilson half-width, clipped to [0, 1].
* ROC curve (the points of scikit-learn's ``roc_curve``: one per distinct score), ROC AUC (the
  Mann-Whitney statistic; tied scores count one half), TPR at a fixed FPR (Carlini et al.,
  "Membership inference attacks from first principles", S&P 2022), interpolated inside groups of
  tied scores so that a natural duplicate at the threshold cannot collapse it, and membership
  advantage ``max(TPR - FPR)`` (Yeom et al., CSF 2018).
* A seeded, stratified bootstrap of those (members and non-members resampled separately), vectorised
  over replicates, and a downsampling of the ROC curve to at most 200 points for the app.

Scores follow one convention: a higher score means "more likely a member".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from evaluate.errors import EmptyInputError
from evaluate.privacy.errors import InvalidParameterError
from evaluate.result import Interval

__all__ = [
    "MembershipSummary",
    "PrivacyRisk",
    "Rate",
    "Roc",
    "bootstrap_membership",
    "downsample_roc",
    "interpolated_tpr",
    "membership_advantage",
    "min_non_members_for",
    "min_non_members_for_ci",
    "privacy_risk",
    "probit",
    "quantiles",
    "residual_risk",
    "roc_auc",
    "roc_curve",
    "summarise_membership",
    "tpr_at_fpr",
    "wilson_interval",
    "wilson_rate",
]


# -- rates and risks (Anonymeter) -------------------------------------------------------------------

_NORMAL = NormalDist()  # the standard library's normal quantile: the same value as scipy's ndtri, without importing scipy


def probit(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (1.959... for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise InvalidParameterError(f"The 'confidence' parameter must be a float in (0, 1); got {confidence!r} instead.")
    return float(_NORMAL.inv_cdf(0.5 * (1.0 + confidence)))


@dataclass(frozen=True)
class Rate:
    """A success rate: the Wilson centre ``value`` and half-width ``error`` of ``n_success`` out of ``n_total``."""

    value: float
    error: float
    n_success: float
    n_total: int
    confidence: float = 0.95

    @property
    def observed(self) -> float:
        """The plain share ``n_success / n_total``."""
        return self.n_success / self.n_total

    @property
    def interval(self) -> Interval:
        # the Wilson interval always contains the observed share; min / max only absorb rounding at 0 and 1
        low = min(_clip(self.value - self.error), self.observed)
        high = max(_clip(self.value + self.error), self.observed)
        return Interval(low, high, self.confidence)


def wilson_rate(n_success: float, n_total: int, *, confidence: float = 0.95) -> Rate:
    """Wilson score estimate of a Bernoulli success rate (Anonymeter's ``success_rate``).

    ``n_success`` may be fractional (a tie counted as one half, a size-corrected control count).
    """
    if n_total is None or int(n_total) <= 0:
        raise EmptyInputError(f"a success rate needs at least one trial; got n_total={n_total!r}")
    n = int(n_total)
    k = float(n_success)
    if not 0.0 <= k <= n or math.isnan(k):
        raise InvalidParameterError(
            f"The 'n_success' parameter of wilson_rate must be a float in [0, {n}]; got {n_success!r} instead."
        )
    z = probit(confidence)
    z2 = z * z
    denominator = n + z2
    centre = (k + 0.5 * z2) / denominator
    error = (z / denominator) * math.sqrt(k * (n - k) / n + 0.25 * z2)
    return Rate(centre, error, k, n, confidence)


def wilson_interval(n_success: float, n_total: int, *, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of ``n_success / n_total`` at ``confidence``; it always contains the share."""
    return wilson_rate(n_success, n_total, confidence=confidence).interval


def residual_risk(attack: Rate, control: Rate | None) -> tuple[float, float]:
    """``(attack - control) / (1 - control)`` and its propagated error, unclipped (Anonymeter).

    Without a control set the risk is the attack rate itself.
    """
    if control is None:
        return attack.value, attack.error
    margin = 1.0 - control.value
    value = (attack.value - control.value) / margin
    d_attack = 1.0 / abs(margin)
    d_control = (attack.value - 1.0) / margin**2
    error = math.sqrt((attack.error * d_attack) ** 2 + (control.error * d_control) ** 2)
    return value, error


@dataclass(frozen=True)
class PrivacyRisk:
    """An Anonymeter-style risk: residual risk over the control with its CI, and the rates behind it."""

    value: float
    ci: Interval
    attack: Rate
    baseline: Rate
    control: Rate | None

    @property
    def better_than_baseline(self) -> bool:
        return self.attack.value > self.baseline.value

    def warning(self, attack: str) -> str | None:
        """A note when the attack is no better than random guessing (then the risk cannot be trusted)."""
        if self.better_than_baseline:
            return None
        return (
            f"the {attack} attack is no better than the random-guess baseline (attack rate "
            f"{self.attack.value:.4f} <= baseline rate {self.baseline.value:.4f}): the risk estimate cannot be "
            "trusted; more attacks or other auxiliary columns may help"
        )

    def rates_row(self) -> dict[str, Any]:
        """The aggregates behind the risk, as one details row (kind ``rates``)."""
        row: dict[str, Any] = {
            "kind": "rates",
            "attack_rate": self.attack.value,
            "attack_rate_ci": [self.attack.interval.low, self.attack.interval.high],
            "n_attacks": self.attack.n_total,
            "n_success": self.attack.n_success,
            "baseline_rate": self.baseline.value,
            "baseline_rate_ci": [self.baseline.interval.low, self.baseline.interval.high],
            "n_baseline_attacks": self.baseline.n_total,
            "n_baseline_success": self.baseline.n_success,
            "control_rate": None,
            "control_rate_ci": None,
            "n_control_attacks": None,
            "n_control_success": None,
            "better_than_baseline": self.better_than_baseline,
        }
        if self.control is not None:
            row.update(
                control_rate=self.control.value,
                control_rate_ci=[self.control.interval.low, self.control.interval.high],
                n_control_attacks=self.control.n_total,
                n_control_success=self.control.n_success,
            )
        return row


def privacy_risk(
    *,
    n_success: float,
    n_attacks: int,
    n_baseline: float,
    n_attacks_baseline: int | None = None,
    n_control: float | None = None,
    n_attacks_control: int | None = None,
    confidence: float = 0.95,
) -> PrivacyRisk:
    """Rates of the attack, the random-guess baseline and the control attack, and the residual risk."""
    attack = wilson_rate(n_success, n_attacks, confidence=confidence)
    baseline = wilson_rate(n_baseline, n_attacks_baseline or n_attacks, confidence=confidence)
    control = None
    if n_control is not None:
        control = wilson_rate(n_control, n_attacks_control or n_attacks, confidence=confidence)
    value, error = residual_risk(attack, control)
    ci = Interval(_clip(value - error), _clip(value + error), confidence)
    return PrivacyRisk(_clip(value), ci, attack, baseline, control)


def _clip(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


# -- ROC, AUC, TPR at FPR, advantage ----------------------------------------------------------------


@dataclass(frozen=True)
class Roc:
    """A ROC curve from (0, 0) to (1, 1): one point per distinct score threshold, highest first."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_members: int
    n_non_members: int


def _check_scores(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise InvalidParameterError(
            f"The 'labels' parameter must have one label per score ({s.size}); got {y.size} labels instead."
        )
    if np.isnan(s).any():
        raise InvalidParameterError(f"The 'scores' parameter must not contain NaN; got {int(np.isnan(s).sum())} NaN(s).")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise EmptyInputError(
            f"membership scores need members and non-members; got {n_pos} member(s) and {y.size - n_pos} non-member(s)"
        )
    return s, y


def _groups(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id of every score (0 = highest distinct score) and the distinct scores, highest first."""
    distinct, inverse = np.unique(-s, return_inverse=True)
    return inverse.ravel(), -distinct


def roc_curve(scores: Any, labels: Any) -> Roc:
    """The ROC curve of ``scores`` (higher = member) against boolean ``labels``; ties move together."""
    s, y = _check_scores(scores, labels)
    gid, thresholds = _groups(s)
    g = thresholds.size
    pos = np.bincount(gid[y], minlength=g).astype(np.float64)
    neg = np.bincount(gid[~y], minlength=g).astype(np.float64)
    tpr = np.concatenate([[0.0], np.cumsum(pos) / pos.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(neg) / neg.sum()])
    return Roc(fpr, tpr, np.concatenate([[np.inf], thresholds]), int(pos.sum()), int(neg.sum()))


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve: P(member score > non-member score) + P(tie) / 2 (Mann-Whitney U)."""
    roc = roc_curve(scores, labels)
    return _auc(roc.fpr, roc.tpr)


def _auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(roc: Roc, max_fpr: float) -> float:
    """TPR at FPR ``max_fpr``, read on the ROC curve with tied scores interpolated.

    Targets with equal scores cannot be ordered, so the curve runs straight across a tied group
    (the expected curve of a random tie-break, as scikit-learn's ``roc_curve`` points joined by
    lines): an FPR that falls inside a group of members and non-members at the same score gets the
    TPR on that segment, not the TPR before the whole group. Without ties this is the highest TPR
    among thresholds whose FPR is at most ``max_fpr``.
    """
    return float(interpolated_tpr(roc.fpr[None, :], roc.tpr[None, :], max_fpr)[0])


def interpolated_tpr(fpr: np.ndarray, tpr: np.ndarray, at: float) -> np.ndarray:
    """Per row of ``(b, m)`` ROC points (FPR and TPR non-decreasing from 0), the TPR at FPR ``at`` (see ``tpr_at_fpr``)."""
    rows = np.arange(fpr.shape[0])
    last = np.sum(fpr <= at + 1e-12, axis=1) - 1  # the last point at or left of ``at``: its TPR is the highest there
    nxt = np.minimum(last + 1, fpr.shape[1] - 1)
    f0, t0 = fpr[rows, last], tpr[rows, last]
    f1, t1 = fpr[rows, nxt], tpr[rows, nxt]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(f1 > f0, (at - f0) / np.where(f1 > f0, f1 - f0, 1.0), 0.0)
    return t0 + np.clip(frac, 0.0, 1.0) * (t1 - t0)


def membership_advantage(roc: Roc) -> float:
    """``max(TPR - FPR)`` over thresholds (Yeom et al. 2018); 0 for a random guess."""
    return float(np.max(roc.tpr - roc.fpr))


def min_non_members_for(fpr: float) -> int:
    """Non-members needed before a TPR at ``fpr`` means anything: at least one false positive allowed."""
    return int(math.ceil(1.0 / fpr - 1e-9))


MIN_FALSE_POSITIVES_FOR_CI = 10


def min_non_members_for_ci(fpr: float) -> int:
    """Non-members needed for a bootstrap CI of the TPR at ``fpr``: ``MIN_FALSE_POSITIVES_FOR_CI`` expected false positives.

    With fewer, the threshold at that FPR is set by one or two non-members and a bootstrap of them
    (drawn twice, or not at all) says little about its sampling spread, so no CI is reported.
    """
    return int(math.ceil(MIN_FALSE_POSITIVES_FOR_CI / fpr - 1e-9))


def downsample_roc(roc: Roc, max_points: int = 200) -> list[tuple[float, float]]:
    """At most ``max_points`` (fpr, tpr) points keeping both ends, half spaced evenly, half on a log FPR grid."""
    n = roc.fpr.size
    if n <= max_points:
        return [(float(f), float(t)) for f, t in zip(roc.fpr, roc.tpr)]
    half = (max_points - 2) // 2
    linear = np.linspace(0, n - 1, half).round().astype(np.int64)
    grid = np.logspace(-4, 0, max_points - 2 - half)
    logs = np.clip(np.searchsorted(roc.fpr, grid, side="right") - 1, 0, n - 1)
    keep = np.unique(np.concatenate([[0, n - 1], linear, logs]))
    if keep.size > max_points:
        keep = np.unique(np.concatenate([[0, n - 1], keep[np.linspace(1, keep.size - 2, max_points - 2).round().astype(np.int64)]]))
    return [(float(roc.fpr[i]), float(roc.tpr[i])) for i in keep]


# -- bootstrap ----------------------------------------------------------------------------------------


def bootstrap_membership(
    scores: Any,
    labels: Any,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 200,
    fprs: tuple[float, ...] = (0.01, 0.001),
) -> dict[str, np.ndarray]:
    """AUC, TPR at each FPR and advantage on ``n_bootstrap`` stratified resamples (vectorised).

    Members and non-members are resampled with replacement separately, so every replicate keeps the
    class sizes. Returns arrays of length ``n_bootstrap`` under ``auc``, ``advantage`` and ``tpr@<fpr>``.
    """
    s, y = _check_scores(scores, labels)
    if n_bootstrap < 1:
        raise InvalidParameterError(f"The 'n_bootstrap' parameter must be an int >= 1; got {n_bootstrap!r} instead.")
    gid, thresholds = _groups(s)
    g = thresholds.size
    gp, gn = gid[y], gid[~y]
    n_pos, n_neg = gp.size, gn.size
    offsets = (np.arange(n_bootstrap, dtype=np.int64) * g)[:, None]
    pos_idx = rng.integers(0, n_pos, size=(n_bootstrap, n_pos))
    neg_idx = rng.integers(0, n_neg, size=(n_bootstrap, n_neg))
    pos = np.bincount((gp[pos_idx] + offsets).ravel(), minlength=n_bootstrap * g).reshape(n_bootstrap, g)
    neg = np.bincount((gn[neg_idx] + offsets).ravel(), minlength=n_bootstrap * g).reshape(n_bootstrap, g)
    zeros = np.zeros((n_bootstrap, 1))
    tpr = np.concatenate([zeros, np.cumsum(pos, axis=1) / n_pos], axis=1)
    fpr = np.concatenate([zeros, np.cumsum(neg, axis=1) / n_neg], axis=1)
    out: dict[str, np.ndarray] = {
        "auc": np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1),
        "advantage": np.max(tpr - fpr, axis=1),
    }
    for f in fprs:
        out[f"tpr@{f}"] = interpolated_tpr(fpr, tpr, f)
    return out


def _percentile_interval(values: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Interval(float(low), float(high), confidence)


@dataclass(frozen=True)
class MembershipSummary:
    """What a membership-inference attack achieved on balanced targets, with bootstrap CIs."""

    auc: float
    auc_ci: Interval
    advantage: float
    advantage_ci: Interval
    tpr: dict[float, float | None]
    tpr_ci: dict[float, Interval | None]
    n_members: int
    n_non_members: int
    roc_points: tuple[tuple[float, float], ...]
    n_bootstrap: int


def summarise_membership(
    scores: Any,
    labels: Any,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = 200,
    fprs: tuple[float, ...] = (0.01, 0.001),
    confidence: float = 0.95,
    max_points: int = 200,
) -> MembershipSummary:
    """AUC, TPR at each FPR, advantage, CIs, ROC points.

    A TPR at an FPR is None when there are fewer than 1/FPR non-members, and has no CI (None) when
    there are fewer than ``min_non_members_for_ci(FPR)``.
    """
    roc = roc_curve(scores, labels)
    boot = bootstrap_membership(scores, labels, rng=rng, n_bootstrap=n_bootstrap, fprs=fprs)
    tpr: dict[float, float | None] = {}
    tpr_ci: dict[float, Interval | None] = {}
    for f in fprs:
        if roc.n_non_members < min_non_members_for(f):
            tpr[f], tpr_ci[f] = None, None
        else:
            tpr[f] = tpr_at_fpr(roc, f)
            enough = roc.n_non_members >= min_non_members_for_ci(f)
            tpr_ci[f] = _percentile_interval(boot[f"tpr@{f}"], confidence) if enough else None
    return MembershipSummary(
        auc=_auc(roc.fpr, roc.tpr),
        auc_ci=_percentile_interval(boot["auc"], confidence),
        advantage=membership_advantage(roc),
        advantage_ci=_percentile_interval(boot["advantage"], confidence),
        tpr=tpr,
        tpr_ci=tpr_ci,
        n_members=roc.n_members,
        n_non_members=roc.n_non_members,
        roc_points=tuple(downsample_roc(roc, max_points)),
        n_bootstrap=n_bootstrap,
    )


# -- distributions ------------------------------------------------------------------------------------

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


def quantiles(values: Any, qs: tuple[float, ...] = QUANTILES) -> list[float]:
    """Quantiles of a non-empty sample (raises EmptyInputError on an empty one)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise EmptyInputError("quantiles of an empty sample")
    return [float(x) for x in np.quantile(v, qs)]
