"""Compressed tables (synth.packed): what prepare holds of 100M claims fits near the budget, not on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

import pyarrow.parquet as pq

from data_schemas.io import load_schema
from synth import packed
from synth.demo_population import simulate
from synth.load import connect, read_dataset
from synth.pseudonymise import pseudonymise
from synth.split import split_patients


def _held(con) -> int:  # type: ignore[no-untyped-def]
    return con.execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'").fetchall()[0][0]


def test_create_holds_the_rows_compressed_under_the_same_name() -> None:
    """The name is a view over a table of the compressed catalog, whatever the name was before (a table, a view);
    the rows are the body's, in a fraction of an ordinary table's memory."""
    con = connect()
    rng = np.random.default_rng(0)
    con.register("src", pa.table({"id": [f"p{i:09d}" for i in range(200_000)],
                                  "code": rng.choice(["A01", "B02", "C03", "D04"], 200_000),
                                  "n": rng.integers(0, 50, 200_000)}))
    con.execute("CREATE SCHEMA ns")
    con.execute("CREATE TABLE ns.t AS SELECT 1 AS x")
    packed.create(con, "ns", "t", "SELECT * FROM src")
    first = _held(con)
    packed.create(con, "ns", "t", "SELECT * FROM src WHERE n < 25")  # replaces the view and its table
    assert con.execute("SELECT count(*) FROM ns.t").fetchall() == con.execute("SELECT count(*) FROM src WHERE n < 25").fetchall()
    assert con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'ns' AND table_catalog = current_database()").fetchall() == [("VIEW",)]
    assert con.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables()").fetchall() == [("__packed", "ns", "t")]
    before = _held(con)
    con.execute("CREATE TABLE plain AS SELECT * FROM src")
    assert 0 < first < (_held(con) - before) / 3


def test_prepared_tables_are_held_compressed(tmp_path: Path) -> None:
    """Pseudonymised, train and holdout tables (each a full copy of the data in prepare) are compressed tables."""
    for name, table in simulate(300, seed=1).items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
    schema = load_schema("kr_claims")
    dataset, report = read_dataset(schema, tmp_path)
    assert report.ok
    pseudo, _ = pseudonymise(dataset, b"k" * 32)
    train, holdout, _ = split_patients(pseudo)
    tables = set(dataset.con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                     "WHERE database_name = '__packed'").fetchall())
    assert {(ns, t) for ns in ("pseudonymised", "train", "holdout") for t in schema.tables} <= tables
    assert sum(train.row_counts().values()) + sum(holdout.row_counts().values()) == \
        sum(r for t, r in pseudo.row_counts().items() if not schema.tables[t].reference) + \
        2 * sum(r for t, r in pseudo.row_counts().items() if schema.tables[t].reference)
