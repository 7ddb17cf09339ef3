"""Releases: written whole or not at all (failures injected at every step, also hard kills), verified by hash."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_schemas.io import load_schema
from synth.pipeline import release
from synth.errors import ReleaseError
from synth.release import FAIL_POINTS, InjectedFailure, Store, verify_release
from tests.conftest import SECRET

REPO = Path(__file__).resolve().parents[2]
SCHEMA = load_schema("kr_claims")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, kr_frames: dict) -> Path:
    """The small population prepared once for the module; tests only read it (each writes its own store)."""
    import pyarrow.parquet as pq

    from synth.load import load_dataset
    from synth.prepare import prepare

    root = tmp_path_factory.mktemp("release")
    raw = root / "kr"
    raw.mkdir()
    for name, table in kr_frames.items():
        pq.write_table(table, raw / f"{name}.parquet")
    out = root / "prepared"
    prepare(load_dataset(SCHEMA, raw), out, secret=SECRET.encode(), seed=0)
    return out


def _consistent(store: Store) -> None:
    """Every catalog row has a folder that verifies; after reconcile no folder lacks a row."""
    for row in store.catalog.releases():
        assert verify_release(store, row["release_id"]).ok
    with store.write_lock():
        store.reconcile()
    folders = {p.name for p in store.releases_dir.iterdir()} if store.releases_dir.exists() else set()
    assert folders == store.catalog.release_ids()
    assert not (store.staging_dir.exists() and list(store.staging_dir.iterdir()))  # no sample left staged


def _release(prepared: Path, store: Store, **kwargs):
    return release(SCHEMA, prepared, generator="independent", store=store, n_patients=30, seed=1, **kwargs)


@pytest.mark.parametrize("point", FAIL_POINTS)
def test_injected_failure_leaves_store_consistent(point: str, prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "store")
    first = _release(prepared, store)
    monkeypatch.setenv("SYNTHMED_FAIL_AT", point)
    with pytest.raises(InjectedFailure):
        _release(prepared, store)
    monkeypatch.delenv("SYNTHMED_FAIL_AT")
    ids = store.catalog.release_ids()
    # a failure after the commit has a complete, registered release; any earlier one has none
    assert len(ids) == (2 if point == "after_commit" else 1) and first.release_id in ids
    assert not [p for p in store.releases_dir.iterdir() if p.name.startswith(".tmp-")]
    _consistent(store)


@pytest.mark.parametrize("point", ["after_staging", "after_files", "before_rename", "after_rename"])
def test_hard_kill_leaves_store_consistent(point: str, prepared: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    env = {**os.environ, "SYNTHMED_FAIL_AT": f"{point}:kill", "SYNTHMED_STORE": str(store_dir)}
    cmd = [sys.executable, "-m", "synthmed", "release", "--schema", "kr_claims", "--data", str(prepared),
           "--generator", "independent", "--patients", "30", "--quiet"]
    killed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 97, killed.stderr
    store = Store(store_dir)
    assert store.catalog.release_ids() == set()  # nothing committed, whatever the folder state
    env.pop("SYNTHMED_FAIL_AT")
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(store.catalog.release_ids()) == 1
    _consistent(store)


def test_a_dead_writers_staging_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    dead = store.staging_dir / "kr_claims-dead"
    dead.mkdir(parents=True)
    (dead / "claims.parquet").write_bytes(b"half a file")
    (store.staging_dir / "kr_claims-dead.lock").touch()  # its writer died: nobody holds the lock
    with store.staging("kr_claims-live") as live:
        (live / "claims.parquet").write_bytes(b"being written")
        with store.write_lock():
            done = store.reconcile()
        assert done.removed == [".staging/kr_claims-dead"]
        assert not dead.exists() and (live / "claims.parquet").exists()  # the live release goes on
    assert list(store.staging_dir.iterdir()) == []  # and cleans up after itself
    with pytest.raises(ReleaseError, match="is not a release id"):
        with store.staging("../outside"):
            pass


def test_the_store_is_not_locked_while_a_release_samples(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sampling (minutes for a large cohort) happens before the write lock: another writer is not held up."""
    import fcntl

    from synth.generators.base import Generator

    store = Store(tmp_path / "store")
    store.root.mkdir(parents=True)
    free: list[bool] = []
    batches = Generator.sample_batches

    def watched(self, *a, **k):
        for batch in batches(self, *a, **k):
            with (store.root / ".write.lock").open("a") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    free.append(True)
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                except BlockingIOError:
                    free.append(False)
            yield batch

    monkeypatch.setattr(Generator, "sample_batches", watched)
    monkeypatch.setattr(Generator, "sample_batch_patients", 10)
    info = _release(prepared, store)
    assert free == [True, True, True]  # three batches of 10, the lock free at each
    assert info.manifest["rows"]["patients"] == info.manifest["n_patients"] == 30
    _consistent(store)


