"""Schema inference on generated folders: types, keys, the patient table, privacy flags, and that a
draft always validates the folder it was drawn from."""
from __future__ import annotations

import csv
import gzip
import io
import string
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_schemas.io import parse_schema, schema_to_yaml
from data_schemas.model import Schema
from synth.errors import DataDirError
from synth.infer import Draft, draft_schema, infer_schema, infer_schema_yaml
from synth.load import read_dataset

REGIONS = ["seoul", "busan", "daegu", "incheon", "gyeonggi", "jeju"]
KCD = ["J06.9", "I10", "E11.9", "K21.0", "M54.5", "J20.9", "N39.0", "O80"]
ATC = ["N02BE01", "C09AA05", "A10BA02", "J01CA04", "R05", "M01AE01"]
TREATMENTS = ["AA157", "B1010", "HA010", "M0111", "AH001"]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    data = out.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _kr_like(folder: Path, *, n_patients: int = 60, seed: int = 0) -> Path:
    """A small kr_claims-like folder: Parquet and CSV (plain and gzipped) mixed."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pids = [f"P{i:05d}" for i in range(1, n_patients + 1)]
    dead = rng.random(n_patients) < 0.2
    pq.write_table(
        pa.table({
            "patient_id": pids,
            "name": [f"Kim {chr(65 + i % 26)}{i}" for i in range(n_patients)],
            "rrn": [f"{rng.integers(40, 99)}0{rng.integers(1, 9)}1{rng.integers(0, 2)}-{rng.integers(1_000_000, 4_999_999)}"
                    for _ in range(n_patients)],
            "phone": [f"010-{rng.integers(1000, 9999)}-{rng.integers(1000, 9999)}" for _ in range(n_patients)],
            "sex": rng.choice(["M", "F"], n_patients).tolist(),
            "birth_year": pa.array(rng.integers(1930, 2020, n_patients), pa.int64()),
            "region": rng.choice(REGIONS, n_patients).tolist(),
            "death_date": [f"2023-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}" if d else None for d in dead],
        }),
        folder / "patients.parquet",
    )
    institutions = [f"H{i:03d}" for i in range(1, 9)]
    _write_csv(
        folder / "institutions.csv",
        ["institution_id", "institution_type", "beds"],
        [[h, ["clinic", "hospital", "general_hospital"][i % 3], int(rng.integers(0, 900))] for i, h in enumerate(institutions)],
    )
    claims, details, prescriptions = [], [], []
    for c in range(1, 4 * n_patients + 1):
        cid = f"C{c:06d}"
        cost = int(rng.integers(5_000, 500_000))
        claims.append([cid, pids[int(rng.integers(0, n_patients))], rng.choice(institutions),
                       f"2023-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
                       rng.choice(["outpatient", "inpatient", "pharmacy"]), rng.choice(KCD),
                       rng.choice(KCD) if rng.random() < 0.4 else None, cost, cost // 3])
        for line in range(1, int(rng.integers(1, 4)) + 1):
            details.append([f"D{len(details) + 1:07d}", cid, line, rng.choice(TREATMENTS),
                            float(rng.choice([1.0, 0.5, 2.5])), int(rng.integers(100, 90_000))])
        if rng.random() < 0.5:
            prescriptions.append((f"R{len(prescriptions) + 1:07d}", cid, str(rng.choice(ATC)),
                                  float(rng.choice([1.0, 1.5, 3.0])), int(rng.integers(1, 60))))
    _write_csv(
        folder / "claims.csv.gz",
        ["claim_id", "patient_id", "institution_id", "visit_date", "care_type", "main_dx", "sub_dx",
         "total_cost", "patient_share"],
        claims,
    )
    _write_csv(
        folder / "claim_details.csv",
        ["detail_id", "claim_id", "line_no", "treatment_code", "quantity", "amount"],
        details,
    )
    cols = list(zip(*prescriptions))
    pq.write_table(
        pa.table({
            "prescription_id": list(cols[0]),
            "claim_id": list(cols[1]),
            "atc_code": list(cols[2]),
            "daily_dose": pa.array(cols[3], pa.float64()),
            "days_supplied": pa.array(cols[4], pa.int32()),
        }),
        folder / "prescriptions.parquet",
    )
    return folder


def _assert_validates(draft: Draft, folder: Path) -> None:
    """The draft's YAML reads back to the same schema, and the folder validates under it."""
    assert parse_schema(draft.to_yaml()).model_dump() == draft.schema.model_dump()
    _, report = read_dataset(draft.schema, folder)
    assert report.ok, report.render()


