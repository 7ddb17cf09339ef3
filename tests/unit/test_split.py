"""The patient split: deterministic, by patient, order-independent, recorded without keys."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_schemas.io import load_schema, parse_schema
from synth.errors import SplitError
from synth.load import frames_to_dataset, load_dataset
from synth.split import split_patients, write_split_hashes

SCHEMA = load_schema("kr_claims")


def _patient_sets(dataset) -> tuple[set[str], set[str]]:
    train, holdout, _ = split_patients(dataset, seed=11)
    keys = lambda d, t: {r[0] for r in d.con.execute(f"SELECT DISTINCT patient_id FROM {d.sql_name(t)}").fetchall()}
    return keys(train, "patients"), keys(holdout, "patients")


def test_all_rows_of_a_patient_on_one_side(kr_dir: Path) -> None:
    dataset = load_dataset(SCHEMA, kr_dir)
    train, holdout, record = split_patients(dataset, seed=1)
    for table in SCHEMA.tables:
        assert train.num_rows(table) + holdout.num_rows(table) == dataset.num_rows(table)
    # claim details reach the patient through claims: no patient appears on both sides
    sql = """SELECT DISTINCT c.patient_id FROM {d} x JOIN {c} c USING (claim_id)"""
    tr = {r[0] for r in train.con.execute(sql.format(d=train.sql_name("claim_details"), c=train.sql_name("claims"))).fetchall()}
    ho = {r[0] for r in holdout.con.execute(sql.format(d=holdout.sql_name("claim_details"), c=holdout.sql_name("claims"))).fetchall()}
    assert tr and ho and tr.isdisjoint(ho)
    assert record.n_train + record.n_holdout == 300
    assert 0.1 < record.n_holdout / 300 < 0.3


def test_deterministic_and_seeded(kr_dir: Path) -> None:
    a = load_dataset(SCHEMA, kr_dir)
    b = load_dataset(SCHEMA, kr_dir)
    _, _, ra = split_patients(a, seed=5)
    _, _, rb = split_patients(b, seed=5)
    _, _, rc = split_patients(b, seed=6)
    assert ra == rb
    assert ra.holdout_fingerprint != rc.holdout_fingerprint


def test_row_order_does_not_matter(kr_frames: dict) -> None:
    shuffled = {name: t.take(pa.array(list(range(t.num_rows))[::-1])) for name, t in kr_frames.items()}
    a, _ = frames_to_dataset(SCHEMA, kr_frames)
    b, _ = frames_to_dataset(SCHEMA, shuffled)
    assert split_patients(a, seed=2)[2] == split_patients(b, seed=2)[2]


def test_record_holds_no_keys(kr_dir: Path, tmp_path: Path) -> None:
    dataset = load_dataset(SCHEMA, kr_dir)
    _, _, record = split_patients(dataset, seed=1)
    write_split_hashes(dataset, tmp_path / "keys.parquet", secret=b"k" * 32)
    keys = [r[0] for r in dataset.con.execute(f"SELECT patient_id FROM {dataset.sql_name('patients')}").fetchall()]
    text = record.to_json() + (tmp_path / "keys.parquet").read_bytes().decode("latin-1")
    assert not any(k in text for k in keys)
    # keyed, not plain sha256: hashing guessed ids finds nothing
    stored = set(pq.read_table(tmp_path / "keys.parquet").column("key_hash").to_pylist())
    assert len(stored) == len(set(keys))
    assert not stored & {hashlib.sha256(str(k).encode()).hexdigest() for k in keys}
    assert json.loads(record.to_json())["n_train"] == record.n_train


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_fraction(kr_dir: Path, fraction: float) -> None:
    with pytest.raises(SplitError, match="holdout_fraction"):
        split_patients(load_dataset(SCHEMA, kr_dir), holdout_fraction=fraction)


MINI = parse_schema(
    """
name: mini
patient: {table: p, column: id}
tables:
  p: {primary_key: id, columns: {id: id}}
  e: {columns: {pid: {type: id, references: p.id}, x: numerical}}
"""
)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 200), events=st.integers(0, 5), seed=st.integers(0, 2**31))
def test_split_partitions_patients(n: int, events: int, seed: int) -> None:
    ids = [f"id{i}" for i in range(n)]
    frames = {
        "p": pa.table({"id": ids}),
        "e": pa.table({"pid": [i for i in ids for _ in range(events)], "x": [1.0] * (n * events)}),
    }
    dataset, report = frames_to_dataset(MINI, frames)
    assert report.ok
    try:
        train, holdout, record = split_patients(dataset, seed=seed, holdout_fraction=0.5)
    except SplitError:
        return  # all patients fell on one side: reported, not silently accepted
    assert record.n_train + record.n_holdout == n
    assert train.num_rows("e") + holdout.num_rows("e") == n * events
    assert train.num_rows("e") == record.n_train * events
