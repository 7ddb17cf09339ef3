"""Nearest neighbours of encoded patient records: exact blocked search and an IVF search with re-ranking.

Both work on float32 matrices and BLAS matrix products, using
``||q - r||^2 = ||q||^2 + ||r||^2 - 2 q.r`` on blocks of queries and references and keeping a running
top-k per query with ``argmin`` passes (cheaper than sorting a block). Candidates are then re-ranked
with distances recomputed from the vector differences (summed in float64), so copies are at distance
exactly 0 and ties are exact; ties are broken by the lower reference index.

* ``exact``: every query against every reference, in blocks of 2048 x 1024 (bounded memory).
* ``ivf``: an inverted-file index (Jegou et al., "Product quantization for nearest neighbor search",
  TPAMI 2011, without the quantisation): seeded k-means cells of the queries (shared by every
  reference set searched), each query searched in its ``nprobe`` nearest cells (by default
  ``nlist = 1.5 sqrt(n)`` cells, ``nprobe = nlist / 40``). It is approximate; its recall@k against
  the exact search is measured on 256 seeded queries (``recall_queries``; 0 skips it) and reported
  with the result.

``method="auto"`` is exact up to ``exact_limit`` query-reference pairs and IVF beyond.

:func:`gower_neighbours` is the mixed-type search of the Anonymeter-style attacks: L1 on range-scaled
numbers plus one per category mismatch (Gower 1971, as Anonymeter's ``MixedTypeKNeighbors``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from evaluate.errors import EmptyInputError
from evaluate.privacy.errors import InvalidParameterError

Method = Literal["auto", "exact", "ivf"]
EXACT_LIMIT = 6e8
_BLOCK_PAIRS = 1 << 22  # ~16 MB of float32 distances per block


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest references of each query: Euclidean distances (float64, ascending) and indices."""

    distances: np.ndarray
    indices: np.ndarray
    method: str
    recall: float | None = None
    n_recall_queries: int = 0

    def note(self, what: str) -> str:
        """One sentence for result notes: how the neighbours were found."""
        if self.recall is None:
            return f"{what}: exact nearest neighbours"
        if not self.n_recall_queries:
            return f"{what}: approximate nearest neighbours ({self.method}); recall not measured"
        return (
            f"{what}: approximate nearest neighbours ({self.method}); recall@{self.distances.shape[1]} against "
            f"the exact search on {self.n_recall_queries} sampled queries = {self.recall:.3f}"
        )


