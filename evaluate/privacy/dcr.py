"""Distance to closest record (DCR), near-copies and nearest-neighbour distance ratio (NNDR), train vs holdout.

On the encoded records (see ``records.py``: robust-scaled, capped numbers; categories weighted so a
mismatch adds 1 to the squared distance), synthetic records are compared with *all* training and
holdout patients, on an equal footing: both are cut into chunks of the same size (the smaller of the
two; records are in seeded random order, so a chunk is a random subset, and the last chunk of a side
wraps around to its first patients), every synthetic record gets its Euclidean distance to the
closest patient of every chunk, and every (train chunk, holdout chunk) pair is compared. With an
80/20 split that is four train chunks against the holdout: no training patient is left out, so no
copy is diluted away, and under the hypothesis that the generator did not memorise, a train chunk
and a holdout chunk are exchangeable.

* ``privacy.dcr.share_closer_to_train``: the share of (synthetic record, pair) comparisons where the
  train chunk's patient is closer (ties one half); 0.5 is ideal. It is a mean, so a few copies move it
  little (1 % of near-copies moves it by about 0.005 / chunks).
* ``privacy.dcr.near_copy_share``: the tail that the share misses. A synthetic record is a *near hit*
  when its nearest real patient (train or holdout, all of them) is ``1 / near_ratio`` times closer than
  any other real patient (``near_ratio`` 0.05 by default: 20 times). Whether that patient is a training
  or a holdout patient is, if the generator did not memorise, a draw with odds ``n_train : n_holdout``
  (train and holdout patients are exchangeable), whereas a near-copy of a training patient is a near
  hit on its patient. With ``A`` hits on training and ``B`` on holdout patients, ``(A - rho B) / n``
  (``rho = n_train / n_holdout``, ``n`` synthetic records) estimates the share of synthetic records that
  are near-copies of training patients beyond chance; ``attack_rate`` and ``baseline_rate`` are
  ``A / n`` and ``rho B / n``. Its variance under that null is exact given which patients are hit:
  every hit patient is train with probability ``n_train / (n_train + n_holdout)``, so the count has
  variance ``rho * sum_p c_p^2``, ``c_p`` the hits on patient ``p`` (a "hub" hit by many records counts
  for all of them). On fresh DE-SynPUF patients, 8,000 train and 2,000 holdout, it separates 1 %
  near-copies (dates moved 1-5 days, amounts +-5 %) from chance at 3.4 to 7 standard errors
  (``benchmarks/calibrate_privacy.py``), where the share moves by a few thousandths.

The share's CI counts the two sources of chance: the synthetic records (Wilson) and the finite
reference samples (``dcr_spread.py``: all chunks pooled and randomly regrouped, on each chunk's
``spread_k`` nearest neighbours of up to ``spread_queries`` sampled synthetic records). Synthetic
records are the queries: up to ``max_rows`` of them (a seeded sample, said in the notes; every one at
the default sizes).

NNDR is the distance to the closest over the distance to the second closest record within a chunk
(Lowe 2004; 0 when a record sits on one training record and far from the others, 1 when it has
several equally close). ``privacy.nndr.median`` is its median over train chunks, with the median over
holdout chunks (same size) as its baseline and a bootstrap CI. Distributions are in the details.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.privacy.dcr_spread import ReferenceSpread, grouped_reference_spread, pair_share, widen
from evaluate.privacy.distances import Neighbours, nearest_neighbours_many
from evaluate.privacy.inputs import privacy_inputs, rng_for
from evaluate.privacy.params import check_choice, check_float, check_int, confidence_param, get_param
from evaluate.privacy.stats import QUANTILES, probit, wilson_interval
from evaluate.registry import metric
from evaluate.result import Interval, MetricResult, skipped_result

NAME = "privacy.dcr"
SHARE = "privacy.dcr.share_closer_to_train"
NEAR = "privacy.dcr.near_copy_share"
NNDR = "privacy.nndr.median"


def nn_settings(ctx: EvalContext, metric_name: str) -> dict[str, Any]:
    """Keyword arguments of ``nearest_neighbours`` from params (``nn_method``, ``nprobe``)."""
    method = check_choice(get_param(ctx, metric_name, "nn_method", "auto"), "nn_method", metric_name, ("auto", "exact", "ivf"))
    nprobe = get_param(ctx, metric_name, "nprobe", None)
    out: dict[str, Any] = {"method": method}
    if nprobe is not None:
        out["nprobe"] = check_int(nprobe, "nprobe", metric_name, low=1)
    return out


def nndr(nb: Neighbours) -> np.ndarray:
    """Closest over second-closest distance; 1 where both are 0 (several identical nearest records)."""
    d1, d2 = nb.distances[:, 0], nb.distances[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)


def closer_share(d_train: np.ndarray, d_holdout: np.ndarray) -> tuple[float, float]:
    """(number closer to train with ties counted one half, share)."""
    k = float(np.sum(d_train < d_holdout) + 0.5 * np.sum(d_train == d_holdout))
    return k, k / d_train.size


def reference_chunks(n: int, size: int) -> list[np.ndarray]:
    """Positions ``0 .. n-1`` in ``ceil(n / size)`` windows of ``size`` consecutive positions, the last wrapping around."""
    return [np.arange(c * size, (c + 1) * size) % n for c in range(math.ceil(n / size))]


def near_hits(distances: np.ndarray, ids: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Per query, whether its nearest real patient is ``1 / ratio`` times closer than any other, and that patient.

    ``distances`` and ``ids`` are ``(n, m)`` candidate neighbours from every reference set (a patient
    may appear twice when chunks overlap); they must hold the two nearest distinct patients.
    """
    order = np.argsort(distances, axis=1, kind="stable")
    d = np.take_along_axis(distances, order, 1)
    i = np.take_along_axis(ids, order, 1)
    other = i != i[:, :1]
    second = np.where(other.any(axis=1), d[np.arange(d.shape[0]), other.argmax(axis=1)], np.inf)
    return d[:, 0] < ratio * second, i[:, 0]