@pytest.fixture(scope="module")
def kr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Schema]:
    folder = _kr_like(tmp_path_factory.mktemp("infer") / "kr")
    return folder, infer_schema(folder)


# --------------------------------------------------------------------------------------------------
# a kr_claims-like folder, CSV and Parquet mixed


def test_one_table_per_file_named_after_it(kr: tuple[Path, Schema]) -> None:
    folder, schema = kr
    assert set(schema.tables) == {"patients", "institutions", "claims", "claim_details", "prescriptions"}
    assert schema.tables["claims"].files == ["claims.csv.gz"]
    assert schema.tables["prescriptions"].files == ["prescriptions.parquet"]
    assert schema.name == "kr"


def test_column_types(kr: tuple[Path, Schema]) -> None:
    _, schema = kr
    col = {(t.name, c.name): c for t in schema.tables.values() for c in t.columns.values()}
    assert col["patients", "patient_id"].type == "id"
    assert col["patients", "sex"].type == "categorical"
    assert (col["patients", "birth_year"].type, col["patients", "birth_year"].integer) == ("numerical", True)
    assert (col["patients", "death_date"].type, col["patients", "death_date"].unit) == ("datetime", "date")
    assert (col["claims", "visit_date"].type, col["claims", "visit_date"].unit) == ("datetime", "date")
    assert col["claims", "care_type"].type == "categorical"
    assert (col["claims", "main_dx"].type, col["claims", "main_dx"].vocabulary) == ("code", "ICD10")
    assert (col["claims", "total_cost"].type, col["claims", "total_cost"].integer) == ("numerical", True)
    assert (col["claim_details", "quantity"].type, col["claim_details", "quantity"].integer) == ("numerical", False)
    assert col["claim_details", "treatment_code"].type == "code"
    assert col["claim_details", "treatment_code"].pattern is not None
    assert (col["prescriptions", "atc_code"].type, col["prescriptions", "atc_code"].vocabulary) == ("code", "ATC")
    assert (col["prescriptions", "days_supplied"].type, col["prescriptions", "days_supplied"].integer) == ("numerical", True)
    assert (col["institutions", "beds"].type, col["institutions", "beds"].integer) == ("numerical", True)


def test_keys_foreign_keys_patient_and_reference_tables(kr: tuple[Path, Schema]) -> None:
    _, schema = kr
    assert (schema.patient.table, schema.patient.column) == ("patients", "patient_id")
    assert {t.name: t.primary_key for t in schema.tables.values()} == {
        "patients": ["patient_id"],
        "institutions": ["institution_id"],
        "claims": ["claim_id"],
        "claim_details": ["detail_id"],
        "prescriptions": ["prescription_id"],
    }
    refs = {(t.name, c.name): c.references for t in schema.tables.values() for c in t.foreign_keys}
    assert refs == {
        ("claims", "patient_id"): "patients.patient_id",
        ("claims", "institution_id"): "institutions.institution_id",
        ("claim_details", "claim_id"): "claims.claim_id",
        ("prescriptions", "claim_id"): "claims.claim_id",
    }
    assert [t.name for t in schema.tables.values() if t.reference] == ["institutions"]
    assert schema.path_to_patient("claim_details") == [
        ("claim_details", "claim_id", "claims", "claim_id"),
        ("claims", "patient_id", "patients", "patient_id"),
    ]
    assert schema.tables["claims"].order_by == "visit_date"


def test_identifiers_are_flagged(kr: tuple[Path, Schema]) -> None:
    _, schema = kr
    patients = schema.tables["patients"].columns
    direct = {(t, c.name) for t, c in schema.direct_identifiers()}
    assert {("patients", "patient_id"), ("patients", "name"), ("patients", "rrn"), ("patients", "phone"),
            ("claims", "patient_id")} <= direct
    assert patients["patient_id"].pseudonymisation == "hmac"
    assert patients["rrn"].pseudonymisation == "drop"
    assert {c.name for _, c in schema.quasi_identifiers("patients")} == {"sex", "birth_year", "region"}
    assert patients["death_date"].privacy == "sensitive"
    assert schema.tables["claims"].columns["main_dx"].privacy == "sensitive"
    assert schema.tables["institutions"].columns["institution_type"].privacy is None


def test_draft_validates_its_folder_and_round_trips(kr: tuple[Path, Schema]) -> None:
    folder, schema = kr
    text = infer_schema_yaml(folder)
    assert parse_schema(text).model_dump() == schema.model_dump()
    _, report = read_dataset(schema, folder)
    assert report.ok, report.render()


