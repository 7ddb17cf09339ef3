"""Mixed-type tables for the Anonymeter-style attacks, and how their risks become metric results.

The attacks of Anonymeter (Giomi et al., "A unified framework for quantifying privacy risk in
synthetic data", PoPETs 2023) work on one table. Here that table is the patient record: the patient
columns, the number of events per event table and, for sensitive code columns of event tables, the
patient's most frequent code (the ``attack_features`` of ``records.py``). Numbers stay numbers (dates
as days since 1970-01-01, NaN when missing); categories become integer codes shared by the three
tables (-1 when missing).

The original data is every training patient, the control data every holdout patient and the synthetic
data every synthetic patient (no sampling: attacks sample their targets and say so).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluate.privacy.inputs import PrivacyInputs
from evaluate.privacy.records import Feature
from evaluate.privacy.stats import PrivacyRisk
from evaluate.result import MetricResult, Skipped


@dataclass(frozen=True)
class MixedFrame:
    """Rows of numeric (float64, NaN = missing) and categorical (int64 codes, -1 = missing) columns."""

    numeric_names: tuple[str, ...]
    numeric: np.ndarray
    categorical_names: tuple[str, ...]
    categorical: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(max(self.numeric.shape[0], self.categorical.shape[0]))

    @property
    def names(self) -> tuple[str, ...]:
        return self.numeric_names + self.categorical_names

    def take(self, index: np.ndarray) -> MixedFrame:
        return MixedFrame(self.numeric_names, self.numeric[index], self.categorical_names, self.categorical[index])

    def select(self, names: Sequence[str]) -> MixedFrame:
        """The named columns (kept in this frame's order of kinds)."""
        num = [i for i, n in enumerate(self.numeric_names) if n in names]
        cat = [i for i, n in enumerate(self.categorical_names) if n in names]
        return MixedFrame(
            tuple(self.numeric_names[i] for i in num), self.numeric[:, num],
            tuple(self.categorical_names[i] for i in cat), self.categorical[:, cat],
        )

    def unique(self) -> MixedFrame:
        """Distinct rows, first occurrences in their original order (as Anonymeter's ``unique``)."""
        if self.n_rows == 0:
            return self
        numeric = np.ascontiguousarray(self.numeric, dtype=np.float64).view(np.int64)
        joined = np.concatenate([numeric, self.categorical], axis=1)
        joined = np.ascontiguousarray(joined)
        rows = joined.view(np.dtype((np.void, joined.dtype.itemsize * joined.shape[1]))).ravel()
        _, first = np.unique(rows, return_index=True)
        return self.take(np.sort(first))


def mixed_frames(tables: Sequence[Mapping[str, np.ndarray]], numeric: Sequence[str], categorical: Sequence[str]) -> list[MixedFrame]:
    """Frames of the given columns of each table, categories coded jointly over all tables (codes in sorted order)."""
    import pandas as pd  # lazily, as records.py

    sizes = [len(next(iter(t.values()))) if t else 0 for t in tables]
    nums = [
        np.column_stack([np.asarray(t[c], dtype=np.float64) for c in numeric]) if numeric else np.empty((n, 0))
        for t, n in zip(tables, sizes)
    ]
    cats = [np.empty((n, len(categorical)), dtype=np.int64) for n in sizes]
    for j, c in enumerate(categorical):
        values = pd.Series(np.concatenate([np.asarray(t[c], dtype=object) for t in tables]) if tables else [], dtype=object)
        missing = values.isna().to_numpy()
        codes = np.full(values.size, -1, dtype=np.int64)
        if (~missing).any():
            codes[~missing] = pd.factorize(values[~missing].astype(str), sort=True)[0]
        pos = 0
        for i, n in enumerate(sizes):
            cats[i][:, j] = codes[pos : pos + n]
            pos += n
    return [MixedFrame(tuple(numeric), nums[i], tuple(categorical), cats[i]) for i in range(len(tables))]


def attack_frames(inputs: PrivacyInputs, columns: Sequence[str] | None = None) -> tuple[MixedFrame, MixedFrame, MixedFrame]:
    """(original = train, control = holdout, synthetic) records over the attack features, built once per inputs."""
    feats = attack_features(inputs, columns)
    assert inputs.holdout is not None
    key = "attack_frames:" + "|".join(f.name for f in feats)
    if key not in inputs.derived:
        numeric = [f.name for f in feats if f.kind == "numeric"]
        categorical = [f.name for f in feats if f.kind == "categorical"]
        inputs.derived[key] = tuple(mixed_frames(
            [inputs.train.columns, inputs.holdout.columns, inputs.synthetic.columns], numeric, categorical
        ))
    return inputs.derived[key]  # type: ignore[no-any-return]


def attack_features(inputs: PrivacyInputs, columns: Sequence[str] | None = None) -> list[Feature]:
    feats = inputs.spec.attack_features
    if columns is not None:
        feats = [f for f in feats if f.name in columns]
    return feats


def empty_columns(inputs: PrivacyInputs, names: Sequence[str]) -> list[str]:
    """Columns with no value at all in the training sample (useless to an attacker)."""
    out = []
    for n in names:
        col = inputs.train.columns[n]
        if col.dtype == object:
            if all(v is None for v in col):
                out.append(n)
        elif np.isnan(col).all():
            out.append(n)
    return out


def risk_result(
    name: str,
    attack: str,
    risk: PrivacyRisk,
    *,
    seed: int,
    notes: Sequence[str] = (),
    details: Sequence[Mapping[str, Any]] = (),
    skipped: Sequence[Skipped] = (),
) -> MetricResult:
    """A metric result from an Anonymeter-style risk: residual risk, its CI, and the three rates in details."""
    warning = risk.warning(attack)
    row = {**risk.rates_row(), "attack": attack}
    return MetricResult(
        name=name,
        family="privacy",
        value=risk.value,
        goal="minimize",
        range=(0.0, 1.0),
        ci=risk.ci,
        n=risk.attack.n_total,
        details=(row, *[dict(d) for d in details]),
        skipped=tuple(skipped),
        notes=(*notes, *([f"warning: {warning}"] if warning else [])),
        seed=seed,
    )


def range_scaled(frames: Sequence[MixedFrame]) -> list[np.ndarray]:
    """Numeric columns divided by their range over all ``frames`` (so differences are at most 1), as Anonymeter."""
    stacked = np.concatenate([f.numeric for f in frames]) if frames else np.empty((0, 0))
    present = ~np.isnan(stacked)
    lo = np.where(present, stacked, np.inf).min(axis=0, initial=np.inf)
    hi = np.where(present, stacked, -np.inf).max(axis=0, initial=-np.inf)
    with np.errstate(invalid="ignore"):
        span = np.where(np.isfinite(hi - lo) & (hi - lo > 0), hi - lo, 1.0)
    return [f.numeric / span for f in frames]