def near_copy_estimate(hit: np.ndarray, nearest: np.ndarray, n_train: int, n_holdout: int,
                       confidence: float) -> dict[str, float]:
    """Near hits on training and holdout patients, the near-copy share beyond chance and its CI (module docstring)."""
    n = hit.size
    rho = n_train / n_holdout
    on_train = hit & (nearest < n_train)
    on_hold = hit & (nearest >= n_train)
    a, b = float(on_train.sum()), float(on_hold.sum())
    _, per_patient = np.unique(nearest[hit], return_counts=True)
    sd = math.sqrt(rho * float(np.sum(per_patient.astype(np.float64) ** 2))) / n
    est = (a - rho * b) / n
    half = probit(confidence) * sd
    return {"estimate": est, "low": est - half, "high": est + half, "sd": sd, "hits_train": a, "hits_holdout": b,
            "attack_rate": a / n, "baseline_rate": rho * b / n, "rho": rho, "hit_patients": int(per_patient.size),
            "largest_hub": int(per_patient.max()) if per_patient.size else 0}


def _histogram(a: np.ndarray, b: np.ndarray, bins: int = 30) -> list[dict[str, Any]]:
    top = float(np.quantile(np.concatenate([a, b]), 0.99))
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
    ca = np.histogram(np.minimum(a, edges[-1]), edges)[0]
    cb = np.histogram(np.minimum(b, edges[-1]), edges)[0]
    return [
        {"kind": "dcr_histogram", "low": float(edges[i]), "high": float(edges[i + 1]),
         "synthetic_to_train": int(ca[i]), "synthetic_to_holdout": int(cb[i])}
        for i in range(bins)
    ]


def _median_ci(values: np.ndarray, rng: np.random.Generator, n_boot: int, confidence: float) -> Interval:
    meds = np.concatenate([
        np.median(values[rng.integers(0, values.size, size=(min(20, n_boot - s), values.size))], axis=1)
        for s in range(0, n_boot, 20)
    ])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(meds, [alpha, 1 - alpha])
    return Interval(float(lo), float(hi), confidence)


@metric(NAME, family="privacy", description="DCR, near-copies and NNDR of synthetic records to train vs holdout",
        produces=(SHARE, NEAR, NNDR), needs_holdout=True)
