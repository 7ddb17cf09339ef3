"""Per-patient event sequences with SDV's PARSynthesizer, inside the hierarchical generator.

One event table (claims, visits, encounters: a child of the patient table ordered by a date) is
modelled by PAR as one sequence per patient, with the date as PAR's sequence index and a few of the
patient's attributes (the hierarchical generator's parent context) as PAR context columns. PAR draws
each sequence's first date from its context model and every later date as a non-negative step from
the previous one, so a patient's events come out in date order, and the event's child counts
(``__n_<child>``) as sequence columns. Patients drawn with no events get no sequence. Every other
table, including the events' children, uses the hierarchical generator's engine; so does the repair of
an event that breaks a table rule (its date is kept, its other attributes redrawn), since a PAR
sequence is drawn whole. Secondary keys are filled by ``synth.generators.links`` as for ``hierarchical``.

Reference: Zhang, Patki, Veeramachaneni (2022), "Sequential Models in the Synthetic Data Vault"
(the PAR model).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data_schemas.model import Column, Schema
from synth.errors import GeneratorError
from synth.generators.base import Progress, TrainingData
from synth.generators.engines import _quiet, _seed_torch
from synth.generators.hierarchical import HierarchicalGenerator, Node
from synth.generators.progress import check_budget, watch_epochs
from synth.generators.registry import register


def sequence_candidates(schema: Schema) -> list[str]:
    """Tables PAR can model: children of a one-row-per-patient table, ordered by a date."""
    out = []
    for name in schema.topological_order():
        table = schema.tables[name]
        link = schema.parent_of(name)
        if (
            link is not None
            and link[1] == schema.patient.table
            and link[2] == schema.patient.column
            and table.order_by
            and table.columns[table.order_by].type == "datetime"
        ):
            out.append(name)
    return out


def sequence_table(schema: Schema) -> str | None:
    """The default event table: the candidate most other tables point at (visits over diagnoses), first on ties."""
    candidates = sequence_candidates(schema)
    if not candidates:
        return None

    def referrers(name: str) -> int:
        return sum(
            1
            for t in schema.tables.values()
            if t.name != name and any(c.foreign_key is not None and c.foreign_key[0] == name for c in t.foreign_keys)
        )

    return max(candidates, key=lambda name: (referrers(name), -candidates.index(name)))


@register
class PARGenerator(HierarchicalGenerator):
    """Hierarchical generator whose event table is an SDV PAR sequence model (see the module docstring)."""

    name: ClassVar[str] = "par"
    family: ClassVar[str] = "sdv-sequential"
    description: ClassVar[str] = "SDV PAR for each patient's event sequence (dates in order), hierarchical for the rest"

    def __init__(
        self,
        *,
        epochs: int = 20,
        sequence_table: str | None = None,
        engine: str = "gaussian_copula",
        engine_params: dict[str, Any] | None = None,
        max_rows_per_table: int | None = None,
        min_patients: int | None = None,
        max_time: float | None = None,
    ) -> None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise GeneratorError(f"The 'epochs' parameter of par must be an int >= 1; got {epochs!r} instead.")
        if sequence_table is not None and not isinstance(sequence_table, str):
            raise GeneratorError(f"The 'sequence_table' parameter of par must be a table name or None; got {sequence_table!r} instead.")
        super().__init__(engine=engine, engine_params=engine_params, max_rows_per_table=max_rows_per_table, min_patients=min_patients,
                         max_time=max_time)
        self.epochs = epochs
        self.sequence_table = sequence_table
        self.sequence_: str | None = None
        self.par_: Any = None
        self.par_context_: list[str] = []

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "epochs": self.epochs, "sequence_table": self.sequence_table}

    # -- fit -------------------------------------------------------------------------------------
    def _fit(self, data: TrainingData, progress: Progress) -> None:
        schema = data.schema
        candidates = sequence_candidates(schema)
        if schema.patient_table.primary_key != [schema.patient.column] or not candidates:
            raise GeneratorError(
                f"par needs a table ordered by a date under a one-row-per-patient table; schema {schema.name} has none"
            )
        if self.sequence_table is not None and self.sequence_table not in candidates:
            raise GeneratorError(
                f"The 'sequence_table' parameter of par must be one of {', '.join(candidates)}; got {self.sequence_table!r} instead."
            )
        self.sequence_ = self.sequence_table or sequence_table(schema)
        super()._fit(data, progress)

    def _attributes(self, schema: Schema, node: Node) -> list[Column]:
        cols = super()._attributes(schema, node)
        if node.name != self.sequence_:
            return cols
        order_by = schema.tables[node.name].order_by
        return sorted(cols, key=lambda c: c.name != order_by)  # the sequence index is the first date

    def _fit_node(self, node: Node, encoded: pd.DataFrame, specs: dict[str, dict[str, Any]], frame: pd.DataFrame, rng: np.random.Generator) -> None:
        # every node gets the engine; the event table's engine only repairs rows that break a rule
        super()._fit_node(node, encoded, specs, frame, rng)
        if node.name != self.sequence_:
            return
        from sdv.metadata import Metadata
        from sdv.sequential import PARSynthesizer

        schema = self.schema_
        assert schema is not None and node.fk is not None
        order_by = schema.tables[node.name].order_by
        assert order_by is not None
        data = encoded.reset_index(drop=True)
        data["__seq"] = frame[node.fk].to_numpy()
        # context: the parent attributes the hierarchical generator picked, where training has no gaps
        self.par_context_ = [f"__ctx_{c}" for c in node.context if data[f"__ctx_{c}"].notna().all()]
        data = data.drop(columns=[f"__ctx_{c}" for c in node.context if f"__ctx_{c}" not in self.par_context_])
        data = data[data[order_by].notna()]
        if self.max_rows_per_table and len(data) > self.max_rows_per_table:  # whole sequences, never parts
            sizes = data.groupby("__seq").size()
            shuffled = sizes.iloc[rng.permutation(len(sizes))]
            keep = shuffled.index[np.cumsum(shuffled.to_numpy()) <= self.max_rows_per_table]
            data = data[data["__seq"].isin(set(keep))]
        columns = {c: dict(specs[c]) for c in data.columns if c != "__seq"}
        columns["__seq"] = {"sdtype": "id"}
        metadata = Metadata.load_from_dict(
            {
                "tables": {"events": {"columns": columns, "sequence_key": "__seq", "sequence_index": order_by}},
                "METADATA_SPEC_VERSION": "V2",
            }
        )
        par = PARSynthesizer(metadata, context_columns=self.par_context_, epochs=self.epochs, cuda=False, verbose=True)
        _seed_torch(0)
        progress, deadline, state = self._watch or ((lambda _m: None), None, {})
        check_budget(f"par ({self.epochs} epochs)", len(data) * self.epochs, self.max_time)
        with _quiet(), watch_epochs(f"par on {node.name}", progress, deadline, state):  # epochs, loss, ETA; stops at max_time
            par.fit({"events": data.sort_values(["__seq", order_by], kind="stable").reset_index(drop=True)})
        self.par_ = par

    # -- sample ----------------------------------------------------------------------------------
    def _sample_node(self, node: Node, parent_rows: pd.DataFrame, rng: np.random.Generator, seed: int) -> pd.DataFrame | None:
        if node.name != self.sequence_:
            return None
        counts = pd.to_numeric(parent_rows.get(f"__n_{node.name}", 1), errors="coerce")
        counts = pd.Series(counts, index=parent_rows.index) if np.isscalar(counts) else counts
        parents = np.flatnonzero(counts.fillna(0).round().to_numpy() >= 1)  # drawn with no events: no sequence
        columns = [*node.attributes, *(f"__n_{c}" for c in node.children)]
        if len(parents) == 0:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).assign(__parent=np.array([], dtype=int))
        _seed_torch(seed)  # PAR draws sequences from torch; its context model has its own seeded state
        context_model = self.par_._context_synthesizer
        context_model.reset_sampling()
        context_model._set_random_state(int(seed) % (2**32 - 1))
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):  # SDV draws a progress bar per condition
            if self.par_context_:
                context = pd.DataFrame(
                    {c: parent_rows[c.removeprefix("__ctx_")].to_numpy()[parents] for c in self.par_context_}
                )
                context["__seq"] = parents
                rows = self.par_.sample_sequential_columns(context_columns=context)
            else:
                rows = self.par_.sample_sequences(len(parents))
        if isinstance(rows, dict):  # SDV 2 returns {table name: frame}
            rows = next(iter(rows.values()))
        rows = rows.reset_index(drop=True)
        seq = pd.to_numeric(rows.pop("__seq"), errors="coerce").to_numpy()
        if not self.par_context_:
            seq = parents[seq.astype(int)]  # sample_sequences numbers its sequences 0..k-1
        rows["__parent"] = seq.astype(int)
        return rows.drop(columns=self.par_context_, errors="ignore")

    def _resample(self, table: str, frames: dict[str, pd.DataFrame], rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame | None:
        fresh = super()._resample(table, frames, rows, rng)
        if table == self.sequence_ and fresh is not None:
            # a PAR sequence is drawn whole: a row breaking a rule keeps its date (so the order holds) and
            # gets its other attributes from the engine; rows still breaking one are dropped, and counted
            order_by = self.schema_.tables[table].order_by  # type: ignore[union-attr]
            fresh = fresh.drop(columns=[c for c in self.nodes_[table].dates if c == order_by])
        return fresh


__all__ = ["PARGenerator", "sequence_candidates", "sequence_table"]
