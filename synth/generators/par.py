"""Per-patient event sequences with SDV's PARSynthesizer, inside the hierarchical generator.

The event table (the first child of the patient root with a datetime ``order_by``: claims, encounters)
is modelled by PAR as one sequence per patient, ordered by that date and conditioned on a few
categorical patient attributes; PAR draws the sequence length and the dates as increasing steps, so
each patient's events stay in order. Every other table uses the hierarchical generator's engine.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data_schemas.model import Schema
from synth.errors import GeneratorError
from synth.generators.base import Progress, TrainingData
from synth.generators.engines import _quiet, _seed_torch
from synth.generators.hierarchical import EPOCH, HierarchicalGenerator, Node, _days
from synth.generators.registry import register

MAX_PAR_CONTEXT = 3


def sequence_table(schema: Schema) -> str | None:
    """The event table PAR models: a child of the patient table ordered by a date."""
    for name in schema.topological_order():
        table = schema.tables[name]
        link = schema.parent_of(name)
        if (
            link is not None
            and link[1] == schema.patient.table
            and table.order_by
            and table.columns[table.order_by].type == "datetime"
        ):
            return name
    return None


@register
class PARGenerator(HierarchicalGenerator):
    """Hierarchical generator whose event table is an SDV PAR sequence model."""

    name: ClassVar[str] = "par"
    family: ClassVar[str] = "sdv-sequential"
    description: ClassVar[str] = "SDV PAR for each patient's event sequence (dates in order), hierarchical for the rest"

    def __init__(self, *, epochs: int = 20, engine: str = "gaussian_copula", max_rows_per_table: int | None = None) -> None:
        if not isinstance(epochs, int) or epochs < 1:
            raise GeneratorError(f"The 'epochs' parameter of par must be an int >= 1; got {epochs!r} instead.")
        super().__init__(engine=engine, max_rows_per_table=max_rows_per_table)
        self.epochs = epochs
        self.sequence_: str | None = None
        self.par_: Any = None
        self.par_context_: list[str] = []

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "epochs": self.epochs}

    def _fit(self, data: TrainingData, progress: Progress) -> None:
        schema = data.schema
        self.sequence_ = sequence_table(schema)
        if self.sequence_ is None or schema.patient_table.primary_key != [schema.patient.column]:
            raise GeneratorError(
                f"par needs an event table ordered by a date under a one-row-per-patient table; schema {schema.name} has none"
            )
        super()._fit(data, progress)
        progress(f"fitting SDV PAR on {self.sequence_} sequences")
        self._fit_par(schema, data.frames)

    def _fit_par(self, schema: Schema, frames: dict[str, pd.DataFrame]) -> None:
        from sdv.metadata import Metadata
        from sdv.sequential import PARSynthesizer

        node = self.nodes_[self.sequence_]  # type: ignore[index]
        root = self.nodes_[self.root_]
        table = schema.tables[node.name]
        order_by = table.order_by
        assert order_by is not None and node.model is not None
        events = frames[node.name]
        encoded, specs = self._encode(schema, node, frames, self._anchors(schema, frames))
        encoded[order_by] = pd.to_datetime(events[order_by]).to_numpy()
        specs[order_by] = {"sdtype": "datetime"}
        for child in node.children:
            counts = frames[child].groupby(self.nodes_[child].fk).size()
            encoded[f"__n_{child}"] = events[node.key].map(counts).fillna(0).to_numpy(dtype="float64")
            specs[f"__n_{child}"] = {"sdtype": "numerical", "decimal_places": 0}
        root_frame, root_specs = self._encode(schema, root, frames, self._anchors(schema, frames))
        self.par_context_ = [
            c for c in root_frame.columns
            if root_specs[c]["sdtype"] == "categorical" and root_frame[c].nunique() <= 12
        ][:MAX_PAR_CONTEXT]
        context = root_frame[self.par_context_].set_axis(frames[self.root_][schema.patient.column].to_numpy())
        ctx = context.reindex(events[node.fk].to_numpy()).reset_index(drop=True)
        encoded = pd.concat([encoded.reset_index(drop=True), ctx], axis=1)
        encoded["__seq"] = events[node.fk].to_numpy()
        columns = {c: specs.get(c) or root_specs[c] for c in encoded.columns if c != "__seq"}
        columns["__seq"] = {"sdtype": "id"}
        metadata = Metadata.load_from_dict(
            {
                "tables": {"t": {"columns": columns, "sequence_key": "__seq", "sequence_index": order_by}},
                "METADATA_SPEC_VERSION": "V2",
            }
        )
        par = PARSynthesizer(metadata, context_columns=self.par_context_, epochs=self.epochs, cuda=False, verbose=False)
        _seed_torch(0)
        with _quiet():
            par.fit({"t": encoded.sort_values(["__seq", order_by], kind="stable")})
        self.par_ = par
        node.anchored = False

    def _sample_node(self, node: Node, parent_rows: pd.DataFrame, rng: np.random.Generator, seed: int) -> pd.DataFrame | None:
        if node.name != self.sequence_:
            return None
        schema = self.schema_
        assert schema is not None
        order_by = schema.tables[node.name].order_by
        context = parent_rows[self.par_context_].copy()
        context["__seq"] = np.arange(len(parent_rows))
        _seed_torch(seed)  # PAR draws sequences from torch; its context model has its own seeded state
        context_model = getattr(self.par_, "_context_synthesizer", None)
        if context_model is not None:
            context_model.reset_sampling()
            context_model._set_random_state(int(seed) % (2**32 - 1))
        with _quiet():
            rows = self.par_.sample_sequential_columns(context_columns=context)
        if isinstance(rows, dict):
            rows = next(iter(rows.values()))
        rows = rows.reset_index(drop=True)
        rows[order_by] = _days(rows[order_by])  # absolute days: this node is not anchored
        rows["__parent"] = rows.pop("__seq").astype(int).to_numpy()
        return rows.drop(columns=self.par_context_, errors="ignore")

    def _resample(self, table: str, frames: dict[str, pd.DataFrame], rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame | None:
        if table == self.sequence_:
            return None  # a PAR sequence is drawn whole: rows breaking rules are dropped, and counted
        return super()._resample(table, frames, rows, rng)


__all__ = ["PARGenerator", "sequence_table", "EPOCH"]