def dcr(ctx: EvalContext) -> list[MetricResult]:
    confidence = confidence_param(ctx, NAME)
    n_boot = check_int(get_param(ctx, NAME, "n_bootstrap", 200), "n_bootstrap", NAME, low=10, high=100_000)
    ratio = check_float(get_param(ctx, NAME, "near_ratio", 0.05), "near_ratio", NAME, low=0.0, high=1.0, open_low=True)
    settings = nn_settings(ctx, NAME)
    inputs = privacy_inputs(ctx)
    assert inputs.x_holdout is not None
    n_t, n_h = inputs.x_train.shape[0], inputs.x_holdout.shape[0]
    size = min(n_t, n_h)
    t_chunks, h_chunks = reference_chunks(n_t, size), reference_chunks(n_h, size)
    pooled = [*t_chunks, *[c + n_t for c in h_chunks]]  # positions in one numbering: train, then holdout
    n_tc = len(t_chunks)
    n_q = inputs.targets("synthetic")
    queries = inputs.x_synthetic[:n_q]
    refs = [inputs.x_train[c] for c in t_chunks] + [inputs.x_holdout[c] for c in h_chunks]
    nbs = nearest_neighbours_many(queries, refs, k=min(2, size), rng=rng_for(ctx.options.seed, 31), **settings)
    d = np.stack([nb.distances[:, 0] for nb in nbs], axis=1)
    closer = pair_share(d, n_tc)
    share = float(closer.mean())
    spread = _spread(ctx, queries, refs, pooled, n_tc, n_boot, settings, approximate=nbs[0].recall is not None)
    ci = widen(share, wilson_interval(float(closer.sum()), n_q, confidence=confidence), spread.sd)
    hit, nearest = near_hits(np.concatenate([nb.distances for nb in nbs], axis=1),
                             np.concatenate([p[nb.indices] for nb, p in zip(nbs, pooled)], axis=1), ratio)
    near = near_copy_estimate(hit, nearest, n_t, n_h, confidence)
    d_t, d_h = d[:, :n_tc].ravel(), d[:, n_tc:].ravel()
    notes = (
        inputs.sampling_note(),
        f"{n_q:,} synthetic records as queries, compared with all {n_t:,} training and {n_h:,} holdout patients in "
        f"{n_tc} train and {len(h_chunks)} holdout chunk(s) of {size:,} patients (every train/holdout chunk pair compared)",
        nbs[0].note("synthetic to reference chunks"),
    )
    spread_note = (f"{spread.k} nearest of each chunk of {spread.n_queries:,} sampled synthetic records; chunks pooled and "
                   "randomly regrouped")
    q_t, q_h = np.quantile(d_t, QUANTILES), np.quantile(d_h, QUANTILES)
    quantile_rows = tuple(
        {"kind": "dcr_quantile", "q": q, "synthetic_to_train": float(a), "synthetic_to_holdout": float(b)}
        for q, a, b in zip(QUANTILES, q_t, q_h)
    )
    share_row = {
        "kind": "rates",
        "attack_rate": share,
        "baseline_rate": 0.5,
        "n_synthetic": n_q,
        "n_train": n_t,
        "n_holdout": n_h,
        "chunk_size": size,
        "train_chunks": n_tc,
        "holdout_chunks": len(h_chunks),
        "zero_distance_train": float(np.mean(d_t == 0)),
        "zero_distance_holdout": float(np.mean(d_h == 0)),
        "median_dcr_train": float(np.median(d_t)),
        "median_dcr_holdout": float(np.median(d_h)),
        "reference_sd": spread.sd,
        "reference_sd_queries": spread.n_queries,
        "reference_sd_k": spread.k,
    }
    near_row = {
        "kind": "rates",
        "attack_rate": near["attack_rate"],
        "baseline_rate": near["baseline_rate"],
        "estimate": near["estimate"],
        "estimate_ci": [near["low"], near["high"]],
        "sd": near["sd"],
        "near_ratio": ratio,
        "near_hits_train": near["hits_train"],
        "near_hits_holdout": near["hits_holdout"],
        "train_to_holdout": near["rho"],
        "hit_patients": near["hit_patients"],
        "largest_hub": near["largest_hub"],
        "n_synthetic": n_q,
    }
    clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731
    results = [
        MetricResult(name=SHARE, family="privacy", value=share, goal="minimize", ci=ci,
                     n=n_q, details=(share_row, *quantile_rows, *_histogram(d_t, d_h)),
                     notes=(*notes, "0.5 is ideal: synthetic records as close to holdout patients as to training patients; "
                            "a mean, so it hardly moves for a small share of copies (see privacy.dcr.near_copy_share)",
                            f"CI: Wilson over the synthetic records widened by the reference samples' SD {spread.sd:.4f} "
                            f"({spread_note})"),
                     seed=ctx.options.seed, skipped=inputs.spec.skipped),
        MetricResult(name=NEAR, family="privacy", value=clip(near["estimate"]), goal="minimize",
                     ci=Interval(clip(near["low"]), clip(near["high"]), confidence), n=n_q, details=(near_row,),
                     notes=(*notes, f"estimated share of synthetic records that are near-copies of training patients: "
                            f"records whose nearest real patient is {1 / ratio:g}x closer than any other, on training "
                            f"patients ({near['hits_train']:.0f}) beyond the holdout's count times {near['rho']:.3g} "
                            f"({near['hits_holdout']:.0f}; chance); raw estimate {near['estimate']:.5f} "
                            f"[{near['low']:.5f}, {near['high']:.5f}], shown clipped to [0, 1]; 0 is ideal",
                            "CI: normal, with the variance of the count when every hit patient is a training patient "
                            "with odds n_train : n_holdout (patients hit by several records count for all of them)"),
                     seed=ctx.options.seed),
    ]
    if size >= 2:
        r = np.stack([nndr(nb) for nb in nbs], axis=1)
        r_t, r_h = r[:, :n_tc].ravel(), r[:, n_tc:].ravel()
        med = float(np.median(r_t))
        nndr_row = {"kind": "rates", "attack_rate": med, "baseline_rate": float(np.median(r_h)), "n_synthetic": n_q}
        nndr_q = tuple(
            {"kind": "nndr_quantile", "q": q, "synthetic_to_train": float(a), "synthetic_to_holdout": float(b)}
            for q, a, b in zip(QUANTILES, np.quantile(r_t, QUANTILES), np.quantile(r_h, QUANTILES))
        )
        results.append(
            MetricResult(name=NNDR, family="privacy", value=med, goal="maximize",
                         ci=_median_ci(r_t, rng_for(ctx.options.seed, 32), n_boot, confidence), n=n_q,
                         details=(nndr_row, *nndr_q),
                         notes=(*notes, "within equal-size chunks; lower than the holdout baseline means synthetic records "
                                "sit on single training records"),
                         seed=ctx.options.seed)
        )
    else:
        results.append(skipped_result(NNDR, "privacy", "maximize", "NNDR needs at least 2 reference patients per chunk"))
    return results


