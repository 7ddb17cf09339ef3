"""The DCR share's reference spread: calibrated against redrawn reference samples, and the widened CI."""
from __future__ import annotations

import numpy as np
import pytest

from evaluate.privacy.dcr import closer_share
from evaluate.privacy.dcr_spread import reference_spread, widen
from evaluate.privacy.distances import nearest_neighbours
from evaluate.privacy.errors import InvalidParameterError
from evaluate.result import Interval


def _share_and_spread(queries: np.ndarray, train: np.ndarray, holdout: np.ndarray, seed: int) -> tuple[float, float]:
    t = nearest_neighbours(queries, train, k=10)
    h = nearest_neighbours(queries, holdout, k=10)
    share = closer_share(t.distances[:, 0], h.distances[:, 0])[1]
    spread = reference_spread(t.distances, t.indices, h.distances, h.indices, rng=np.random.default_rng(seed))
    return share, spread.sd


@pytest.mark.parametrize("offset", [1.5, 3.0])
def test_spread_matches_the_share_across_redrawn_reference_samples(offset: float) -> None:
    """Queries off the bulk of the references share nearest 'hub' patients: the permutation estimate follows the true spread."""
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(1500, 3)).astype(np.float32) + np.float32(offset)
    shares, estimates = [], []
    for _ in range(40):
        train = rng.normal(size=(300, 3)).astype(np.float32)
        holdout = rng.normal(size=(300, 3)).astype(np.float32)
        share, sd = _share_and_spread(queries, train, holdout, int(rng.integers(1 << 30)))
        shares.append(share)
        estimates.append(sd)
    true_sd = float(np.std(shares, ddof=1))
    mean_estimate = float(np.mean(estimates))
    # the query-only Wilson half-width would be ~0.025 here: the spread is several times that
    assert true_sd > 0.05
    assert 0.75 * true_sd < mean_estimate < 1.3 * true_sd, (true_sd, mean_estimate)


def test_spread_is_small_when_queries_sit_among_many_references() -> None:
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(1500, 3)).astype(np.float32)
    train = rng.normal(size=(3000, 3)).astype(np.float32)
    holdout = rng.normal(size=(3000, 3)).astype(np.float32)
    _, sd = _share_and_spread(queries, train, holdout, 0)
    assert sd < 0.02


def test_spread_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(2)
    q, t, h = (rng.normal(size=(200, 2)).astype(np.float32) for _ in range(3))
    assert _share_and_spread(q, t, h, 5) == _share_and_spread(q, t, h, 5)


def test_widen_adds_the_reference_sd_in_quadrature() -> None:
    base = Interval(0.45, 0.55, 0.95)
    assert widen(0.5, base, 0.0) == base
    wide = widen(0.5, base, 0.1)
    assert wide.low == pytest.approx(0.5 - np.hypot(0.05, 1.959964 * 0.1), abs=1e-6)
    assert wide.high == pytest.approx(0.5 + np.hypot(0.05, 1.959964 * 0.1), abs=1e-6)
    assert widen(0.98, Interval(0.96, 0.99, 0.95), 0.2) == Interval(widen(0.98, Interval(0.96, 0.99, 0.95), 0.2).low, 1.0, 0.95)


def test_bad_shapes_and_budgets_are_refused() -> None:
    d = np.zeros((5, 3))
    i = np.zeros((5, 3), dtype=np.int64)
    with pytest.raises(InvalidParameterError, match="same queries"):
        reference_spread(d, i, d[:4], i[:4], rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="n_boot"):
        reference_spread(d, i, d, i, rng=np.random.default_rng(0), n_boot=1)
