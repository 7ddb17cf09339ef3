"""SDV's HMASynthesizer, offered directly where a schema is within its limits (<= 5 tables, depth <= 2
levels, single-column keys). Anything larger needs ``hierarchical``."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data_schemas.model import Schema
from data_schemas.sdv_metadata import to_sdv_dict
from synth.errors import GeneratorError
from synth.generators.base import Generator, Progress, TrainingData, _id_domains
from synth.generators.engines import _quiet
from synth.generators.registry import register

MAX_TABLES = 5
MAX_DEPTH = 2


def hma_limits_problem(schema: Schema) -> str | None:
    """Why HMA cannot model this schema, or None when it can."""
    tables = [t for t in schema.tables.values() if not t.reference]
    if len(tables) > MAX_TABLES:
        return f"{len(tables)} tables (HMA handles at most {MAX_TABLES})"
    depth = 1 + max((len(schema.path_to_patient(t.name)) for t in tables), default=0)  # levels, as SDV counts
    if depth > MAX_DEPTH:
        return f"relationship depth {depth} (HMA handles at most {MAX_DEPTH} levels: a root and its children)"
    if schema.patient_table.primary_key != [schema.patient.column]:
        return f"the patient table {schema.patient.table} has several rows per patient (key {schema.patient_table.primary_key})"
    for t in tables:
        link = schema.parent_of(t.name)
        if link is not None and schema.tables[link[1]].primary_key != [link[2]]:
            return f"table {t.name} refers to {link[1]}.{link[2]}, which is not that table's single-column primary key"
    return None


@register
class HMAGenerator(Generator):
    """SDV HMASynthesizer on the whole schema (small schemas only)."""

    name: ClassVar[str] = "hma"
    family: ClassVar[str] = "sdv-multi-table"
    description: ClassVar[str] = "SDV HMA on the whole schema (only within HMA's limits: <= 5 tables, depth <= 2)"

    def __init__(self, *, default_distribution: str = "truncnorm", min_patients: int | None = None) -> None:
        super().__init__(min_patients=min_patients)
        self.default_distribution = default_distribution
        self.synthesizer_: Any = None

    def get_params(self) -> dict[str, Any]:
        return {"default_distribution": self.default_distribution, **self._rare_params()}

    def _fit(self, data: TrainingData, progress: Progress) -> None:
        from sdv.metadata import Metadata
        from sdv.multi_table import HMASynthesizer

        schema = data.schema
        problem = hma_limits_problem(schema)
        if problem:
            raise GeneratorError(f"hma cannot model schema {schema.name}: {problem}; use the 'hierarchical' generator")
        spec = to_sdv_dict(schema)
        for table in spec["tables"].values():  # surrogate keys are integers; dates are pandas datetimes
            for col in table["columns"].values():
                col.pop("datetime_format", None)
                col.pop("range_values", None)
        metadata = Metadata.load_from_dict(spec)
        synthesizer = HMASynthesizer(metadata, verbose=False)
        for table in spec["tables"]:
            synthesizer.set_table_parameters(table, {"default_distribution": self.default_distribution})
        frames = {t: data.frames[t] for t in spec["tables"]}
        progress("fitting SDV HMA")
        with _quiet():
            synthesizer.fit(frames)
        self.synthesizer_ = synthesizer

    def _sample(self, n_patients: int, rng: np.random.Generator, seed: int) -> dict[str, pd.DataFrame]:
        schema = self.schema_
        assert schema is not None
        synthesizer = self.synthesizer_
        synthesizer.reset_sampling()
        synthesizer._numpy_seed = int(seed) % (2**32 - 1)  # HMA's own seeded numpy state
        for i, table_synth in enumerate(synthesizer._table_synthesizers.values()):
            table_synth._set_random_state((int(seed) + i) % (2**32 - 1))
        with _quiet():
            sampled = synthesizer.sample(num_rows=n_patients, main_table_name=schema.patient.table)
        # SDV's keys become our integer surrogates, one code space per key domain
        frames = {name: frame.reset_index(drop=True) for name, frame in sampled.items()}
        codes: dict[tuple[str, str], pd.Index] = {}
        for (table, column), domain in _id_domains(schema).items():
            if domain == (table, column) and table in frames:
                codes[domain] = pd.Index(pd.unique(frames[table][column]))
        for (table, column), domain in _id_domains(schema).items():
            if table in frames and column in frames[table]:
                if domain in codes:
                    frames[table][column] = codes[domain].get_indexer(frames[table][column])
                else:
                    frames[table][column] = np.arange(len(frames[table]))
        for name in schema.tables:
            frames.setdefault(name, pd.DataFrame(columns=list(schema.tables[name].columns)))
        return frames
