"""How much the DCR share moves with the reference patients, not only with the synthetic queries.

The share closer to train compares each synthetic record with two *finite samples* of patients. When
synthetic records sit far from every real one, a handful of reference patients ("hubs") are the
nearest neighbour of many queries, and which side those few land on swings the share: a Wilson
interval over the queries alone is then far too narrow (seen in the demo: shares of 0.27-0.47 with
intervals of +-0.01 for generators that cannot prefer holdout patients).

:func:`reference_spread` measures that spread under the hypothesis the share tests (train and holdout
patients are exchangeable: the generator did not memorise) by permutation: the train and holdout
references are pooled and randomly relabelled into two halves, and the share is recomputed. Only the
``k`` nearest of each side per query are needed: a query's nearest reference of a half is the first of
its merged list with that label (the last one in the rare case, probability ``2^-k``, that none is).
A Poisson bootstrap of the references was tried first and underestimated the spread by a third (a
bootstrap of nearest-neighbour extremes is biased). Replicate shares over a subsample of ``s``
queries give ``Var_S = v/s + (1 - 1/s) C``, with ``v`` the mean per-query variance and ``C`` the mean
covariance between queries; ``C`` does not average away over all queries and is the reference
variance of the full share. :func:`widen` adds it in quadrature to both sides of the query interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evaluate.privacy.errors import InvalidParameterError
from evaluate.privacy.stats import probit
from evaluate.result import Interval


@dataclass(frozen=True)
class ReferenceSpread:
    """Standard deviation of the share due to the reference samples, and what it was estimated on."""

    sd: float
    n_queries: int
    k: int
    n_boot: int


def _first_with(labels: np.ndarray, dist: np.ndarray, want: bool) -> np.ndarray:
    """Per query, the distance of the first merged neighbour labelled ``want`` (the last one when none is)."""
    mask = labels == want
    first = np.where(mask.any(axis=1), mask.argmax(axis=1), dist.shape[1] - 1)
    return dist[np.arange(dist.shape[0]), first]


def reference_spread(
    d_train: np.ndarray,
    i_train: np.ndarray,
    d_holdout: np.ndarray,
    i_holdout: np.ndarray,
    *,
    rng: np.random.Generator,
    n_boot: int = 200,
) -> ReferenceSpread:
    """Reference-induced SD of the share closer to train, from the k nearest neighbours of s queries.

    ``d_*`` and ``i_*`` are ``(s, k)`` ascending distances and reference indices (as returned by
    ``nearest_neighbours``) of the same queries among the train and the holdout references.
    """
    if d_train.shape != i_train.shape or d_holdout.shape != i_holdout.shape or d_train.shape[0] != d_holdout.shape[0]:
        raise InvalidParameterError(
            f"reference_spread needs (s, k) distance and index arrays for the same queries; got {d_train.shape}, "
            f"{i_train.shape}, {d_holdout.shape} and {i_holdout.shape} instead."
        )
    if n_boot < 2:
        raise InvalidParameterError(f"The 'n_boot' parameter must be an int >= 2; got {n_boot!r} instead.")
    s, k = d_train.shape[0], min(d_train.shape[1], d_holdout.shape[1])
    if s < 2:
        return ReferenceSpread(0.0, s, k, n_boot)
    n_t = int(i_train.max()) + 1
    dist = np.concatenate([d_train, d_holdout], axis=1)
    ids = np.concatenate([i_train, i_holdout + n_t], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    dist, ids = np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)
    n_refs = int(ids.max()) + 1
    closer = np.empty((n_boot, s), dtype=np.float64)
    for b in range(n_boot):
        labels = (rng.random(n_refs) < 0.5)[ids]
        da, dh = _first_with(labels, dist, True), _first_with(labels, dist, False)
        closer[b] = (da < dh) + 0.5 * (da == dh)
    var_s = float(np.var(closer.mean(axis=1), ddof=1))
    per_query = float(np.mean(np.var(closer, axis=0, ddof=1)))
    covariance = (var_s - per_query / s) / (1.0 - 1.0 / s)
    return ReferenceSpread(math.sqrt(max(0.0, covariance)), s, k, n_boot)


def widen(share: float, query_interval: Interval, reference_sd: float) -> Interval:
    """The query interval with the reference SD added in quadrature on each side, clipped to [0, 1]."""
    z = probit(query_interval.level)
    extra = (z * reference_sd) ** 2
    low = share - math.sqrt((share - query_interval.low) ** 2 + extra)
    high = share + math.sqrt((query_interval.high - share) ** 2 + extra)
    return Interval(max(0.0, low), min(1.0, high), query_interval.level)
