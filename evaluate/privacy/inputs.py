"""What the row-level privacy metrics share: seeded patient samples, their records and encodings.

Nearest-neighbour work and attacks run on seeded, bounded samples (design.md, "Scale"): up to
``EvalOptions.max_rows`` patients of each of train, holdout and synthetic, drawn without replacement
from the sorted patient keys with a generator seeded by ``(seed, dataset)``, so the samples do not
depend on row order and any prefix of a sample is itself a random sample. The record spec and the
distance encoding are fitted on the training sample only.

The inputs are computed once per evaluation context and settings, and kept in memory only while
the context lives (never written anywhere).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.params import check_int, get_param
from evaluate.privacy.records import (
    Encoding,
    Records,
    RecordSpec,
    build_records,
    fit_encoding,
    fit_record_spec,
    patient_keys,
)
from synth.load import Dataset

STREAMS = {"train": 1, "holdout": 2, "synthetic": 3}
OWNER = "privacy"


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A generator for one purpose: seeded by the evaluation seed and a fixed stream id."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *[int(s) for s in stream]]))


def sample_keys(keys: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` keys drawn without replacement, in random order (all of them, shuffled, when fewer)."""
    take = min(n, keys.size)
    return keys[rng.permutation(keys.size)[:take]]


@dataclass(frozen=True)
class PrivacyInputs:
    """Samples of records of the three datasets, encoded for distances (float32)."""

    spec: RecordSpec
    encoding: Encoding
    train: Records
    holdout: Records | None
    synthetic: Records
    x_train: np.ndarray
    x_holdout: np.ndarray | None
    x_synthetic: np.ndarray
    n_total: dict[str, int]
    seed: int
    max_rows: int

    def sampling_note(self) -> str:
        parts = [
            f"{len(self.synthetic):,} of {self.n_total['synthetic']:,} synthetic",
            f"{len(self.train):,} of {self.n_total['train']:,} train",
        ]
        if self.holdout is not None:
            parts.append(f"{len(self.holdout):,} of {self.n_total['holdout']:,} holdout")
        return (
            f"row-level work on seeded samples of patients ({', '.join(parts)}; max_rows={self.max_rows:,}, "
            f"seed={self.seed}); records have {len(self.spec.features)} features, encoded in {self.encoding.dim} dimensions"
        )


_CACHE: dict[int, tuple[weakref.ref[Any], tuple[Any, ...], PrivacyInputs]] = {}


def _settings(ctx: EvalContext) -> tuple[int, int, int, int]:
    max_rows = check_int(ctx.options.max_rows, "max_rows", "EvalOptions", low=10)
    top_k = check_int(get_param(ctx, OWNER, "top_k_codes", 10), "top_k_codes", OWNER, low=0, high=1000)
    max_cat = check_int(get_param(ctx, OWNER, "max_categories", 30), "max_categories", OWNER, low=1, high=10_000)
    return int(ctx.options.seed), max_rows, top_k, max_cat


def privacy_inputs(ctx: EvalContext) -> PrivacyInputs:
    """The shared samples, records and encodings of ``ctx`` (computed once per context and settings)."""
    key = _settings(ctx)
    hit = _CACHE.get(id(ctx))
    if hit is not None and hit[0]() is ctx and hit[1] == key:
        return hit[2]
    inputs = compute_inputs(ctx.train, ctx.holdout, ctx.synthetic, seed=key[0], max_rows=key[1], top_k=key[2], max_categories=key[3])
    _CACHE[id(ctx)] = (weakref.ref(ctx), key, inputs)
    weakref.finalize(ctx, _CACHE.pop, id(ctx), None)
    return inputs


def compute_inputs(
    train: Dataset,
    holdout: Dataset | None,
    synthetic: Dataset,
    *,
    seed: int = 0,
    max_rows: int = 20_000,
    top_k: int = 10,
    max_categories: int = 30,
) -> PrivacyInputs:
    """Sample, build and encode records of the three datasets (see the module docstring)."""
    spec = fit_record_spec(train, top_k=top_k)
    datasets = {"train": train, "holdout": holdout, "synthetic": synthetic}
    records: dict[str, Records | None] = {}
    totals: dict[str, int] = {}
    for name, ds in datasets.items():
        if ds is None:
            records[name] = None
            continue
        keys = patient_keys(ds)
        totals[name] = int(keys.size)
        if keys.size == 0:
            raise EmptyInputError(f"the {name} data has no patients")
        records[name] = build_records(ds, spec, sample_keys(keys, max_rows, rng_for(seed, STREAMS[name])))
    train_rec, syn_rec, hold_rec = records["train"], records["synthetic"], records["holdout"]
    assert train_rec is not None and syn_rec is not None
    encoding = fit_encoding(train_rec, max_categories=max_categories)
    return PrivacyInputs(
        spec=spec,
        encoding=encoding,
        train=train_rec,
        holdout=hold_rec,
        synthetic=syn_rec,
        x_train=encoding.transform(train_rec),
        x_holdout=None if hold_rec is None else encoding.transform(hold_rec),
        x_synthetic=encoding.transform(syn_rec),
        n_total=totals,
        seed=seed,
        max_rows=max_rows,
    )
