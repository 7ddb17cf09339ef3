"""Membership-inference targets and results, shared by the distance, DOMIAS and shadow-model attacks.

Targets are balanced: ``n`` members drawn at random from the training patients and ``n`` non-members
from the holdout patients (``n_targets``, at most ``max_rows`` and half the holdout). The rest of the
holdout is the attacker's *reference* data from the population (DOMIAS, shadow models), disjoint
from every target. Every attack scores the same targets (higher score = "member") against *all*
synthetic records, so their ROC curves can be compared and no copy is missed by sampling.

Each attack reports ``privacy.mia.<attack>.auc``, ``.tpr_at_fpr_1pct``, ``.tpr_at_fpr_0.1pct`` and
``.advantage`` with seeded, stratified bootstrap CIs; the AUC result carries the ROC curve (at most 200
points, details of kind ``roc``). A TPR at an FPR is reported only when there are at least 1/FPR
non-member targets (otherwise the result is skipped and says so), and with a CI only when there are
at least 10/FPR (``stats.min_non_members_for_ci``; otherwise the value comes without a CI and says so).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.inputs import PrivacyInputs, rng_for
from evaluate.privacy.params import check_float, check_int, get_param
from evaluate.privacy.stats import (
    MIN_FALSE_POSITIVES_FOR_CI,
    MembershipSummary,
    min_non_members_for,
    min_non_members_for_ci,
    summarise_membership,
)
from evaluate.result import MetricResult, Skipped, skipped_result

FPRS = {0.01: "tpr_at_fpr_1pct", 0.001: "tpr_at_fpr_0.1pct"}
ATTACK_STREAMS = {"distance": 11, "domias": 12, "shadow": 13}
MIN_TARGETS = 10


def result_names(attack: str) -> tuple[str, ...]:
    base = f"privacy.mia.{attack}"
    return (f"{base}.auc", *(f"{base}.{name}" for name in FPRS.values()), f"{base}.advantage")


@dataclass(frozen=True)
class Targets:
    """Positions of member targets in the train sample, of non-member targets and reference in the holdout sample."""

    members: np.ndarray
    non_members: np.ndarray
    reference: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([np.ones(self.members.size, bool), np.zeros(self.non_members.size, bool)])


def draw_targets(inputs: PrivacyInputs, n_targets: int) -> Targets:
    """Balanced targets: the first ``n`` of the (random-order) records, at most ``max_rows``; the holdout's rest is the reference."""
    if inputs.holdout is None:
        raise EmptyInputError("membership inference needs a real holdout set")
    n_hold = len(inputs.holdout)
    n = min(n_targets, inputs.max_rows, len(inputs.train), n_hold // 2)
    if n < MIN_TARGETS:
        raise EmptyInputError(
            f"membership inference needs at least {MIN_TARGETS} member and {MIN_TARGETS} non-member targets plus as many "
            f"reference patients; got {len(inputs.train)} train and {n_hold} holdout patients"
        )
    return Targets(np.arange(n), np.arange(n), np.arange(n, n_hold))


def target_settings(ctx: EvalContext, metric: str) -> tuple[int, int, float]:
    """(n_targets per class, n_bootstrap, confidence) from the params of ``metric`` or ``privacy``."""
    n_targets = check_int(get_param(ctx, metric, "n_targets", 1000), "n_targets", metric, low=MIN_TARGETS)
    n_boot = check_int(get_param(ctx, metric, "n_bootstrap", 200), "n_bootstrap", metric, low=10, high=100_000)
    confidence = check_float(get_param(ctx, metric, "confidence", 0.95), "confidence", metric, low=0.0, high=1.0,
                             open_low=True, open_high=True)
    return n_targets, n_boot, confidence


def membership_results(
    attack: str,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    n_bootstrap: int,
    confidence: float,
    notes: tuple[str, ...] = (),
    details: tuple[dict[str, Any], ...] = (),
    skipped: tuple[Skipped, ...] = (),
) -> list[MetricResult]:
    """The four results of one attack, from its scores on the targets."""
    summary = summarise_membership(
        scores, labels, rng=rng_for(seed, ATTACK_STREAMS[attack]), n_bootstrap=n_bootstrap, fprs=tuple(FPRS),
        confidence=confidence,
    )
    base = f"privacy.mia.{attack}"
    n = summary.n_members + summary.n_non_members
    boot_note = f"{summary.n_bootstrap} stratified bootstrap resamples of the targets (seed {seed}) give the CIs"
    notes = (*notes, f"{summary.n_members} member and {summary.n_non_members} non-member targets; {boot_note}")
    rates = _rates_row(attack, summary)
    null_advantage = ks_critical(summary.n_members, summary.n_non_members)
    roc = tuple({"kind": "roc", "fpr": f, "tpr": t} for f, t in summary.roc_points)
    common = dict(family="privacy", goal="minimize", range=(0.0, 1.0), n=n, seed=seed, skipped=skipped)
    out = [
        MetricResult(name=f"{base}.auc", value=summary.auc, ci=summary.auc_ci, details=(rates, *details, *roc),
                     notes=(*notes, "0.5 is a random guess; 1 identifies every member"), **common),  # type: ignore[arg-type]
    ]
    for fpr, suffix in FPRS.items():
        value = summary.tpr[fpr]
        if value is None:
            need = min_non_members_for(fpr)
            reason = (f"TPR at FPR {fpr:.1%} needs at least {need} non-member targets; got {summary.n_non_members} "
                      "(raise n_targets or give a larger holdout)")
            res = skipped_result(f"{base}.{suffix}", "privacy", "minimize", reason)
            out.append(replace(res, n=n, seed=seed))
            continue
        extra = [f"a random guess gives a TPR of {fpr:g} at this FPR; tied scores are interpolated"]
        if summary.tpr_ci[fpr] is None:
            extra.append(f"no CI: a bootstrap of the TPR at FPR {fpr:.1%} needs at least {min_non_members_for_ci(fpr):,} "
                         f"non-member targets ({MIN_FALSE_POSITIVES_FOR_CI} expected false positives); got "
                         f"{summary.n_non_members:,}")
        out.append(
            MetricResult(name=f"{base}.{suffix}", value=value, ci=summary.tpr_ci[fpr], details=(rates,),
                         notes=(*notes, *extra), **common)  # type: ignore[arg-type]
        )
    out.append(
        MetricResult(name=f"{base}.advantage", value=summary.advantage, ci=summary.advantage_ci,
                     details=({**rates, "attack_rate": summary.advantage, "baseline_rate": null_advantage},),
                     notes=(*notes, "max(TPR - FPR) over thresholds (Yeom et al. 2018); 0 is a random guess, but the "
                            f"largest of many differences is not 0 by chance: with these targets a random guess exceeds "
                            f"{null_advantage:.3f} one time in 20 (the two-sample Kolmogorov-Smirnov critical value), "
                            "the baseline the policy compares it with"), **common)  # type: ignore[arg-type]
    )
    return out


def ks_critical(n: int, m: int, alpha: float = 0.05) -> float:
    """The advantage a random guess exceeds with probability ``alpha``: the asymptotic two-sample KS critical value.

    The advantage ``max(TPR - FPR)`` is the one-sided two-sample Kolmogorov-Smirnov statistic of the
    member and non-member scores; under no membership signal it exceeds ``sqrt(-ln(alpha) / 2) *
    sqrt((n + m) / (n m))`` with probability about ``alpha`` (Smirnov). With 100 targets per class
    that is 0.17, so a bootstrap CI's low end alone (0.11 for fresh patients) is no evidence of a leak.
    """
    return math.sqrt(-math.log(alpha) / 2.0) * math.sqrt((n + m) / (n * m))


def _rates_row(attack: str, s: MembershipSummary) -> dict[str, Any]:
    return {
        "kind": "rates",
        "attack": attack,
        "auc": s.auc,
        "auc_ci": [s.auc_ci.low, s.auc_ci.high],
        "advantage": s.advantage,
        "tpr_at_fpr_1pct": s.tpr[0.01],
        "tpr_at_fpr_0.1pct": s.tpr[0.001],
        "baseline_rate": 0.5,
        "n_members": s.n_members,
        "n_non_members": s.n_non_members,
        "n_bootstrap": s.n_bootstrap,
    }


def skipped_attack(attack: str, reason: str) -> list[MetricResult]:
    """All four results of an attack skipped with one reason."""
    return [skipped_result(name, "privacy", "minimize", reason) for name in result_names(attack)]