def _check(queries: np.ndarray, refs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q = np.ascontiguousarray(queries, dtype=np.float32)
    r = np.ascontiguousarray(refs, dtype=np.float32)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise InvalidParameterError(
            f"The 'queries' and 'refs' parameters must be 2-D with the same number of columns; got {q.shape} and {r.shape} instead."
        )
    if q.shape[0] == 0 or r.shape[0] == 0:
        raise EmptyInputError(f"nearest neighbours need queries and references; got {q.shape[0]} and {r.shape[0]} rows")
    if not 1 <= k <= r.shape[0]:
        raise InvalidParameterError(f"The 'k' parameter must be an int in [1, {r.shape[0]}]; got {k!r} instead.")
    return q, r


def nearest_neighbours(
    queries: np.ndarray,
    refs: np.ndarray,
    *,
    k: int = 1,
    method: Method = "auto",
    rng: np.random.Generator | None = None,
    exact_limit: float = EXACT_LIMIT,
    nlist: int | None = None,
    nprobe: int | None = None,
    recall_queries: int = 256,
) -> Neighbours:
    """The ``k`` nearest rows of ``refs`` for every row of ``queries`` (Euclidean)."""
    return nearest_neighbours_many(queries, [refs], k=k, method=method, rng=rng, exact_limit=exact_limit, nlist=nlist,
                                   nprobe=nprobe, recall_queries=recall_queries)[0]


def nearest_neighbours_many(
    queries: np.ndarray,
    refs: Sequence[np.ndarray],
    *,
    k: int = 1,
    method: Method = "auto",
    rng: np.random.Generator | None = None,
    exact_limit: float = EXACT_LIMIT,
    nlist: int | None = None,
    nprobe: int | None = None,
    recall_queries: int = 256,
) -> list[Neighbours]:
    """Nearest neighbours of the same queries in several reference sets.

    With IVF the cells are k-means cells of the queries, shared by every reference set, so the
    clustering and the queries' probes are computed once.
    """
    checked = [_check(queries, r, k) for r in refs]
    q = checked[0][0]
    rs = [r for _, r in checked]
    biggest = max(q.shape[0] * r.shape[0] for r in rs)
    if method == "auto":
        method = "exact" if biggest <= exact_limit else "ivf"
    if method == "exact":
        out = []
        for r in rs:
            d, i = _rerank(q, r, _exact_candidates(q, r, k), k)
            out.append(Neighbours(d, i, "exact"))
        return out
    if method != "ivf":
        raise InvalidParameterError(f"The 'method' parameter must be one of 'auto', 'exact', 'ivf'; got {method!r} instead.")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = min(q.shape[0], *(r.shape[0] for r in rs))
    nlist = min(nlist or int(min(max(16, round(1.5 * np.sqrt(n))), 1024)), n)
    nprobe = min(nprobe or max(1, int(np.ceil(nlist / 40))), nlist)
    centroids = kmeans(q, nlist, rng=rng)
    probes = _nearest_cells(q, centroids, nprobe)
    m = min(recall_queries, q.shape[0])
    sample = np.sort(rng.choice(q.shape[0], size=m, replace=False))
    out = []
    for r in rs:
        d, i = _rerank(q, r, _ivf_candidates(q, r, k, centroids=centroids, probes=probes), k)
        recall = float("nan")
        if m:
            truth_d, _ = _rerank(q[sample], r, _exact_candidates(q[sample], r, k), k)
            # a neighbour counts as found when its distance matches the exact one (ties are equivalent)
            recall = float(np.mean(d[sample] <= truth_d + 1e-9 * (1.0 + truth_d)))
        out.append(Neighbours(d, i, f"ivf nlist={nlist} nprobe={nprobe}", recall, m))
    return out


# -- exact ---------------------------------------------------------------------------------------------
#
# OpenBLAS threads cost more than they bring on the small and thin products below (measured: a
# 1266x129 by 129x158 product takes 12 ms with two BLAS threads and 1.5 ms with one), so BLAS runs on
# one thread and the blocks are spread over a pool of Python threads instead (numpy releases the GIL).


def n_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def parallel_map(fn: Callable[[int], None], items: Sequence[int]) -> None:
    """Run ``fn`` on every item, on a thread pool with single-threaded BLAS."""
    with threadpool_limits(1):
        workers = n_workers()
        if workers == 1 or len(items) == 1:
            for it in items:
                fn(it)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fn, items))


