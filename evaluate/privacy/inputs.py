"""What the row-level privacy metrics share: the records of every patient and their encodings.

No leak may be diluted away by sampling (design.md, "Scale"): the records of *all* patients of
train, holdout and synthetic data are built and encoded, so every membership attack searches all
synthetic records and the DCR compares with all training and holdout patients. What may be sampled
is the *targets* of an attack (its queries), up to ``EvalOptions.max_rows`` per side, and each
metric says in its notes what it sampled. Records are held in a seeded random order (a permutation
of the sorted patient keys by a generator seeded by ``(seed, dataset)``), so they do not depend on
row order and any prefix is a random sample: targets are prefixes. The record spec and the distance
encoding are fitted on all training patients.

The inputs are computed once per evaluation context and settings, and kept in memory only while
the context lives (never written anywhere).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import cached_property
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
    """Records of every patient of the three datasets in seeded random order, and their encodings for distances.

    The encoding and the float32 matrices are computed on first use (the Anonymeter-style attacks work
    on the records alone and never pay for them) and kept with the inputs.
    """

    spec: RecordSpec
    train: Records
    holdout: Records | None
    synthetic: Records
    n_total: dict[str, int]
    seed: int
    max_rows: int
    max_categories: int = 30
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Other views of the same records, computed once by the metrics that share them (the attack frames)."""

    @cached_property
    def encoding(self) -> Encoding:
        return fit_encoding(self.train, max_categories=self.max_categories)

    @cached_property
    def x_train(self) -> np.ndarray:
        return self.encoding.transform(self.train)

    @cached_property
    def x_holdout(self) -> np.ndarray | None:
        return None if self.holdout is None else self.encoding.transform(self.holdout)

    @cached_property
    def x_synthetic(self) -> np.ndarray:
        return self.encoding.transform(self.synthetic)

    def sampling_note(self) -> str:
        parts = [f"{len(self.synthetic):,} synthetic", f"{len(self.train):,} train"]
        if self.holdout is not None:
            parts.append(f"{len(self.holdout):,} holdout")
        encoded = f", encoded in {self.encoding.dim} dimensions" if "encoding" in self.__dict__ else ""
        return (
            f"records of all patients ({', '.join(parts)}), nothing searched is sampled; targets are seeded samples "
            f"of at most max_rows={self.max_rows:,} per side (seed {self.seed}); records have {len(self.spec.features)} "
            f"features{encoded}"
        )

    def targets(self, side: str, n: int | None = None) -> int:
        """How many patients of ``side`` an attack may use as targets: at most ``max_rows`` (and ``n``)."""
        records = {"train": self.train, "holdout": self.holdout, "synthetic": self.synthetic}[side]
        size = 0 if records is None else len(records)
        return min(size, self.max_rows, size if n is None else n)


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
    """Build and encode the records of every patient of the three datasets (see the module docstring)."""
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
        records[name] = build_records(ds, spec, sample_keys(keys, keys.size, rng_for(seed, STREAMS[name])))
    train_rec, syn_rec, hold_rec = records["train"], records["synthetic"], records["holdout"]
    assert train_rec is not None and syn_rec is not None
    if len(train_rec) == 0:
        raise EmptyInputError("the training data has no patients to fit the record encoding on")
    return PrivacyInputs(spec=spec, train=train_rec, holdout=hold_rec, synthetic=syn_rec, n_total=totals, seed=seed,
                         max_rows=max_rows, max_categories=max_categories)
