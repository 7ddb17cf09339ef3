"""Exact copies: the share of synthetic patients whose whole record is identical to a training patient's.

A patient's record is every value of their patient row(s) and of every row of every table linked to
them, ids and direct identifiers left out (row order does not matter). Each record is reduced to a
64-bit hash in SQL over all patients (no sampling), and records are compared by hash.

The same share against the holdout is the rate expected by chance (natural duplicates in the
population). The holdout is usually smaller than the training set (80/20), so the two are compared
per reference patient, never on a holdout-sized sample of train (which would hide three copies in
four): training patients are cut at random into chunks no larger than the holdout, each chunk's
matches are counted, and their sum is set against the holdout's matches scaled by the size ratio.
``attack_rate`` is that sum over the synthetic patients, ``baseline_rate`` the scaled holdout share;
their difference, which the policy reads, estimates the share of synthetic patients that copy a
training patient beyond chance. A one-sided binomial test of the train matches against the holdout
matches (exchangeable patients: a match lands in train with probability n_train / (n_train +
n_holdout)) gives its p-value.
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
    """Shares of synthetic hashes found among train and holdout hashes, compared per reference patient (see the module docstring)."""
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
        "excess_share": None,
        "p_value": None,
        "n_chunks": None,
    }
    if holdout is not None and holdout.size:
        size = min(train.size, holdout.size)
        train_matches = _chunked_matches(synthetic, train, size, rng)
        hold_matches = _chunked_matches(synthetic, holdout, size, rng)
        scaled = hold_matches * train.size / holdout.size
        n = synthetic.size
        out["attack_rate"] = train_matches / n
        out["baseline_rate"] = scaled / n
        out["excess_share"] = (train_matches - scaled) / n
        out["n_chunks"] = int(np.ceil(train.size / size))
        both = int(round(train_matches + hold_matches))
        p_train = train.size / (train.size + holdout.size)
        from scipy.stats import binomtest  # lazily: scipy.stats takes a second to import
        out["p_value"] = float(binomtest(int(round(train_matches)), both, p_train, alternative="greater").pvalue) if both else 1.0
    return out


def _chunked_matches(synthetic: np.ndarray, reference: np.ndarray, size: int, rng: np.random.Generator) -> float:
    """Synthetic hashes matched in each random chunk (at most ``size`` patients) of ``reference``, summed over chunks."""
    chunks = np.array_split(reference[rng.permutation(reference.size)], int(np.ceil(reference.size / size)))
    return float(sum(int(np.isin(synthetic, c).sum()) for c in chunks))


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
            f"per reference patient: {shares['attack_rate']:.4f} of synthetic patients match a training patient "
            f"(summed over {shares['n_chunks']} holdout-sized chunks of train), {shares['baseline_rate']:.4f} would by "
            f"chance (holdout matches scaled to the training size); excess {shares['excess_share']:.4f}, one-sided "
            f"binomial p = {shares['p_value']:.2g}"
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
