"""Schema inference on the public data in ../shared/datasets: the draft of each folder reads back from its
YAML unchanged and validates that folder with no problem, and Synthea's identifiers are flagged."""
from __future__ import annotations

from pathlib import Path

import pytest

from data_schemas.io import parse_schema
from synth.infer import Draft, draft_schema
from synth.load import read_dataset

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
SYNPUF = DATASETS / "desynpuf" / "1-sample-10000"
SYNTHEA = DATASETS / "synthea"
SYNTHEA_FOLDERS = ["ma_112p_2025", "ohdsi_dbt_27p", "sample_22p_2023"]

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DATASETS.is_dir(), reason=f"../shared/datasets not found at {DATASETS}: real-data tests need it"),
]


def _draft(folder: Path) -> Draft:
    if not folder.is_dir():
        pytest.skip(f"dataset folder not found: {folder}")
    return draft_schema(folder)


@pytest.fixture(scope="module")
def synpuf() -> Draft:
    return _draft(SYNPUF)


@pytest.fixture(scope="module", params=SYNTHEA_FOLDERS)
def synthea(request: pytest.FixtureRequest) -> tuple[Path, Draft]:
    folder = SYNTHEA / request.param
    return folder, _draft(folder)


def _assert_round_trip_and_valid(draft: Draft, folder: Path) -> None:
    again = parse_schema(draft.to_yaml(), source=str(folder))
    assert again.model_dump() == draft.schema.model_dump()
    _, report = read_dataset(again, folder)
    assert report.ok, report.render()


def test_synpuf_draft_validates_its_folder(synpuf: Draft) -> None:
    _assert_round_trip_and_valid(synpuf, SYNPUF)


def test_synpuf_tables_keys_and_patient(synpuf: Draft) -> None:
    schema = synpuf.schema
    assert set(schema.tables) == {"beneficiary_summary_file", "inpatient_claims"}
    bene, claims = schema.tables["beneficiary_summary_file"], schema.tables["inpatient_claims"]
    assert bene.files == ["DE1_0_*_Beneficiary_Summary_File_Sample_*.csv.gz"]
    assert bene.primary_key == ["DESYNPUF_ID", "YEAR"]
    assert bene.columns["YEAR"].from_filename is not None
    assert claims.primary_key == ["CLM_ID", "SEGMENT"]
    assert claims.columns["DESYNPUF_ID"].references == "beneficiary_summary_file.DESYNPUF_ID"
    assert (schema.patient.table, schema.patient.column) == ("beneficiary_summary_file", "DESYNPUF_ID")
    assert bene.columns["BENE_BIRTH_DT"].format == "%Y%m%d"
    assert claims.groups["icd9_dgns_cd"].vocabulary == "ICD9CM"
    assert {c.name for _, c in schema.direct_identifiers()} == {"DESYNPUF_ID"}


def test_synthea_draft_validates_its_folder(synthea: tuple[Path, Draft]) -> None:
    folder, draft = synthea
    _assert_round_trip_and_valid(draft, folder)


def test_synthea_keys_patient_and_identifiers(synthea: tuple[Path, Draft]) -> None:
    _, draft = synthea
    schema = draft.schema
    assert (schema.patient.table, schema.patient.column) == ("patients", "Id")
    assert schema.tables["encounters"].columns["PATIENT"].references == "patients.Id"
    assert schema.tables["conditions"].columns["ENCOUNTER"].references == "encounters.Id"
    assert {t.name for t in schema.tables.values() if t.reference} == {"organizations", "payers", "providers"}
    direct = {c.name for t, c in schema.direct_identifiers() if t == "patients"}
    assert {"Id", "SSN", "FIRST", "LAST", "ADDRESS", "PASSPORT", "DRIVERS"} <= direct
    quasi = {c.name for _, c in schema.quasi_identifiers("patients")}
    assert {"BIRTHDATE", "GENDER", "RACE", "ETHNICITY", "ZIP", "COUNTY"} <= quasi
    header = draft.to_yaml().split("\nname:")[0]
    for column in ("SSN", "FIRST", "LAST"):
        assert f"patients.{column}:" in header
