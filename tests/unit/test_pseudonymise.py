"""No raw direct identifier survives pseudonymisation; joins and date intervals do."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_schemas.io import load_schema
from synth.errors import MissingSecretError
from synth.load import load_dataset, read_dataset
from synth.prepare import prepare
from synth.pseudonymise import date_offset, load_secret, pseudonym, pseudonymise

SCHEMA = load_schema("kr_claims")


def test_refuses_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHMED_SECRET", raising=False)
    with pytest.raises(MissingSecretError, match="--secret-file FILE or set SYNTHMED_SECRET"):
        load_secret(None)


def test_refuses_short_or_missing_secret_file(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("abc")
    short.chmod(0o600)
    with pytest.raises(MissingSecretError, match="3 bytes"):
        load_secret(short)
    with pytest.raises(MissingSecretError, match="absent.key"):
        load_secret(tmp_path / "absent.key")


def test_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    key.write_text("k" * 32)
    key.chmod(0o644)
    with pytest.raises(MissingSecretError, match="can be read by other users .*0644.*chmod 600"):
        load_secret(key)
    key.chmod(0o600)
    assert load_secret(key) == b"k" * 32


def test_refuses_the_store_key_as_pseudonymisation_key(tmp_path: Path) -> None:
    key = tmp_path / "store.key"
    key.write_text("a" * 64)
    key.chmod(0o600)
    with pytest.raises(MissingSecretError, match="store key"):
        load_secret(key)


def _raw_identifier_values(dataset) -> set[str]:
    values: set[str] = set()
    for table, col in SCHEMA.direct_identifiers():
        rows = dataset.con.execute(
            f'SELECT DISTINCT CAST("{col.name}" AS VARCHAR) FROM {dataset.sql_name(table)} WHERE "{col.name}" IS NOT NULL'
        ).fetchall()
        values |= {r[0] for r in rows}
    return values


def test_no_raw_identifier_survives_downstream(kr_dir: Path, tmp_path: Path, secret_env: bytes) -> None:
    dataset = load_dataset(SCHEMA, kr_dir)
    raw_values = _raw_identifier_values(dataset)
    assert len(raw_values) > 600  # ids, names, rrns, phones of 300 patients
    result = prepare(dataset, tmp_path / "prepared", secret=load_secret(None), seed=3)
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "prepared").rglob("*") if p.is_file())
    # every output file (pseudonymised data, train, holdout, split record) is free of every raw value
    leaked = [v for v in raw_values if v.encode() in blobs]
    assert leaked == []
    assert result.pseudonymisation.emptied == {"patients": ["name", "rrn", "phone"]}
    # the written folders still validate against the schema, joins intact
    for side in ("data", "train", "holdout"):
        _, report = read_dataset(SCHEMA, tmp_path / "prepared" / side)
        assert report.ok, report.render()


def test_pseudonyms_are_keyed_and_consistent(kr_dir: Path) -> None:
    dataset = load_dataset(SCHEMA, kr_dir)
    a, _ = pseudonymise(dataset, b"k" * 32, namespace="a")
    b, _ = pseudonymise(dataset, b"k" * 32, namespace="b")
    c, _ = pseudonymise(dataset, b"z" * 32, namespace="c")
    ids = lambda d: [r[0] for r in d.con.execute(f"SELECT patient_id FROM {d.sql_name('patients')} ORDER BY ALL").fetchall()]
    assert ids(a) == ids(b)
    assert set(ids(a)).isdisjoint(ids(c))
    orphans = a.con.execute(
        f"SELECT count(*) FROM {a.sql_name('claims')} WHERE patient_id NOT IN (SELECT patient_id FROM {a.sql_name('patients')})"
    ).fetchall()[0][0]
    assert orphans == 0


def test_date_shift_keeps_each_patients_intervals(kr_dir: Path) -> None:
    dataset = load_dataset(SCHEMA, kr_dir)
    shifted, report = pseudonymise(dataset, b"s" * 32, date_shift_days=30, namespace="shifted")
    assert "claims" in report.shifted and "visit_date" in report.shifted["claims"]
    gap = """SELECT sum(c.visit_date - p.eligibility_start), count(*) FILTER (WHERE c.visit_date <> o.visit_date)
             FROM {c} c JOIN {p} p USING (patient_id) JOIN {oc} o USING (claim_id)"""
    original = dataset.con.execute(
        f"SELECT sum(c.visit_date - p.eligibility_start) FROM {dataset.sql_name('claims')} c JOIN {dataset.sql_name('patients')} p USING (patient_id)"
    ).fetchall()[0][0]
    total, moved = shifted.con.execute(
        gap.format(c=shifted.sql_name("claims"), p=shifted.sql_name("patients"), oc=dataset.sql_name("claims"))
    ).fetchall()[0]
    assert total == original
    assert moved > 0


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=16, max_size=64), a=st.text(min_size=1), b=st.text(min_size=1), days=st.integers(1, 400))
def test_pseudonym_and_offset_properties(key: bytes, a: str, b: str, days: int) -> None:
    assert pseudonym(key, a) == pseudonym(key, a)
    assert len(pseudonym(key, a)) == 24
    if a != b:
        assert pseudonym(key, a) != pseudonym(key, b)
    assert -days <= date_offset(key, a, days) <= days
