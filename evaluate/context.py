"""What every metric receives: the schema and train / holdout / synthetic datasets in one DuckDB connection."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from data_schemas.model import Schema
from synth.errors import DataValidationError
from synth.load import Dataset, connect, read_dataset


@dataclass(frozen=True)
class EvalOptions:
    """Settings shared by all metrics; ``params`` carries per-metric options by metric name."""

    seed: int = 0
    target: str | None = None
    max_rows: int = 20_000
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, metric: str, key: str, default: Any) -> Any:
        return self.params.get(metric, {}).get(key, default)


@dataclass
class EvalContext:
    """Inputs of one evaluation. Datasets share ``con`` (namespaces train, holdout, synthetic)."""

    schema: Schema
    con: duckdb.DuckDBPyConnection
    train: Dataset
    synthetic: Dataset
    holdout: Dataset | None
    options: EvalOptions = field(default_factory=EvalOptions)


def load_context(
    schema: Schema,
    train_dir: str | Path,
    synthetic_dir: str | Path,
    holdout_dir: str | Path | None = None,
    *,
    options: EvalOptions | None = None,
) -> EvalContext:
    """Read and validate the folders into one connection; raise DataValidationError on any problem."""
    con = connect()
    datasets: dict[str, Dataset] = {}
    for ns, folder in (("train", train_dir), ("synthetic", synthetic_dir), ("holdout", holdout_dir)):
        if folder is None:
            continue
        dataset, report = read_dataset(schema, folder, con=con, namespace=ns)
        if not report.ok:
            raise DataValidationError(report)
        datasets[ns] = dataset
    return EvalContext(
        schema, con, datasets["train"], datasets["synthetic"], datasets.get("holdout"), options or EvalOptions()
    )
