"""What every metric receives: the schema and train / holdout / synthetic datasets in one DuckDB connection."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from data_schemas.model import Schema
from synth.errors import DataValidationError
from synth.load import Dataset, connect, read_dataset
from synth.validation import ValidationReport

SYNTHETIC_FINDINGS = frozenset(
    {"rule_violation", "orphan_key", "out_of_range", "unknown_category", "bad_code", "null_value", "duplicate_key"}
)
"""Problems of synthetic data that are fidelity findings (measured by the metrics), not load errors."""


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
    reports: dict[str, ValidationReport] = field(default_factory=dict)
    """Validation report of each namespace read by ``load_context`` (synthetic findings stay visible here)."""


def load_context(
    schema: Schema,
    train_dir: str | Path,
    synthetic_dir: str | Path,
    holdout_dir: str | Path | None = None,
    *,
    options: EvalOptions | None = None,
    strict_synthetic: bool = False,
    engine: str = "duckdb",
    say: Callable[[str], None] | None = None,
) -> EvalContext:
    """Read and validate the folders into one connection; raise DataValidationError on any problem.

    Rule violations, orphan keys and other value-level problems of the *synthetic* data
    (``SYNTHETIC_FINDINGS``) are what fidelity metrics measure (``fidelity.rule_violations``,
    ``fidelity.referential_integrity``...), so they do not stop the evaluation unless ``strict_synthetic``;
    structural problems (missing tables or columns, unreadable files, values that do not parse) always do.
    ``say`` hears each table read and checked.
    """
    from synth.engine import connection

    con = connect() if engine == "duckdb" else connection(engine)
    datasets: dict[str, Dataset] = {}
    reports: dict[str, ValidationReport] = {}
    for ns, folder in (("train", train_dir), ("synthetic", synthetic_dir), ("holdout", holdout_dir)):
        if folder is None:
            continue
        if ns == "synthetic":
            dataset, report = read_synthetic(schema, folder, con=con, strict=strict_synthetic, say=say)
        else:
            dataset, report = read_dataset(schema, folder, con=con, namespace=ns, progress=say)
            if not report.ok:
                raise DataValidationError(report)
        datasets[ns] = dataset
        reports[ns] = report
    return EvalContext(
        schema,
        con,
        datasets["train"],
        datasets["synthetic"],
        datasets.get("holdout"),
        options or EvalOptions(),
        reports,
    )


def read_synthetic(
    schema: Schema, folder: str | Path, *, con: duckdb.DuckDBPyConnection, strict: bool = False,
    say: Callable[[str], None] | None = None,
) -> tuple[Dataset, ValidationReport]:
    """Read synthetic data into namespace ``synthetic``; only structural problems (or any, if strict) stop it."""
    dataset, report = read_dataset(schema, folder, con=con, namespace="synthetic", progress=say)
    tolerated = frozenset() if strict else SYNTHETIC_FINDINGS
    if any(p.kind not in tolerated for p in report.problems):
        raise DataValidationError(report)
    return dataset, report
