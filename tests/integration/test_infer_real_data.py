"""Schema inference on the public data in ../shared/datasets: the draft of each folder reads back from its
YAML unchanged and validates that folder with no problem, Synthea's identifiers are flagged, its foreign
keys are the built-in schema's and its tree is patient -> encounter -> event."""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from data_schemas.io import load_schema, parse_schema
from data_schemas.model import Schema
from synth.errors import DataDirError
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


def _fks(schema: Schema) -> dict[tuple[str, str], str | None]:
    return {(t.name, c.name): c.references for t in schema.tables.values() for c in t.foreign_keys}


# Newer Synthea exports fill claims' insurance columns with payer ids only, so their values point at
# payers.Id; the built-in schema leaves them plain ids because 3.0/3.1 exports write '0' (no insurance) there.
_NEWER_LAYOUT_EXTRA = {("claims", "PRIMARYPATIENTINSURANCEID"), ("claims", "SECONDARYPATIENTINSURANCEID")}


def test_synthea_foreign_keys_match_the_builtin_schema(synthea: tuple[Path, Draft]) -> None:
    folder, draft = synthea
    builtin = load_schema("synthea")
    inferred = _fks(draft.schema)
    expected = {k: v for k, v in _fks(builtin).items() if k[0] in draft.schema.tables and k[1] in draft.schema.tables[k[0]].columns}
    extra = {k: v for k, v in inferred.items() if k not in expected}
    assert {k: inferred.get(k) for k in expected} == expected
    if folder.name == "ma_112p_2025":
        assert set(extra) == _NEWER_LAYOUT_EXTRA and set(extra.values()) == {"payers.Id"}
    else:
        assert extra == {}


def test_synthea_tree_patient_encounter_event(synthea: tuple[Path, Draft]) -> None:
    _, draft = synthea
    schema = draft.schema
    parent = {t: (schema.parent_of(t) or (None, None, None))[1] for t in schema.tables}
    assert parent["encounters"] == "patients"
    for table in ("conditions", "medications", "procedures", "immunizations", "careplans", "supplies"):
        assert parent[table] == "encounters", table
    if "claims_transactions" in schema.tables:
        assert parent["claims_transactions"] == "claims"
    for name in ("organizations", "providers", "payers"):
        assert schema.tables[name].reference


def test_a_synpuf_claims_table_without_ids_is_a_clear_question(tmp_path: Path) -> None:
    """Issue 15: 16 columns of SynPUF claims with no id made CLM_FROM_DT, a date, the patient key."""
    if not SYNPUF.is_dir():
        pytest.skip(f"dataset folder not found: {SYNPUF}")
    source = next(SYNPUF.glob("*Inpatient_Claims*.csv.gz"))
    with gzip.open(source, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [rows[0].index(c) for c in (
        "CLM_FROM_DT", "CLM_THRU_DT", "PRVDR_NUM", "CLM_PMT_AMT", "NCH_PRMRY_PYR_CLM_PD_AMT", "AT_PHYSN_NPI",
        "CLM_ADMSN_DT", "ADMTNG_ICD9_DGNS_CD", "CLM_PASS_THRU_PER_DIEM_AMT", "NCH_BENE_IP_DDCTBL_AMT",
        "NCH_BENE_PTA_COINSRNC_LBLTY_AM", "CLM_UTLZTN_DAY_CNT", "NCH_BENE_DSCHRG_DT", "CLM_DRG_CD",
        "ICD9_DGNS_CD_1", "ICD9_DGNS_CD_2")]
    with gzip.open(tmp_path / "inpatient_claims.csv.gz", "wt", newline="") as fh:
        csv.writer(fh).writerows([[r[i] for i in keep] for r in rows])
    with pytest.raises(DataDirError, match="no column of inpatient_claims .* can identify a patient"):
        draft_schema(tmp_path)
