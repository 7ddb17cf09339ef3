"""Distance to closest record (DCR) and nearest-neighbour distance ratio (NNDR), synthetic to train vs holdout.

On the encoded records (see ``records.py``: robust-scaled numbers, one-hot categories weighted so a
mismatch adds 1 to the squared distance), every sampled synthetic patient gets its Euclidean distance
to the closest training patient and to the closest holdout patient, the two reference samples being
of equal size (the smaller of the two, at most ``max_rows``). If the generator learnt the population
and not its training patients, a synthetic record is as likely to be closer to train as to holdout:
``privacy.dcr.share_closer_to_train`` is 0.5 at best (ties count one half). Its CI is the Wilson
interval over the synthetic records widened by the spread due to the finite reference samples
(``dcr_spread.py``: train and holdout references pooled and randomly relabelled, on the 10 nearest
neighbours of each side of up to 2,000 sampled synthetic records): far-off synthetic records share a
few nearest "hub" patients, and which side those land on moves the share much more than the number
of synthetic records suggests.

NNDR is the distance to the closest over the distance to the second closest record (Lowe 2004;
0 when a record sits on one training record and far from the others, 1 when it has several equally
close). ``privacy.nndr.median`` is the median NNDR to train, with the median NNDR to holdout as its
baseline and a bootstrap CI. Both distributions (quantiles, histogram) are in the details.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.privacy.dcr_spread import ReferenceSpread, reference_spread, widen
from evaluate.privacy.distances import Neighbours, nearest_neighbours
from evaluate.privacy.inputs import privacy_inputs, rng_for
from evaluate.privacy.params import check_choice, check_int, confidence_param, get_param
from evaluate.privacy.stats import QUANTILES, wilson_interval
from evaluate.registry import metric
from evaluate.result import Interval, MetricResult, skipped_result

NAME = "privacy.dcr"
SHARE = "privacy.dcr.share_closer_to_train"
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


@metric(NAME, family="privacy", description="DCR and NNDR of synthetic records to train vs holdout",
        produces=(SHARE, NNDR), needs_holdout=True)
def dcr(ctx: EvalContext) -> list[MetricResult]:
    confidence = confidence_param(ctx, NAME)
    n_boot = check_int(get_param(ctx, NAME, "n_bootstrap", 200), "n_bootstrap", NAME, low=10, high=100_000)
    settings = nn_settings(ctx, NAME)
    inputs = privacy_inputs(ctx)
    assert inputs.x_holdout is not None
    n_ref = min(inputs.x_train.shape[0], inputs.x_holdout.shape[0])
    rng = rng_for(ctx.options.seed, 31)
    to_train = nearest_neighbours(inputs.x_synthetic, inputs.x_train[:n_ref], k=min(2, n_ref), rng=rng, **settings)
    to_hold = nearest_neighbours(inputs.x_synthetic, inputs.x_holdout[:n_ref], k=min(2, n_ref), rng=rng, **settings)
    d_t, d_h = to_train.distances[:, 0], to_hold.distances[:, 0]
    k, share = closer_share(d_t, d_h)
    n = int(d_t.size)
    spread = _spread(ctx, inputs.x_synthetic, inputs.x_train[:n_ref], inputs.x_holdout[:n_ref], n_boot, settings)
    ci = widen(share, wilson_interval(k, n, confidence=confidence), spread.sd)
    notes = (
        inputs.sampling_note(),
        f"train and holdout references are both {n_ref:,} patients (equal sizes, so 0.5 is the ideal share)",
        to_train.note("synthetic to train"),
        to_hold.note("synthetic to holdout"),
    )
    q_t, q_h = np.quantile(d_t, QUANTILES), np.quantile(d_h, QUANTILES)
    quantile_rows = tuple(
        {"kind": "dcr_quantile", "q": q, "synthetic_to_train": float(a), "synthetic_to_holdout": float(b)}
        for q, a, b in zip(QUANTILES, q_t, q_h)
    )
    share_row = {
        "kind": "rates",
        "attack_rate": share,
        "baseline_rate": 0.5,
        "n_synthetic": n,
        "n_reference": n_ref,
        "ties": int(np.sum(d_t == d_h)),
        "zero_distance_train": float(np.mean(d_t == 0)),
        "zero_distance_holdout": float(np.mean(d_h == 0)),
        "median_dcr_train": float(np.median(d_t)),
        "median_dcr_holdout": float(np.median(d_h)),
        "reference_sd": spread.sd,
        "reference_sd_queries": spread.n_queries,
        "reference_sd_k": spread.k,
    }
    results = [
        MetricResult(name=SHARE, family="privacy", value=share, goal="minimize", ci=ci,
                     n=n, details=(share_row, *quantile_rows, *_histogram(d_t, d_h)),
                     notes=(*notes, "0.5 is ideal: synthetic records as close to holdout patients as to training patients",
                            f"CI: Wilson over the synthetic records widened by the reference samples' SD {spread.sd:.4f} "
                            f"(references randomly relabelled train/holdout; {spread.k} nearest of each side of "
                            f"{spread.n_queries:,} sampled synthetic records)"),
                     seed=ctx.options.seed, skipped=inputs.spec.skipped),
    ]
    if n_ref >= 2:
        r_t, r_h = nndr(to_train), nndr(to_hold)
        med = float(np.median(r_t))
        nndr_row = {"kind": "rates", "attack_rate": med, "baseline_rate": float(np.median(r_h)), "n_synthetic": n}
        nndr_q = tuple(
            {"kind": "nndr_quantile", "q": q, "synthetic_to_train": float(a), "synthetic_to_holdout": float(b)}
            for q, a, b in zip(QUANTILES, np.quantile(r_t, QUANTILES), np.quantile(r_h, QUANTILES))
        )
        results.append(
            MetricResult(name=NNDR, family="privacy", value=med, goal="maximize",
                         ci=_median_ci(r_t, rng_for(ctx.options.seed, 32), n_boot, confidence), n=n,
                         details=(nndr_row, *nndr_q),
                         notes=(*notes, "lower than the holdout baseline means synthetic records sit on single training records"),
                         seed=ctx.options.seed)
        )
    else:
        results.append(skipped_result(NNDR, "privacy", "maximize", "NNDR needs at least 2 reference patients"))
    return results


def _spread(ctx: EvalContext, x_syn: np.ndarray, x_train: np.ndarray, x_hold: np.ndarray, n_boot: int,
            settings: dict[str, Any]) -> ReferenceSpread:
    """The reference samples' part of the share's spread, on a seeded subsample of synthetic records."""
    n_queries = check_int(get_param(ctx, NAME, "spread_queries", 2000), "spread_queries", NAME, low=2, high=1_000_000)
    k = check_int(get_param(ctx, NAME, "spread_k", 10), "spread_k", NAME, low=1, high=100)
    rng = rng_for(ctx.options.seed, 33)
    pick = np.sort(rng.choice(x_syn.shape[0], size=min(n_queries, x_syn.shape[0]), replace=False))
    k = min(k, x_train.shape[0])
    to_t = nearest_neighbours(x_syn[pick], x_train, k=k, rng=rng, **settings)
    to_h = nearest_neighbours(x_syn[pick], x_hold, k=k, rng=rng, **settings)
    return reference_spread(to_t.distances, to_t.indices, to_h.distances, to_h.indices, rng=rng, n_boot=n_boot)
