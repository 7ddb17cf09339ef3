"""Calibration baselines that exist to test the evaluator (design.md): ``copy`` and ``independent``.

``copy`` returns training patients with all their rows (the worst case: every privacy attack must
flag it); ``independent`` draws every column from its own marginal and children counts from their
empirical distribution (no correlations, nothing of a record kept together).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from synth.generators.base import Generator, Progress, TrainingData, _id_domains
from synth.generators.registry import register


def _patient_codes(data: TrainingData) -> dict[str, np.ndarray]:
    """Patient surrogate key of every row of every patient-linked table."""
    schema, frames = data.schema, data.frames
    out: dict[str, np.ndarray] = {}
    for name in schema.topological_order():
        if schema.tables[name].reference:
            continue
        col = schema.patient_column_of(name)
        if col is not None:
            out[name] = frames[name][col].to_numpy()
            continue
        path = schema.path_to_patient(name)
        keys = frames[name][path[0][1]].to_numpy()
        for _child, _fk, parent, pcol in path[:-1]:
            nxt = schema.path_to_patient(parent)[0][1]
            lookup = pd.Series(frames[parent][nxt].to_numpy(), index=frames[parent][pcol].to_numpy())
            keys = lookup[~lookup.index.duplicated()].reindex(keys).to_numpy()
        out[name] = keys
    return out


@register
class CopyGenerator(Generator):
    """Returns training patients as they are (re-keyed): the worst case for privacy."""

    name: ClassVar[str] = "copy"
    family: ClassVar[str] = "baseline"
    unsafe: ClassVar[bool] = True
    description: ClassVar[str] = "returns training patients unchanged (worst case, for calibrating the evaluator)"

    def __init__(self, *, min_patients: int | None = None) -> None:
        super().__init__(min_patients=min_patients)
        self.frames_: dict[str, pd.DataFrame] = {}
        self.patients_: dict[str, np.ndarray] = {}

    def _fit(self, data: TrainingData, progress: Progress) -> None:
        progress("keeping the training patients")
        self.frames_ = {name: frame.copy() for name, frame in data.frames.items()}
        self.patients_ = _patient_codes(data)

    def _sample(self, n_patients: int, rng: np.random.Generator, seed: int) -> dict[str, pd.DataFrame]:
        schema = self.schema_
        assert schema is not None
        keys = np.unique(self.patients_[schema.patient.table])
        chosen = rng.choice(keys, size=n_patients, replace=n_patients > len(keys))
        instances = pd.DataFrame({"__instance": np.arange(n_patients), "__orig": chosen})
        domains = _id_domains(schema)
        out: dict[str, pd.DataFrame] = {}
        for name, frame in self.frames_.items():
            if schema.tables[name].reference:
                out[name] = frame.copy()
                continue
            rows = frame.assign(__orig=self.patients_[name]).merge(instances, on="__orig", how="inner", sort=False)
            rows = rows.sort_values(["__instance"], kind="stable").reset_index(drop=True)
            out[name] = rows
        # re-key every patient-side id domain per (instance, old key) so repeated patients stay distinct
        for (table, column), (dt, dc) in domains.items():
            if schema.tables[dt].reference or (table, column) != (dt, dc):
                continue
            owner = out[dt]
            pairs = owner[["__instance", dc]].drop_duplicates().reset_index(drop=True)
            pairs["__new"] = np.arange(len(pairs))
            for (t2, c2), dom in domains.items():
                if dom != (dt, dc) or c2 not in out[t2]:
                    continue
                mapped = out[t2][["__instance", c2]].merge(pairs, left_on=["__instance", c2], right_on=["__instance", dc], how="left")
                out[t2][c2] = mapped["__new"].to_numpy()
        return {name: frame.drop(columns=["__instance", "__orig"], errors="ignore") for name, frame in out.items()}


@register
class IndependentGenerator(Generator):
    """Every column from its own marginal; children per parent from the empirical count distribution."""

    name: ClassVar[str] = "independent"
    family: ClassVar[str] = "baseline"
    description: ClassVar[str] = "each column's marginal only, children counts from their distribution (no correlations)"
    links_keys: ClassVar[bool] = True  # secondary keys and reference tables as for hierarchical

    def __init__(self, *, min_patients: int | None = None) -> None:
        super().__init__(min_patients=min_patients)
        self.values_: dict[str, dict[str, np.ndarray]] = {}
        self.counts_: dict[str, np.ndarray] = {}
        self.rows_per_patient_: np.ndarray | None = None

    def _fit(self, data: TrainingData, progress: Progress) -> None:
        schema = data.schema
        progress("counting marginals")
        for name, frame in data.frames.items():
            table = schema.tables[name]
            self.values_[name] = {
                c.name: frame[c.name].to_numpy()
                for c in table.columns.values()
                if c.type != "id" and c.privacy != "direct_identifier"
            }
            link = schema.parent_of(name)
            if link is not None and not table.reference:
                fk, parent, pcol = link
                parent_keys = data.frames[parent][pcol].drop_duplicates()
                self.counts_[name] = parent_keys.map(frame.groupby(fk.name).size()).fillna(0).astype(int).to_numpy()
        ptable, pcol = schema.patient.table, schema.patient.column
        self.rows_per_patient_ = data.frames[ptable].groupby(pcol).size().to_numpy()

    def _sample(self, n_patients: int, rng: np.random.Generator, seed: int) -> dict[str, pd.DataFrame]:
        schema = self.schema_
        assert schema is not None and self.rows_per_patient_ is not None
        ptable, pcol = schema.patient.table, schema.patient.column
        out: dict[str, pd.DataFrame] = {}
        for name in schema.topological_order():
            table = schema.tables[name]
            if name == ptable:
                per = rng.choice(self.rows_per_patient_, size=n_patients)
                n = int(per.sum())
                frame: dict[str, Any] = {pcol: np.repeat(np.arange(n_patients), per)}
            elif table.reference:
                n = 0
                frame = {}
            else:
                fk, parent, parent_col = schema.parent_of(name)  # type: ignore[misc]
                parents = pd.unique(out[parent][parent_col])
                per = rng.choice(self.counts_[name], size=len(parents)) if len(self.counts_[name]) else np.zeros(len(parents), int)
                n = int(per.sum())
                frame = {fk.name: np.repeat(parents, per)}
            for col, values in self.values_[name].items():
                frame[col] = values[rng.integers(0, len(values), size=n)] if len(values) else np.full(n, None)
            for col in table.columns_of_type("id"):
                if col.name not in frame:
                    frame[col.name] = np.arange(n)
            out[name] = pd.DataFrame(frame)
        return out
