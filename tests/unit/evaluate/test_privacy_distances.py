"""The nearest-neighbour engine: exact against brute force, IVF recall, copies at 0, Gower search."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluate.errors import EmptyInputError
from evaluate.privacy.distances import gower_neighbours, nearest_neighbours, nearest_neighbours_many
from evaluate.privacy.errors import InvalidParameterError


def _brute(q: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((q[:, None, :].astype(np.float64) - r[None, :, :]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, :k]


def test_exact_matches_brute_force_and_copies_are_at_zero() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(3000, 17)).astype(np.float32)
    q = np.concatenate([r[:50], rng.normal(size=(200, 17)).astype(np.float32)])
    nb = nearest_neighbours(q, r, k=2, method="exact")
    assert np.allclose(nb.distances, _brute(q, r, 2), atol=1e-5)
    assert np.all(nb.distances[:50, 0] == 0.0) and np.array_equal(nb.indices[:50, 0], np.arange(50))
    assert nb.recall is None and "exact" in nb.note("x")


def test_ties_go_to_the_lower_index() -> None:
    r = np.zeros((10, 3), dtype=np.float32)
    nb = nearest_neighbours(np.zeros((2, 3), np.float32), r, k=2, method="exact")
    assert nb.indices.tolist() == [[0, 1], [0, 1]]


def test_ivf_reports_its_recall_and_finds_copies() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=5, size=(40, 8))
    r = (centres[rng.integers(0, 40, 6000)] + rng.normal(size=(6000, 8))).astype(np.float32)
    q = np.concatenate([r[:300], (centres[rng.integers(0, 40, 700)] + rng.normal(size=(700, 8))).astype(np.float32)])
    a, b = nearest_neighbours_many(q, [r, r[::-1].copy()], k=1, method="ivf", rng=np.random.default_rng(2), nprobe=8)
    assert a.recall is not None and a.recall > 0.9 and a.n_recall_queries == 256
    assert "recall@1" in a.note("synthetic to train")
    assert np.all(a.distances[:300, 0] == 0)
    truth = _brute(q, r, 1)[:, 0]
    assert np.mean(np.isclose(a.distances[:, 0], truth, atol=1e-5)) > 0.9
    assert b.recall is not None and b.recall > 0.9 and np.all(b.distances[:300, 0] == 0)


def test_bad_inputs_raise() -> None:
    with pytest.raises(EmptyInputError):
        nearest_neighbours(np.zeros((0, 3)), np.zeros((5, 3)))
    with pytest.raises(InvalidParameterError, match="'k' parameter must be an int in \\[1, 5\\]; got 6"):
        nearest_neighbours(np.zeros((2, 3)), np.zeros((5, 3)), k=6)
    with pytest.raises(InvalidParameterError, match="'method'"):
        nearest_neighbours(np.zeros((2, 3)), np.zeros((5, 3)), method="fast")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 40), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_gower_matches_brute_force(m: int, n: int, p: int, c: int, seed: int) -> None:
    if p + c == 0:
        p = 1
    rng = np.random.default_rng(seed)
    qn = np.round(rng.random((m, p)), 1)
    rn = np.round(rng.random((n, p)), 1)
    qn[rng.random((m, p)) < 0.2] = np.nan
    rn[rng.random((n, p)) < 0.2] = np.nan
    qc = rng.integers(-1, 3, (m, c))
    rc = rng.integers(-1, 3, (n, c))
    got = gower_neighbours(qn, qc, rn, rc, k=1)[:, 0]
    dist = np.zeros((m, n))
    for j in range(p):
        a, b = qn[:, j][:, None], rn[:, j][None, :]
        both, one = np.isnan(a) & np.isnan(b), np.isnan(a) ^ np.isnan(b)
        dist += np.where(both, 0.0, np.where(one, 1.0, np.abs(np.nan_to_num(a) - np.nan_to_num(b))))
    for j in range(c):
        dist += qc[:, j][:, None] != rc[:, j][None, :]
    best = dist.min(axis=1)
    assert np.allclose(dist[np.arange(m), got], best, atol=1e-5)