def test_yaml_header_says_draft_and_lists_flags(kr: tuple[Path, Schema]) -> None:
    folder, _ = kr
    text = infer_schema_yaml(folder, name="my_claims")
    header = text.split("\nname:")[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "DRAFT" in header and "REVIEW" in header
    assert "patients.rrn: resident registration number" in header
    assert "patients.name: name on a person table" in header
    assert "patients.sex: sex / gender" in header
    assert parse_schema(text).name == "my_claims"


# --------------------------------------------------------------------------------------------------
# file groups, dates and codes


def test_files_by_year_form_one_table_with_a_year_key(tmp_path: Path) -> None:
    for year, n in ((2008, 30), (2009, 28), (2010, 25)):
        rows = [[f"{i:016X}", f"19{40 + i % 50:02d}0{1 + i % 9}15", 1 + i % 2, 12 - i % 3] for i in range(n)]
        _write_csv(tmp_path / f"DE1_0_{year}_Beneficiary_Summary_File_Sample_7.csv.gz",
                   ["DESYNPUF_ID", "BENE_BIRTH_DT", "BENE_SEX_IDENT_CD", "BENE_HI_CVRAGE_TOT_MONS"], rows)
    _write_csv(tmp_path / "DE1_0_2008_to_2010_Inpatient_Claims_Sample_7.csv.gz",
               ["DESYNPUF_ID", "CLM_ID", "SEGMENT", "CLM_FROM_DT", "ADMTNG_ICD9_DGNS_CD"],
               [[f"{i % 20:016X}", f"{100000 + i // 2}", 1 + i % 2, "20090412", ["0389", "V5866", "4019"][i % 3]]
                for i in range(40)])
    draft = draft_schema(tmp_path)
    schema = draft.schema
    assert set(schema.tables) == {"beneficiary_summary_file", "inpatient_claims"}
    bene = schema.tables["beneficiary_summary_file"]
    assert bene.files == ["DE1_0_*_Beneficiary_Summary_File_Sample_*.csv.gz"]
    assert bene.primary_key == ["DESYNPUF_ID", "YEAR"]
    year = bene.columns["YEAR"]
    assert (year.type, year.integer, year.from_filename) == ("numerical", True, "^DE1_0_([0-9]{4})_Beneficiary_Summary_File_Sample_")
    birth = bene.columns["BENE_BIRTH_DT"]
    assert (birth.type, birth.format, birth.unit, birth.privacy) == ("datetime", "%Y%m%d", "date", "quasi_identifier")
    assert bene.columns["BENE_SEX_IDENT_CD"].type == "categorical"
    claims = schema.tables["inpatient_claims"]
    assert claims.files == ["DE1_0_2008_to_2010_Inpatient_Claims_Sample_*.csv.gz"]
    assert claims.primary_key == ["CLM_ID", "SEGMENT"]
    assert claims.columns["DESYNPUF_ID"].references == "beneficiary_summary_file.DESYNPUF_ID"
    dx = claims.columns["ADMTNG_ICD9_DGNS_CD"]
    assert (dx.type, dx.vocabulary) == ("code", "ICD9CM")
    assert (schema.patient.table, schema.patient.column) == ("beneficiary_summary_file", "DESYNPUF_ID")
    _assert_validates(draft, tmp_path)


def test_shapes_of_values(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        rows.append([
            f"id-{i}",
            f"{i % 13:02d}",                      # zero-padded small numbers: numerical integer
            f"{[1, 3, 5, 7, 9][i % 5]:03d}",      # fixed-width zero-padded codes: categorical
            "0389" if i % 2 else "71590",         # a diagnosis code with a leading zero: code
            f"2020-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
            "8b1f0e36-2c4e-4b7e-9a39-%012d" % i,
            "Lorem ipsum dolor sit amet " * (1 + i % 3) + str(i),
            f"{i * 1.25:.2f}",
        ])
    _write_csv(tmp_path / "events.csv",
               ["event_id", "month_no", "county_cd", "dgns_cd", "recorded_at", "device_uuid", "note", "amount"], rows)
    cols = infer_schema(tmp_path).tables["events"].columns
    assert (cols["month_no"].type, cols["month_no"].integer) == ("numerical", True)
    assert cols["county_cd"].type == "categorical"
    assert (cols["dgns_cd"].type, cols["dgns_cd"].vocabulary) == ("code", "ICD9CM")
    assert (cols["recorded_at"].type, cols["recorded_at"].unit) == ("datetime", "timestamp")
    assert cols["device_uuid"].type == "id"
    assert cols["note"].type == "text"
    assert (cols["amount"].type, cols["amount"].integer) == ("numerical", False)


def test_types_are_checked_on_rows_beyond_the_sample(tmp_path: Path) -> None:
    rows = [[f"r{i}", str(i), "20200101", f"C{i % 4}"] for i in range(20)]
    rows += [["r20", "12.5", "unknown", "not a code!"]]
    _write_csv(tmp_path / "items.csv", ["item_id", "qty", "start_dt", "proc_code"], rows)
    draft = draft_schema(tmp_path, sample_rows=5)
    cols = draft.schema.tables["items"].columns
    assert (cols["qty"].type, cols["qty"].integer) == ("numerical", False)
    assert cols["start_dt"].type != "datetime"
    assert cols["proc_code"].pattern is None and cols["proc_code"].vocabulary is None
    _assert_validates(draft, tmp_path)


def test_key_checked_on_all_rows_not_the_sample(tmp_path: Path) -> None:
    rows = [[f"k{i}", i] for i in range(30)] + [["k3", 99]]
    _write_csv(tmp_path / "things.csv", ["thing_id", "size"], rows)
    draft = draft_schema(tmp_path, sample_rows=10)
    assert draft.schema.tables["things"].primary_key == []
    _assert_validates(draft, tmp_path)


def test_unrelated_tables_become_reference_tables(tmp_path: Path) -> None:
    _write_csv(tmp_path / "persons.csv", ["person_id", "gender"], [[f"p{i}", "MF"[i % 2]] for i in range(10)])
    _write_csv(tmp_path / "units.csv", ["unit_code", "label"], [[f"u{i}", f"Unit {i}"] for i in range(5)])
    draft = draft_schema(tmp_path)
    assert draft.schema.patient.table == "persons"
    assert draft.schema.tables["units"].reference and not draft.schema.tables["persons"].reference
    _assert_validates(draft, tmp_path)


# --------------------------------------------------------------------------------------------------
# errors


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataDirError, match=f"{missing}.*does not exist"):
        infer_schema(missing)


def test_a_file_instead_of_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    with pytest.raises(DataDirError, match="is not a folder"):
        infer_schema(path)


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match=f"{tmp_path}.*no data files.*empty"):
        infer_schema(tmp_path)
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(DataDirError, match="no data files.*README.md"):
        infer_schema(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty.csv is empty"),
        ("broken.csv.gz", b"not gzip at all", "broken.csv.gz cannot be read as gzipped CSV"),
        ("broken.parquet", b"PAR1 but not really", "broken.parquet cannot be read as Parquet"),
        ("spaces.csv", b"first name,age\nAnn,3\n", "plain identifiers.*spaces.csv: 'first name'"),
    ],
)
def test_unreadable_file_is_named(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    _write_csv(tmp_path / "good.csv", ["good_id"], [["a"]])
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataDirError, match=message) as info:
        infer_schema(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_sample_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'sample_rows' parameter of infer_schema must be an int >= 1; got 0"):
        infer_schema(tmp_path, sample_rows=0)


# --------------------------------------------------------------------------------------------------
# property: whatever the values, the draft validates the folder it came from

_cell = st.one_of(
    st.none(),
    st.integers(-10**6, 10**6).map(str),
    st.integers(0, 999).map(lambda i: f"{i:04d}"),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.dates().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.strftime("%Y%m%d")),
    st.text(string.ascii_letters + string.digits + " .-", min_size=1, max_size=12).map(str.strip),
    st.uuids().map(str),
)
_names = ["id", "patient_id", "code", "dx_code", "birth_dt", "amount", "name", "value"]


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.lists(st.sampled_from(_names), min_size=2, max_size=4, unique=True),
    rows=st.lists(st.lists(_cell, min_size=4, max_size=4), min_size=1, max_size=25),
    parquet=st.booleans(),
    at=st.integers(0, 4),
)
def test_draft_always_validates_its_folder(columns: list[str], rows: list[list[str | None]], parquet: bool, at: int) -> None:
    """Whatever the other values, a table with a row id drafts a schema that validates it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cut = [row[: len(columns)] for row in rows]
        at = min(at, len(columns))
        columns = columns[:at] + ["row_id"] + columns[at:]
        cut = [r[:at] + [f"r{i}"] + r[at:] for i, r in enumerate(cut)]
        if parquet:
            pq.write_table(pa.table({c: pa.array([r[i] for r in cut], pa.string()) for i, c in enumerate(columns)}),
                           folder / "table_a.parquet")
        else:
            _write_csv(folder / "table_a.csv", columns, cut)
        schema = infer_schema(folder)
        assert parse_schema(schema_to_yaml(schema)).model_dump() == schema.model_dump()
        assert schema.patient_table.columns[schema.patient.column].type == "id"
        _, report = read_dataset(schema, folder)
        assert report.ok, report.render()