def test_verify_detects_modified_files(prepared: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    info = _release(prepared, store)
    assert verify_release(store, info.release_id).ok
    parquet = info.path / "claims.parquet"
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    problems = verify_release(store, info.release_id).problems
    assert problems and problems[0].startswith("claims.parquet was modified")

    other = _release(prepared, store)
    manifest = json.loads((other.path / "manifest.json").read_text())
    manifest["seed"] = 12345
    (other.path / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_release(store, other.release_id).problems
    assert any("manifest.json was modified" in p for p in problems)

    cli = subprocess.run([sys.executable, "-m", "synthmed", "releases", "verify", info.release_id, "--store", str(store.root)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "claims.parquet was modified" in cli.stderr and "Traceback" not in cli.stderr


def test_manifest_records_what_design_asks(prepared: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    info = _release(prepared, store)
    m = info.manifest
    assert m["release_id"] == info.release_id and m["seed"] == 1 and m["n_patients"] == 30
    assert m["schema"]["name"] == "kr_claims" and m["schema"]["hash"] == SCHEMA.fingerprint
    assert m["generator"]["name"] == "independent" and m["generator"]["epsilon"] is None
    assert {"sdv", "duckdb", "pandas"} <= set(m["library_versions"])
    # the split's parameters are public; its sizes and fingerprints are private (catalog release_sources only)
    assert m["source"] == {"split": {"seed": 0, "holdout_fraction": 0.2, "method": m["source"]["split"]["method"]}, "prepared": True}
    private = store.catalog.release_source(info.release_id)
    assert private is not None and len(private["source_fingerprint"]) == 64 and json.loads(private["split_json"])["n_train"] > 0
    assert "source_fingerprint" not in store.catalog.release(info.release_id)
    assert set(m["files"]) == {f"{t}.parquet" for t in SCHEMA.tables} | {"schema.yaml"}  # the schema travels with it
    # the release folder validates as it is
    check = subprocess.run([sys.executable, "-m", "synthmed", "validate", "--schema", "kr_claims", str(info.path)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout


def test_copy_release_needs_allow_unsafe(prepared: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    from synth.errors import GeneratorError

    with pytest.raises(GeneratorError, match="--allow-unsafe"):
        release(SCHEMA, prepared, generator="copy", store=store)
    assert store.catalog.release_ids() == set()
    info = release(SCHEMA, prepared, generator="copy", store=store, n_patients=10, allow_unsafe=True)
    assert info.manifest["generator"]["name"] == "copy"


def test_raw_folder_needs_secret_and_is_pseudonymised(kr_dir: Path, tmp_path: Path) -> None:
    from synth.errors import MissingSecretError

    store = Store(tmp_path / "store")
    with pytest.raises(MissingSecretError, match="patients.patient_id"):
        release(SCHEMA, kr_dir, generator="independent", store=store)
    info = release(SCHEMA, kr_dir, generator="independent", store=store, n_patients=20, secret=SECRET.encode())
    assert info.manifest["source"]["prepared"] is False


def test_release_cli_on_desynpuf(synpuf_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "SYNTHMED_SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-m", "synthmed", "release", "--schema", "cms_desynpuf", "--data", str(synpuf_dir),
         "--generator", "independent", "--patients", "200", "--store", str(store), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    release_id = result.stdout.split()[1].rstrip(":")
    listed = subprocess.run([sys.executable, "-m", "synthmed", "releases", "list", "--json", "--store", str(store)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    rows = json.loads(listed.stdout)
    assert [r["release_id"] for r in rows] == [release_id]
    shown = subprocess.run([sys.executable, "-m", "synthmed", "releases", "show", release_id, "--json", "--store", str(store)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert json.loads(shown.stdout)["manifest"]["schema"]["name"] == "cms_desynpuf"
    check = subprocess.run([sys.executable, "-m", "synthmed", "validate", "--schema", "cms_desynpuf", str(store / "releases" / release_id)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout


def test_gaussian_copula_cohort_on_desynpuf_validates(synpuf_dir: Path) -> None:
    from synth.generators import get_generator
    from synth.load import read_dataset
    from synth.split import split_patients

    schema = load_schema("cms_desynpuf")
    dataset, report = read_dataset(schema, synpuf_dir)
    assert report.ok
    train, _, record = split_patients(dataset, seed=0, holdout_fraction=0.9)  # ~1,000 training patients
    generator = get_generator("gaussian_copula").fit(train)
    cohort = generator.sample(150, seed=2)  # validated by the base class; checked again here
    counts = cohort.row_counts()
    assert counts["inpatient_claims"] > 0
    per_patient = counts["beneficiary_summary"] / 150
    assert 1.0 <= per_patient <= 3.0  # one summary row per year, up to three years
    years = cohort.con.execute(f"SELECT DISTINCT BENE_YEAR FROM {cohort.sql_name('beneficiary_summary')}").fetchall()
    assert {y[0] for y in years} <= {2008, 2009, 2010}


def test_gaussian_copula_cohort_on_synthea_validates(shared_datasets: Path) -> None:
    """All 18 Synthea tables: secondary keys (ENCOUNTER, CLAIMID, APPOINTMENTID) point at the same patient's rows,
    keys to the reference tables (providers, payers, organizations) resolve, and the cohort validates."""
    from synth.generators import get_generator
    from synth.load import read_dataset
    from synth.split import split_patients

    schema = load_schema("synthea")
    dataset, report = read_dataset(schema, shared_datasets / "synthea" / "sample_22p_2023")
    assert report.ok, report.render()
    train, _, _ = split_patients(dataset, seed=0)
    generator = get_generator("gaussian_copula", max_rows_per_table=3000).fit(train)
    cohort = generator.sample(10, seed=1)  # validated against the schema by the base class: zero problems
    rows, train_rows = cohort.row_counts(), train.row_counts()
    assert rows["patients"] == 10
    assert all(rows[t] > 0 for t in ("encounters", "conditions", "medications", "procedures", "observations", "claims",
                                     "claims_transactions")), rows
    assert all(rows[t] == train_rows[t] for t in ("organizations", "providers", "payers"))  # released as they are
    con = cohort.con
    for table, patient, key, target in (
        ("conditions", "PATIENT", "ENCOUNTER", "encounters"),
        ("observations", "PATIENT", "ENCOUNTER", "encounters"),
        ("claims_transactions", "PATIENTID", "CLAIMID", "claims"),
        ("claims", "PATIENTID", "APPOINTMENTID", "encounters"),
    ):
        target_patient = "PATIENTID" if target == "claims" else "PATIENT"
        other = con.execute(
            f"SELECT count(*) FROM {cohort.sql_name(table)} x JOIN {cohort.sql_name(target)} y ON x.{key} = y.Id "
            f"WHERE x.{patient} <> y.{target_patient}"
        ).fetchall()[0][0]
        assert other == 0, f"{table}.{key} points at another patient's {target}"
    # an encounter's condition starts on or after the encounter's day, where the patient had an encounter by then
    late = con.execute(
        f"SELECT count(*) FROM {cohort.sql_name('conditions')} c JOIN {cohort.sql_name('encounters')} e ON c.ENCOUNTER = e.Id "
        f"WHERE CAST(e.START AS DATE) > c.START AND EXISTS (SELECT 1 FROM {cohort.sql_name('encounters')} f "
        f"WHERE f.PATIENT = c.PATIENT AND CAST(f.START AS DATE) <= c.START)"
    ).fetchall()[0][0]
    assert late == 0


def test_synthea_places_below_the_state_never_reach_a_release(shared_datasets: Path, tmp_path: Path) -> None:
    """The built-in Synthea schema drops a patient's town of birth, city, county, FIPS and ZIP (HIPAA Safe Harbor's
    geography). The adversary is the leakiest generator there is: ``copy`` replays training rows verbatim, with the
    replicated-uniques guard off. Its release still holds none of them: the columns are empty, and no real patient's
    place appears in any cell of a patient table."""
    import pandas as pd
    import pyarrow.parquet as pq

    from synth.release import Store

    source = shared_datasets / "synthea" / "sample_22p_2023"
    raw = pd.read_csv(source / "patients.csv.gz", dtype=str)
    places = {"BIRTHPLACE", "CITY", "COUNTY", "FIPS", "ZIP"} & set(raw.columns)
    assert {"CITY", "ZIP", "COUNTY", "BIRTHPLACE"} <= places
    real = {v for c in places for v in raw[c].dropna() if v.strip()} - {"00000"}
    assert real  # the source holds real places to leak
    schema = load_schema("synthea")
    store = Store(tmp_path / "store")
    info = release(schema, source, generator="copy", store=store, allow_unsafe=True, secret=SECRET.encode(),
                   remove_uniques=False, n_patients=10)
    folder = store.release_dir(info.release_id)
    patients = pq.read_table(folder / "patients.parquet").to_pandas()
    assert len(patients) == 10 and patients["STATE"].notna().all()  # the state, a quasi-identifier, is kept
    for col in places & set(patients.columns):
        assert patients[col].isna().all(), col
    for table in schema.tables.values():
        if table.reference:
            continue  # organizations, providers, payers: places of institutions, released as they are
        frame = pq.read_table(folder / f"{table.name}.parquet").to_pandas()
        cells = {str(v) for col in frame.columns if frame[col].dtype == object for v in frame[col].dropna()}
        assert not cells & real, (table.name, sorted(cells & real)[:3])
