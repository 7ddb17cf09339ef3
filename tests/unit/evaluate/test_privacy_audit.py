"""The empirical epsilon audit: Clopper-Pearson ends, the split between choosing and measuring, its bounds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from evaluate.privacy.audit import audit_attack, cp_lower, cp_upper


def test_clopper_pearson_matches_scipy() -> None:
    for k, n in ((0, 50), (3, 50), (50, 50), (17, 40)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
        assert float(cp_lower(k, n, 0.05)) == pytest.approx(ci.low, abs=1e-9)
        assert float(cp_upper(k, n, 0.05)) == pytest.approx(ci.high, abs=1e-9)


def test_a_coin_toss_proves_nothing() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    bounds = [audit_attack(rng.random(1000), labels, attack="x", alpha=0.025, delta=0.0, rng=rng).epsilon_low for _ in range(20)]
    assert max(bounds) < 0.5 and min(bounds) >= 0.0


def test_perfect_separation_reaches_the_largest_certifiable_bound() -> None:
    labels = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    scores = labels.astype(float)
    point = audit_attack(scores, labels, attack="x", alpha=0.025, delta=0.0, rng=np.random.default_rng(1))
    assert point.epsilon_low == pytest.approx(point.max_certifiable)
    expected = math.log(float(cp_lower(100, 100, 0.025)) / float(cp_upper(0, 100, 0.025)))
    assert point.max_certifiable == pytest.approx(expected) and point.max_certifiable > 3.0
    # delta lowers the bound; an attack sure only of non-members proves it on the TNR / FNR side
    assert audit_attack(scores, labels, attack="x", alpha=0.025, delta=0.5, rng=np.random.default_rng(1)).epsilon_low < point.epsilon_low
    half = np.r_[np.ones(200), np.tile([0.0, 1.0], 100)]
    sure = audit_attack(half, labels, attack="x", alpha=0.025, delta=0.0, rng=np.random.default_rng(1))
    assert sure.side == "tnr/fnr" and sure.epsilon_low > 2.0


def test_a_known_mechanism_is_not_overstated() -> None:
    """Randomised response at epsilon = 1 on every target: the audited bound stays at or below 1."""
    rng = np.random.default_rng(2)
    labels = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    keep = rng.random(labels.size) < math.e / (1 + math.e)
    scores = np.where(keep, labels, ~labels).astype(float)
    point = audit_attack(scores, labels, attack="rr", alpha=0.025, delta=0.0, rng=rng)
    assert 0.5 < point.epsilon_low <= 1.0 and point.epsilon_point == pytest.approx(1.0, abs=0.2)
