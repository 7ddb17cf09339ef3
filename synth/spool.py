"""A synthetic cohort written to Parquet one validated batch at a time, so no step holds it whole in memory.

``Generator.sample_batches`` yields the cohort as validated batches whose keys do not overlap; here each
table's batches are appended to one ``<table>.parquet`` (the same files ``Dataset.write`` makes), the
reference tables from the first batch only (every batch carries them, as trained). A release stages its
files this way before it takes the store's write lock (``synth.release.Store.staging``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from data_schemas.model import Schema
from data_schemas.rules import quote
from synth.load import Dataset

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WrittenCohort:
    """A cohort's Parquet files in ``folder``, with its row counts and number of distinct patients."""

    folder: Path
    paths: dict[str, Path]
    rows: dict[str, int]
    n_patients: int


def write_batches(
    schema: Schema, batches: Iterable[Dataset], folder: Path, *, progress: Progress | None = None
) -> WrittenCohort:
    """Append every batch's tables to ``folder/<table>.parquet``; one batch in memory at a time.

    Patient keys of different batches never overlap (``Generator.sample_batches``), so the patients of the
    cohort are the sum of each batch's distinct patients.
    """
    say = progress or (lambda _m: None)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {t: folder / f"{t}.parquet" for t in schema.tables}
    rows = dict.fromkeys(schema.tables, 0)
    n_patients = 0
    with ExitStack() as stack:
        writers: dict[str, pq.ParquetWriter] = {}
        for i, batch in enumerate(batches):
            for table in schema.tables:
                if schema.tables[table].reference and i:
                    continue  # released once, from the first batch
                reader = batch.con.sql(f"SELECT * FROM {batch.sql_name(table)}").to_arrow_reader(1_000_000)
                if table not in writers:
                    writers[table] = stack.enter_context(pq.ParquetWriter(str(paths[table]), reader.schema))
                for record_batch in reader:
                    writers[table].write_batch(record_batch)
                    rows[table] += record_batch.num_rows
            n_patients += distinct_patients(batch)
            del batch  # written: not kept while the next batch is drawn
            if i:
                say(f"wrote batch {i + 1}: {n_patients:,} patients so far")
        if not writers:
            raise ValueError(f"no batches to write into {folder}")
    return WrittenCohort(folder, paths, rows, n_patients)


def write_cohort(
    schema: Schema, batches: Iterable[Dataset], output: Path, *, progress: Progress | None = None
) -> WrittenCohort:
    """``write_batches`` into ``output`` through a temporary folder beside it: a batch that fails validation
    leaves ``output`` as it was, not half written; once all are written each file replaces its old copy."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{output.name}-", dir=output.parent))
    try:
        written = write_batches(schema, batches, staging, progress=progress)
        output.mkdir(exist_ok=True)
        paths = {}
        for table, path in written.paths.items():
            paths[table] = output / path.name
            os.replace(path, paths[table])
        return WrittenCohort(output, paths, written.rows, written.n_patients)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def distinct_patients(dataset: Dataset) -> int:
    """Distinct patient keys in the patient table."""
    schema = dataset.schema
    return int(
        dataset.con.execute(
            f"SELECT count(DISTINCT {quote(schema.patient.column)}) FROM {dataset.sql_name(schema.patient.table)}"
        ).fetchall()[0][0]
    )
