"""Helpers of the privacy tests (no tests here): split simulated populations, small generators for the shadow attack."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.model import Schema
from data_schemas.rules import with_patient_key_sql
from synth.load import Dataset, frames_to_dataset


def part(frames: dict, lo: int, hi: int) -> dict:
    """Patients lo..hi of a kr_claims population with all their rows (``synth.demo_population.patient_slice``)."""
    from synth.demo_population import patient_slice

    return patient_slice(frames, lo, hi)


def _frames_with_keys(train: Dataset) -> dict[str, pd.DataFrame]:
    schema = train.schema
    rel = train.relations()
    out = {}
    for name in schema.tables:
        if schema.tables[name].reference:
            continue
        sql = with_patient_key_sql(schema, name, rel)
        out[name] = train.con.sql(f"SELECT * FROM ({sql}) ORDER BY ALL").df()
    return out


class BootstrapCopyGenerator:
    """Copies random training patients (with replacement), all their rows, under fresh ids: must be caught."""

    def fit(self, train: Dataset) -> BootstrapCopyGenerator:
        self.schema_: Schema = train.schema
        self.frames_ = _frames_with_keys(train)
        self.keys_ = np.sort(self.frames_[train.schema.patient.table]["__patient_key"].astype(str).unique())
        return self

    def sample(self, n_patients: int, *, seed: int) -> Dataset:
        rng = np.random.default_rng(seed)
        return self._emit(rng.choice(self.keys_, size=n_patients, replace=True))

    def _emit(self, chosen: np.ndarray) -> Dataset:
        n_patients = chosen.size
        instances = pd.DataFrame({"__inst": np.arange(n_patients), "__patient_key": chosen})
        frames: dict[str, Any] = {}
        for name, frame in self.frames_.items():
            rows = frame.assign(__patient_key=frame["__patient_key"].astype(str)).merge(instances, on="__patient_key")
            for col in self.schema_.tables[name].columns.values():
                if col.type == "id":
                    rows[col.name] = "s" + rows["__inst"].astype(str) + "_" + rows[col.name].astype(str)
            frames[name] = rows.drop(columns=["__inst", "__patient_key"])
        dataset, _ = frames_to_dataset(self.schema_, frames, source="bootstrap copy")
        return dataset


class MarginalGenerator:
    """Every column from its own marginal, children per parent from the empirical counts: nothing of a patient kept."""

    def fit(self, train: Dataset) -> MarginalGenerator:
        self.schema_ = train.schema
        self.frames_ = {n: f.drop(columns="__patient_key") for n, f in _frames_with_keys(train).items()}
        self.counts_: dict[str, np.ndarray] = {}
        for name in self.frames_:
            link = self.schema_.parent_of(name)
            if link is not None:
                fk, parent, pcol = link
                per = self.frames_[name].groupby(fk.name).size()
                self.counts_[name] = self.frames_[parent][pcol].map(per).fillna(0).astype(int).to_numpy()
        return self

    def sample(self, n_patients: int, *, seed: int) -> Dataset:
        rng = np.random.default_rng(seed)
        schema = self.schema_
        out: dict[str, pd.DataFrame] = {}
        for name in schema.topological_order():
            if name not in self.frames_:
                continue
            src = self.frames_[name]
            table = schema.tables[name]
            if name == schema.patient.table:
                n = n_patients
                frame = {schema.patient.column: [f"m{i}" for i in range(n)]}
            else:
                fk, parent, pcol = schema.parent_of(name)  # type: ignore[misc]
                per = rng.choice(self.counts_[name], size=len(out[parent]))
                n = int(per.sum())
                frame = {fk.name: np.repeat(out[parent][pcol].to_numpy(), per)}
            for col in table.columns.values():
                if col.name in frame:
                    continue
                if col.type == "id":
                    frame[col.name] = [f"{name}{i}" for i in range(n)]
                else:
                    frame[col.name] = src[col.name].to_numpy()[rng.integers(0, len(src), size=n)] if len(src) else [None] * n
            out[name] = pd.DataFrame(frame)
        dataset, _ = frames_to_dataset(schema, out, source="marginals")
        return dataset


def load_parts(schema: Schema, frames: dict[str, pa.Table], parts: dict[str, tuple[int, int]], con: Any = None) -> dict[str, Dataset]:
    """Datasets (namespaces = keys of ``parts``) of patient ranges of one population, on one connection."""
    from synth.load import connect

    con = con or connect()
    out = {}
    for ns, (lo, hi) in parts.items():
        dataset, report = frames_to_dataset(schema, part(frames, lo, hi), con=con, namespace=ns)
        assert report.ok, report.render()
        out[ns] = dataset
    return out


def copy_namespace(source: Dataset, con: Any, namespace: str) -> Dataset:
    """The tables of ``source`` (any connection) copied into ``namespace`` of ``con``."""
    from data_schemas.rules import quote

    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    for table in source.schema.tables:
        arrow = source.con.sql(f"SELECT * FROM {source.sql_name(table)}").to_arrow_table()
        view = f"__copy_{namespace}_{table}"
        con.register(view, arrow)
        con.execute(f"CREATE OR REPLACE TABLE {quote(namespace)}.{quote(table)} AS SELECT * FROM {quote(view)}")
        con.unregister(view)
    return Dataset(source.schema, con, namespace, source=source.source)


class ExactCopyGenerator(BootstrapCopyGenerator):
    """Returns distinct training patients as they are (all of them when asked for as many): the ``copy`` baseline."""

    def sample(self, n_patients: int, *, seed: int) -> Dataset:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(self.keys_, size=n_patients, replace=n_patients > self.keys_.size)
        return self._emit(chosen)