def _augment(q: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[-2q, 1]`` and ``[r, |r|^2]``: their product is ``|q - r|^2 - |q|^2`` in one matrix product."""
    qa = np.empty((q.shape[0], q.shape[1] + 1), dtype=np.float32)
    qa[:, :-1] = q
    qa[:, :-1] *= -2.0
    qa[:, -1] = 1.0
    ra = np.empty((r.shape[1] + 1, r.shape[0]), dtype=np.float32)
    ra[:-1] = r.T
    ra[-1] = np.einsum("ij,ij->i", r, r)
    return qa, ra


def _topk_block(dist: np.ndarray, k: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest entries of each row of ``dist`` (modified in place), by repeated argmin."""
    rows = np.arange(dist.shape[0])
    kk = min(k, dist.shape[1])
    vals = np.full((dist.shape[0], k), np.inf, dtype=np.float32)
    idx = np.full((dist.shape[0], k), -1, dtype=np.int64)
    for j in range(kk):
        a = np.argmin(dist, axis=1)
        vals[:, j] = dist[rows, a]
        idx[:, j] = a + offset
        if j + 1 < kk:
            dist[rows, a] = np.inf
    return vals, idx


def _select(d: np.ndarray, i: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest candidates per row (stable: earlier candidates win ties)."""
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(i, order, 1)


def _exact_candidates(q: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    qa, ra = _augment(q, r)
    bq, br = 2048, 1024
    out = np.empty((q.shape[0], k), dtype=np.int64)
    starts = list(range(0, q.shape[0], bq))

    def run(s: int) -> None:
        qb = qa[s : s + bq]
        parts_d, parts_i = [], []
        for t in range(0, r.shape[0], br):
            vals, idx = _topk_block(qb @ ra[:, t : t + br], k, t)
            parts_d.append(vals)
            parts_i.append(idx)
        out[s : s + bq] = _select(np.concatenate(parts_d, axis=1), np.concatenate(parts_i, axis=1), k)

    parallel_map(run, starts)
    return out


def _rerank(q: np.ndarray, r: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances of candidate pairs (identical vectors at exactly 0), sorted by (distance, index); missing = -1."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    d = np.empty(idx.shape, dtype=np.float64)
    step = 8192
    for j in range(idx.shape[1]):
        for s in range(0, q.shape[0], step):
            diff = q[s : s + step] - r[safe[s : s + step, j]]
            d[s : s + step, j] = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    d[~valid] = np.inf
    order = np.lexsort((safe, d), axis=-1)[:, :k]
    return np.take_along_axis(d, order, 1), np.take_along_axis(np.where(valid, idx, -1), order, 1)


# -- IVF ---------------------------------------------------------------------------------------------------


def kmeans(x: np.ndarray, n_clusters: int, *, rng: np.random.Generator, n_iter: int = 6, sample: int = 16_384) -> np.ndarray:
    """Centroids by Lloyd's algorithm on a seeded sample, initialised on sampled rows."""
    pick = rng.choice(x.shape[0], size=min(max(sample, n_clusters), x.shape[0]), replace=False)
    xs = x[np.sort(pick)]
    centroids = xs[rng.choice(xs.shape[0], size=n_clusters, replace=False)].copy()
    for _ in range(n_iter):
        assign = _nearest_cells(xs, centroids, 1)[:, 0]
        order = np.argsort(assign, kind="stable")
        starts = np.searchsorted(assign[order], np.arange(n_clusters + 1))
        counts = np.diff(starts)
        full = counts > 0
        sums = np.add.reduceat(xs[order].astype(np.float64), starts[:-1][full], axis=0)
        centroids[full] = (sums / counts[full, None]).astype(np.float32)
    return centroids


def _nearest_cells(x: np.ndarray, centroids: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` nearest centroids of every row (unordered)."""
    _, ca = _augment(np.zeros((1, centroids.shape[1]), np.float32), centroids)
    out = np.empty((x.shape[0], n), dtype=np.int64)
    step = 4096

    def run(s: int) -> None:
        xb = x[s : s + step]
        qa = np.empty((xb.shape[0], xb.shape[1] + 1), dtype=np.float32)
        qa[:, :-1] = xb
        qa[:, :-1] *= -2.0
        qa[:, -1] = 1.0
        d = qa @ ca
        if n == 1:
            out[s : s + step, 0] = np.argmin(d, axis=1)
        else:
            out[s : s + step] = np.argpartition(d, n - 1, axis=1)[:, :n]

    parallel_map(run, list(range(0, x.shape[0], step)))
    return out


def _ivf_candidates(q: np.ndarray, r: np.ndarray, k: int, *, centroids: np.ndarray, probes: np.ndarray) -> np.ndarray:
    nlist, nprobe = centroids.shape[0], probes.shape[1]
    cell = _nearest_cells(r, centroids, 1)[:, 0]
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(nlist + 1))
    rs = r[order]
    rn = np.einsum("ij,ij->i", rs, rs)
    q2 = q * np.float32(-2.0)
    flat_c = probes.ravel()
    by_cell = np.argsort(flat_c, kind="stable")
    q_of = by_cell // nprobe
    bounds = np.searchsorted(flat_c[by_cell], np.arange(nlist + 1))
    cand_d = np.full((flat_c.size, k), np.inf, dtype=np.float32)
    cand_i = np.full((flat_c.size, k), -1, dtype=np.int64)

    def run(c: int) -> None:
        lo, hi = starts[c], starts[c + 1]
        qlo, qhi = bounds[c], bounds[c + 1]
        if hi == lo or qhi == qlo:
            return
        dist = q2[q_of[qlo:qhi]] @ rs[lo:hi].T
        dist += rn[None, lo:hi]
        vals, idx = _topk_block(dist, k, lo)
        cand_d[by_cell[qlo:qhi]] = vals
        cand_i[by_cell[qlo:qhi]] = idx

    parallel_map(run, list(range(nlist)))
    # every query has exactly nprobe (cell) slots in query order: pick its k best candidates
    best = _select(cand_d.reshape(q.shape[0], nprobe * k), cand_i.reshape(q.shape[0], nprobe * k), k)
    return np.where(best >= 0, order[np.maximum(best, 0)], -1)


# -- mixed types (Anonymeter-style) --------------------------------------------------------------------------


def gower_neighbours(
    queries_num: np.ndarray,
    queries_cat: np.ndarray,
    refs_num: np.ndarray,
    refs_cat: np.ndarray,
    *,
    k: int = 1,
) -> np.ndarray:
    """Indices of the ``k`` references nearest to each query in a Gower-style distance (ties: lower index).

    Numbers must be scaled by their range already. A pair of missing numbers is at distance 0, a
    missing number against a present one at distance 1; categories are integer codes (missing is a
    code like any other) and differ by 1.
    """
    m = max(queries_num.shape[0], queries_cat.shape[0])
    n = max(refs_num.shape[0], refs_cat.shape[0])
    if m == 0 or n == 0:
        raise EmptyInputError(f"nearest neighbours need queries and references; got {m} and {n} rows")
    if not 1 <= k <= n:
        raise InvalidParameterError(f"The 'k' parameter must be an int in [1, {n}]; got {k!r} instead.")
    qn = np.asarray(queries_num, dtype=np.float32)
    rn = np.asarray(refs_num, dtype=np.float32)
    q_missing, r_missing = np.isnan(qn), np.isnan(rn)
    qn, rn = np.where(q_missing, 0, qn), np.where(r_missing, 0, rn)
    qc = np.asarray(queries_cat)
    rc = np.asarray(refs_cat)
    step = max(1, _BLOCK_PAIRS // n)
    out = np.empty((m, k), dtype=np.int64)
    numeric_missing = [bool(q_missing[:, j].any() or r_missing[:, j].any()) for j in range(qn.shape[1])]

    def run(s: int) -> None:
        e = min(m, s + step)
        dist = np.zeros((e - s, n), dtype=np.float32)
        tmp = np.empty_like(dist)
        for j in range(qn.shape[1]):
            np.subtract(qn[s:e, j, None], rn[None, :, j], out=tmp)
            np.abs(tmp, out=tmp)
            if numeric_missing[j]:
                qm, rm = q_missing[s:e, j, None], r_missing[None, :, j]
                tmp = np.where(qm | rm, np.where(qm & rm, np.float32(0.0), np.float32(1.0)), tmp).astype(np.float32, copy=False)
            dist += tmp
        for j in range(qc.shape[1]):
            dist += qc[s:e, j, None] != rc[None, :, j]
        if k == 1:
            out[s:e, 0] = np.argmin(dist, axis=1)
        else:
            out[s:e] = np.argsort(dist, axis=1, kind="stable")[:, :k]

    # numpy's element-wise passes release the GIL: blocks of queries run on a thread pool
    parallel_map(run, list(range(0, m, step)))
    return out
