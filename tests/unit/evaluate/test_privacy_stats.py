"""Statistics of the privacy evaluator: invariants (hypothesis) and agreement with reference formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from evaluate.errors import EmptyInputError
from evaluate.privacy.errors import InvalidParameterError
from evaluate.privacy.stats import (
    bootstrap_membership,
    downsample_roc,
    membership_advantage,
    privacy_risk,
    residual_risk,
    roc_auc,
    roc_curve,
    summarise_membership,
    tpr_at_fpr,
    wilson_interval,
    wilson_rate,
)

counts = st.integers(min_value=1, max_value=5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(counts, st.floats(0.5, 0.999))
def test_wilson_interval_contains_the_rate(kn: tuple[int, int], confidence: float) -> None:
    k, n = kn
    ci = wilson_interval(k, n, confidence=confidence)
    assert 0.0 <= ci.low <= k / n <= ci.high <= 1.0


@given(counts, counts, counts)
def test_risk_within_unit_interval(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> None:
    risk = privacy_risk(n_success=a[0], n_attacks=a[1], n_baseline=b[0], n_attacks_baseline=b[1],
                        n_control=c[0], n_attacks_control=c[1])
    assert 0.0 <= risk.ci.low <= risk.value <= risk.ci.high <= 1.0


def test_rates_and_risk_match_anonymeter_formulas() -> None:
    # anonymeter.stats.confidence: success_rate(500, 120, 0.95) and residual_success against (500, 60)
    attack, control = wilson_rate(120, 500), wilson_rate(60, 500)
    z = 1.959963984540054
    assert attack.value == pytest.approx((120 + z * z / 2) / (500 + z * z))
    assert attack.error == pytest.approx(z / (500 + z * z) * math.sqrt(120 * 380 / 500 + z * z / 4))
    value, error = residual_risk(attack, control)
    assert value == pytest.approx((attack.value - control.value) / (1 - control.value))
    d_control = (attack.value - 1) / (1 - control.value) ** 2
    assert error == pytest.approx(math.sqrt((attack.error / (1 - control.value)) ** 2 + (control.error * d_control) ** 2))


def test_no_better_than_baseline_is_flagged() -> None:
    risk = privacy_risk(n_success=10, n_attacks=500, n_baseline=40, n_control=10)
    assert not risk.better_than_baseline
    assert "no better than the random-guess baseline" in (risk.warning("singling out") or "")
    assert privacy_risk(n_success=100, n_attacks=500, n_baseline=4).warning("x") is None


def test_empty_inputs_raise() -> None:
    with pytest.raises(EmptyInputError):
        wilson_rate(0, 0)
    with pytest.raises(EmptyInputError):
        roc_auc([], [])
    with pytest.raises(EmptyInputError):
        roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(InvalidParameterError, match="'n_success'"):
        wilson_rate(5, 3)


@settings(max_examples=50)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40), st.integers(0, 2**31 - 1))
def test_auc_of_identical_score_distributions_is_half(values: list[float], seed: int) -> None:
    scores = np.array(values + values)
    labels = np.array([True] * len(values) + [False] * len(values))
    assert roc_auc(scores, labels) == pytest.approx(0.5)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(scores.size)
    assert roc_auc(scores[perm], labels[perm]) == pytest.approx(0.5)


def test_auc_of_samples_from_one_distribution_is_near_half() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=20_000)
    labels = rng.random(20_000) < 0.5
    assert abs(roc_auc(scores, labels) - 0.5) < 0.02


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=2, max_size=60))
def test_auc_matches_sklearn_with_ties(pairs: list[tuple[int, bool]]) -> None:
    scores = np.array([p[0] for p in pairs], dtype=float)
    labels = np.array([p[1] for p in pairs])
    if labels.all() or not labels.any():
        return
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc(-scores, labels) == pytest.approx(1 - roc_auc(scores, labels))


def test_tpr_at_fpr_and_advantage() -> None:
    scores = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    roc = roc_curve(scores, labels)
    assert tpr_at_fpr(roc, 0.0) == 0.5
    assert tpr_at_fpr(roc, 1 / 6) == 0.75
    assert membership_advantage(roc) == pytest.approx(0.75 - 1 / 6)
    perfect = roc_curve(np.arange(10.0), np.arange(10) >= 5)
    assert membership_advantage(perfect) == 1.0 and tpr_at_fpr(perfect, 0.0) == 1.0


def test_bootstrap_is_seeded_and_summary_says_when_targets_are_too_few() -> None:
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(1, 1, 300), rng.normal(0, 1, 300)])
    labels = np.arange(600) < 300
    a = bootstrap_membership(scores, labels, rng=np.random.default_rng(5), n_bootstrap=50)
    b = bootstrap_membership(scores, labels, rng=np.random.default_rng(5), n_bootstrap=50)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    s = summarise_membership(scores, labels, rng=np.random.default_rng(5), n_bootstrap=50)
    assert s.auc_ci.low <= s.auc <= s.auc_ci.high
    assert s.tpr[0.01] is not None and s.tpr[0.001] is None  # 300 non-members: enough for 1 %, not for 0.1 %
    assert s.tpr_ci[0.01] is None  # but too few for a CI at 1 %: fewer than 10 expected false positives
    assert s.roc_points[0] == (0.0, 0.0) and s.roc_points[-1] == (1.0, 1.0)


def test_roc_downsampled_to_200_points_keeping_the_ends() -> None:
    rng = np.random.default_rng(2)
    roc = roc_curve(rng.normal(size=5000), rng.random(5000) < 0.5)
    pts = downsample_roc(roc)
    assert len(pts) <= 200 and pts[0] == (0.0, 0.0) and pts[-1] == (1.0, 1.0)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(pts, pts[1:]))


def _copy_with_natural_duplicates(n: int, n_tied: int) -> tuple[np.ndarray, np.ndarray]:
    """A verbatim copy: every member at distance 0 (score 0); ``n_tied`` non-members are natural duplicates at 0 too."""
    rng = np.random.default_rng(7)
    non = -rng.uniform(0.5, 5.0, n)
    non[:n_tied] = 0.0
    return np.concatenate([np.zeros(n), non]), np.arange(2 * n) < n


def test_ties_at_the_fpr_boundary_do_not_collapse_the_tpr_or_its_ci() -> None:
    # 10 of 1,000 non-members tie with the members: the tied group ends exactly at FPR 1 %. A bootstrap
    # replicate that draws more than 10 of them used to read TPR 0 there (the point before the group),
    # so a verbatim copy had TPR 1 with CI [0, 1] and passed a ci_low rule.
    scores, labels = _copy_with_natural_duplicates(1000, 10)
    s = summarise_membership(scores, labels, rng=np.random.default_rng(3), n_bootstrap=200)
    assert s.tpr[0.01] == 1.0
    assert s.tpr_ci[0.01] is not None and s.tpr_ci[0.01].low > 0.5
    # the 0.1 % point is inside the tied group: interpolated, and without a CI (1,000 non-members < 10,000)
    assert s.tpr[0.001] == pytest.approx(0.1)
    assert s.tpr_ci[0.001] is None
    # 20 tied non-members: FPR 1 % is half-way through the group, so half of the members
    scores, labels = _copy_with_natural_duplicates(1000, 20)
    assert tpr_at_fpr(roc_curve(scores, labels), 0.01) == pytest.approx(0.5)


def _sklearn_tpr_at(scores: np.ndarray, labels: np.ndarray, at: float) -> float:
    """Reference: scikit-learn's ROC points joined by straight lines, read at FPR ``at`` (the highest TPR on a vertical step)."""
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    left = fpr <= at + 1e-12
    i = int(np.flatnonzero(left)[-1])
    if i + 1 < fpr.size and fpr[i + 1] > fpr[i]:
        return float(tpr[i] + (at - fpr[i]) / (fpr[i + 1] - fpr[i]) * (tpr[i + 1] - tpr[i]))
    return float(tpr[i])


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=80), st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5]))
def test_tpr_at_fpr_matches_sklearn_roc_joined_by_lines(pairs: list[tuple[int, bool]], at: float) -> None:
    scores = np.array([p[0] for p in pairs], dtype=float)
    labels = np.array([p[1] for p in pairs])
    if labels.all() or not labels.any():
        return
    assert tpr_at_fpr(roc_curve(scores, labels), at) == pytest.approx(_sklearn_tpr_at(scores, labels, at))
    boot = bootstrap_membership(scores, labels, rng=np.random.default_rng(0), n_bootstrap=5, fprs=(at,) if at > 0 else (0.01,))
    assert np.all((boot[f"tpr@{at if at > 0 else 0.01}"] >= 0) & (boot[f"tpr@{at if at > 0 else 0.01}"] <= 1))
