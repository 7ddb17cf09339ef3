"""Exact copies: the share of synthetic patients whose whole record is identical to a training patient's.

A patient's record is every value of their patient row(s) and of every row of every table linked to
them, ids and direct identifiers left out (row order does not matter). Each record is reduced to a
64-bit hash in SQL over all patients (no sampling), and records are compared by hash.

The same share against the holdout is the rate expected by chance (natural duplicates in the
population). As the holdout is usually smaller than the training set, the comparison is also made
size-matched: against a seeded sample of training patients as large as the holdout
(``attack_rate``), beside the holdout share (``baseline_rate``). The policy reads their difference.
"""
from __future__ import annotations

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.inputs import rng_for
from evaluate.privacy.params import confidence_param
from evaluate.privacy.records import record_hashes
from evaluate.privacy.stats import wilson_interval
from evaluate.registry import metric
from evaluate.result import MetricResult

NAME = "privacy.exact_copies"


def copy_shares(
    synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray | None, *, rng: np.random.Generator
) -> dict[str, float | int | None]:
    """Shares of synthetic hashes found among train (all, and size-matched) and holdout hashes."""
    if synthetic.size == 0:
        raise EmptyInputError("the synthetic data has no patients")
    if train.size == 0:
        raise EmptyInputError("the training data has no patients")
    in_train = np.isin(synthetic, train)
    out: dict[str, float | int | None] = {
        "train_share": float(in_train.mean()),
        "n_copies": int(in_train.sum()),
        "train_patients_copied_share": float(np.isin(train, synthetic).mean()),
        "synthetic_duplicates_share": float(1.0 - np.unique(synthetic).size / synthetic.size),
        "attack_rate": None,
        "baseline_rate": None,
        "n_matched": None,
    }
    if holdout is not None and holdout.size:
        matched = rng.choice(train, size=min(holdout.size, train.size), replace=False)
        out["attack_rate"] = float(np.isin(synthetic, matched).mean())
        out["baseline_rate"] = float(np.isin(synthetic, holdout).mean())
        out["n_matched"] = int(matched.size)
    return out


@metric(NAME, family="privacy", description="share of synthetic patients whose full record copies a training patient",
        produces=(NAME,))
def exact_copies(ctx: EvalContext) -> list[MetricResult]:
    confidence = confidence_param(ctx, NAME)
    _, syn = record_hashes(ctx.synthetic)
    _, train = record_hashes(ctx.train)
    hold = record_hashes(ctx.holdout)[1] if ctx.holdout is not None else None
    shares = copy_shares(syn, train, hold, rng=rng_for(ctx.options.seed, 21))
    n = int(syn.size)
    row = {
        "kind": "rates",
        **shares,
        "n_synthetic": n,
        "n_train": int(train.size),
        "n_holdout": None if hold is None else int(hold.size),
    }
    notes = [
        "a copy is a synthetic patient whose full record (patient rows and all event rows, ids and direct "
        "identifiers excluded) is identical to a training patient's; computed on all patients, no sampling",
    ]
    if hold is None:
        notes.append("no holdout given: the rate expected by chance (baseline) is unknown")
    else:
        notes.append(
            f"baseline: {shares['baseline_rate']:.4f} of synthetic patients copy a holdout patient; against "
            f"{shares['n_matched']} training patients (holdout-sized sample) the share is {shares['attack_rate']:.4f}"
        )
    return [
        MetricResult(
            name=NAME,
            family="privacy",
            value=float(shares["train_share"]),  # type: ignore[arg-type]
            goal="minimize",
            ci=wilson_interval(int(shares["n_copies"]), n, confidence=confidence),  # type: ignore[arg-type]
            n=n,
            details=(row,),
            notes=tuple(notes),
            seed=ctx.options.seed,
        )
    ]
