"""How much the DCR share moves with the reference patients, not only with the synthetic queries.

The share closer to train compares each synthetic record with *finite samples* of patients. When synthetic records sit far from every real one, a handful of reference
patients ("hubs") are the nearest neighbour of many queries, and which side those few land on swings
the share: an interval over the queries alone is then far too narrow (seen in the demo: shares of
0.27-0.47 with intervals of +-0.01 for generators that cannot prefer holdout patients).

:func:`grouped_reference_spread` measures that spread under the hypothesis the statistics test (train
and holdout patients are exchangeable: the generator did not memorise) by permutation: the reference
patients of all groups (the holdout-sized chunks of train and of the holdout that ``dcr.py`` compares)
are pooled and randomly reassigned to groups of equal size, and the share is recomputed. Only
the ``k`` nearest of each group per query are needed: a query's nearest reference of a new group is
the first of its merged list in that group (the last one in the rare case that none is). A Poisson
bootstrap of the references was tried first and underestimated the spread by a third (a bootstrap of
nearest-neighbour extremes is biased). Replicate statistics over a subsample of ``s`` queries give
``Var_S = v/s + (1 - 1/s) C``, with ``v`` the mean per-query variance and ``C`` the mean covariance
between queries; ``C`` does not average away over all queries and is the reference variance of the
full share. :func:`widen` adds it in quadrature to both sides of the query interval.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
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


def pair_share(d: np.ndarray, n_train_groups: int) -> np.ndarray:
    """Per query, the share of (train group, holdout group) pairs of nearest distances ``d`` (queries x
    groups) where the train group's patient is closer (ties one half)."""
    dt, dh = d[:, :n_train_groups, None], d[:, None, n_train_groups:]
    pairs = dt.shape[1] * dh.shape[2]
    return ((dt < dh).sum(axis=(1, 2)) + 0.5 * (dt == dh).sum(axis=(1, 2))) / pairs


def _first_in(groups: np.ndarray, dist: np.ndarray, g: int) -> np.ndarray:
    """Per query, the distance of the first merged neighbour in group ``g`` (the last one when none is)."""
    mask = groups == g
    first = np.where(mask.any(axis=1), mask.argmax(axis=1), dist.shape[1] - 1)
    return dist[np.arange(dist.shape[0]), first]


def _covariance(per_query: np.ndarray) -> float:
    """The mean covariance between queries of replicate statistics (replicates x queries)."""
    s = per_query.shape[1]
    var_s = float(np.var(per_query.mean(axis=1), ddof=1))
    per = float(np.mean(np.var(per_query, axis=0, ddof=1)))
    return max(0.0, (var_s - per / s) / (1.0 - 1.0 / s))


def grouped_reference_spread(
    distances: Sequence[np.ndarray],
    indices: Sequence[np.ndarray],
    n_train_groups: int,
    *,
    rng: np.random.Generator,
    n_boot: int = 200,
) -> ReferenceSpread:
    """Reference-induced SD of the share closer to train, compared group by group.

    ``distances[g]`` and ``indices[g]`` are ``(s, k)`` ascending distances and indices of the same ``s``
    queries' nearest references in group ``g``; indices are positions in one pooled numbering of all
    reference patients (a patient in two groups has one position). Groups ``0 .. n_train_groups - 1``
    are train, the rest holdout.
    """
    n_groups = len(distances)
    if n_groups != len(indices) or n_groups < 2 or not 1 <= n_train_groups < n_groups:
        raise InvalidParameterError(
            f"grouped_reference_spread needs distance and index arrays of at least one train and one holdout group; "
            f"got {len(distances)} distance and {len(indices)} index arrays with {n_train_groups} train group(s) instead."
        )
    shapes = {d.shape[0] for d in distances} | {i.shape[0] for i in indices}
    if len(shapes) != 1 or any(d.shape != i.shape for d, i in zip(distances, indices)):
        raise InvalidParameterError(
            "grouped_reference_spread needs (s, k) distance and index arrays for the same queries; got "
            f"{[d.shape for d in distances]} and {[i.shape for i in indices]} instead."
        )
    if n_boot < 2:
        raise InvalidParameterError(f"The 'n_boot' parameter must be an int >= 2; got {n_boot!r} instead.")
    s, k = distances[0].shape[0], min(d.shape[1] for d in distances)
    if s < 2:
        return ReferenceSpread(0.0, s, k, n_boot)
    dist = np.concatenate(list(distances), axis=1)
    ids = np.concatenate(list(indices), axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    dist, ids = np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)
    n_refs = int(ids.max()) + 1
    used, where = np.unique(ids, return_inverse=True)
    where = where.reshape(ids.shape)
    closer = np.empty((n_boot, s))
    for b in range(n_boot):
        # a random regrouping of all references, drawn only for those some query sees: distinct random
        # positions in a permutation of the pool (equal-size groups), without permuting the whole pool
        positions = rng.choice(n_refs, size=used.size, replace=False)
        groups = (positions * n_groups // n_refs)[where]
        nearest = np.stack([_first_in(groups, dist, g) for g in range(n_groups)], axis=1)
        closer[b] = pair_share(nearest, n_train_groups)
    return ReferenceSpread(math.sqrt(_covariance(closer)), s, k, n_boot)


def reference_spread(
    d_train: np.ndarray,
    i_train: np.ndarray,
    d_holdout: np.ndarray,
    i_holdout: np.ndarray,
    *,
    rng: np.random.Generator,
    n_boot: int = 200,
) -> ReferenceSpread:
    """Reference-induced SD of the share closer to train between two reference sets (one group each)."""
    if d_train.shape != i_train.shape or d_holdout.shape != i_holdout.shape or d_train.shape[0] != d_holdout.shape[0]:
        raise InvalidParameterError(
            f"reference_spread needs (s, k) distance and index arrays for the same queries; got {d_train.shape}, "
            f"{i_train.shape}, {d_holdout.shape} and {i_holdout.shape} instead."
        )
    if n_boot < 2:
        raise InvalidParameterError(f"The 'n_boot' parameter must be an int >= 2; got {n_boot!r} instead.")
    n_t = int(i_train.max()) + 1 if i_train.size else 0
    return grouped_reference_spread([d_train, d_holdout], [i_train, i_holdout + n_t], 1, rng=rng, n_boot=n_boot)


def widen(share: float, query_interval: Interval, reference_sd: float) -> Interval:
    """The query interval with the reference SD added in quadrature on each side, clipped to [0, 1]."""
    z = probit(query_interval.level)
    extra = (z * reference_sd) ** 2
    low = share - math.sqrt((share - query_interval.low) ** 2 + extra)
    high = share + math.sqrt((query_interval.high - share) ** 2 + extra)
    return Interval(max(0.0, low), min(1.0, high), query_interval.level)