def _spread(ctx: EvalContext, queries: np.ndarray, refs: list[np.ndarray], pooled: list[np.ndarray], n_train_chunks: int,
            n_boot: int, settings: dict[str, Any], *, approximate: bool) -> ReferenceSpread:
    """The reference samples' part of the share's spread, on a seeded subsample of synthetic records.

    When the main search was approximate (large data), so is this one (IVF probing 8 cells): the spread
    is an SD estimate, and an exact k-nearest search of the subsample would cost as much as all the rest.
    """
    n_queries = check_int(get_param(ctx, NAME, "spread_queries", 2000), "spread_queries", NAME, low=2, high=1_000_000)
    k = check_int(get_param(ctx, NAME, "spread_k", 10), "spread_k", NAME, low=1, high=100)
    rng = rng_for(ctx.options.seed, 33)
    pick = np.sort(rng.choice(queries.shape[0], size=min(n_queries, queries.shape[0]), replace=False))
    k = min(k, min(r.shape[0] for r in refs))
    if approximate:
        settings = {**settings, "method": "ivf", "nprobe": max(8, int(settings.get("nprobe") or 0)), "recall_queries": 0}
    nbs = nearest_neighbours_many(queries[pick], refs, k=k, rng=rng, **settings)
    return grouped_reference_spread([nb.distances for nb in nbs], [p[nb.indices] for nb, p in zip(nbs, pooled)],
                                    n_train_chunks, rng=rng, n_boot=n_boot)
