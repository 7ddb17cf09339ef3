"""The built-in schemas against the public data in ../shared/datasets: clean folders validate clean, and
broken copies are reported with the right problem kind, file, table, column and row."""
from __future__ import annotations

import csv
import gzip
import io
import random
import shutil
from pathlib import Path

import pytest

from data_schemas.io import load_schema
from synth.load import read_dataset
from synth.validation import Problem, ValidationReport

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
DESYNPUF = DATASETS / "desynpuf"
SYNTHEA = DATASETS / "synthea"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DATASETS.is_dir(), reason=f"../shared/datasets not found: {DATASETS}"),
]

DESYNPUF_FOLDERS = ["1-sample-10000", "2-sample-10000", "16-sample-10000"]
SYNTHEA_FOLDERS = ["ma_112p_2025", "ohdsi_dbt_27p", "sample_22p_2023"]

BENE_2009 = "DE1_0_2009_Beneficiary_Summary_File_Sample_1.csv.gz"
BENE_2010 = "DE1_0_2010_Beneficiary_Summary_File_Sample_1.csv.gz"
INPATIENT = "DE1_0_2008_to_2010_Inpatient_Claims_Sample_1.csv.gz"


def _folder(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"../shared/datasets not found: {path}")
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def _read_gz(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8"))))


def _write_gz(path: Path, rows: list[list[str]], *, delimiter: str = ",") -> None:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_bytes(gzip.compress(out.getvalue().encode("utf-8")))


def _only(report: ValidationReport, kind: str, table: str, column: str | None = None) -> Problem:
    found = [p for p in report.problems if p.kind == kind and p.table == table and (column is None or p.column == column)]
    assert len(found) == 1, f"expected one {kind} in {table}.{column}, got {found}\n{report.render()}"
    return found[0]


# --- clean folders ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", DESYNPUF_FOLDERS)
def test_desynpuf_sample_is_clean(folder: str) -> None:
    _, report = read_dataset(load_schema("cms_desynpuf"), _folder(DESYNPUF / folder))
    assert report.ok, report.render()
    assert not report.problems
    assert report.rows["beneficiary_summary"] > 29_000
    assert report.rows["inpatient_claims"] > 5_000


SYNTHEA_ROWS = {
    "ma_112p_2025": {"patients": 112, "encounters": 5598, "observations": 0, "claims_transactions": 0, "procedures": 14761},
    "ohdsi_dbt_27p": {"patients": 27, "encounters": 604, "observations": 990, "claims_transactions": 5228, "payers": 10},
    "sample_22p_2023": {"patients": 22, "encounters": 1361, "observations": 16959, "claims_transactions": 17988},
}


@pytest.mark.parametrize("folder", SYNTHEA_FOLDERS)
def test_synthea_run_is_clean(folder: str) -> None:
    _, report = read_dataset(load_schema("synthea"), _folder(SYNTHEA / folder))
    assert report.ok, report.render()
    assert not report.problems
    assert len(report.rows) == 18
    assert {t: report.rows[t] for t in SYNTHEA_ROWS[folder]} == SYNTHEA_ROWS[folder]


# --- broken DE-SynPUF copy: column removed, date garbled, duplicated key row, orphan claim -------------------


@pytest.fixture(scope="module")
def broken_desynpuf(tmp_path_factory: pytest.TempPathFactory) -> ValidationReport:
    folder = _copy(_folder(DESYNPUF / "1-sample-10000"), tmp_path_factory.mktemp("desynpuf") / "broken")

    rows = _read_gz(folder / BENE_2010)  # a column removed from one year's file
    drop = rows[0].index("BENE_ESRD_IND")
    _write_gz(folder / BENE_2010, [r[:drop] + r[drop + 1:] for r in rows])

    rows = _read_gz(folder / BENE_2009)  # data row 5 duplicated at the end
    rows.append(list(rows[5]))
    _write_gz(folder / BENE_2009, rows)

    rows = _read_gz(folder / INPATIENT)
    header = rows[0]
    rows[7][header.index("CLM_FROM_DT")] = "2009O131"  # data row 7: a garbled date
    rows[12][header.index("DESYNPUF_ID")] = "FFFFFFFFFFFFFFFF"  # data row 12: a claim of nobody
    _write_gz(folder / INPATIENT, rows)

    _, report = read_dataset(load_schema("cms_desynpuf"), folder)
    return report


def test_removed_column_is_reported_for_its_file(broken_desynpuf: ValidationReport) -> None:
    p = _only(broken_desynpuf, "missing_column", "beneficiary_summary", "BENE_ESRD_IND")
    assert p.file == BENE_2010


def test_duplicated_key_row_is_reported_with_both_rows(broken_desynpuf: ValidationReport) -> None:
    p = _only(broken_desynpuf, "duplicate_key", "beneficiary_summary", "DESYNPUF_ID, BENE_YEAR")
    assert p.file == BENE_2009
    assert p.count == 1
    assert p.rows[0] == 5 and len(p.rows) == 2 and p.rows[1] > 9_000


def test_garbled_date_is_reported_with_row_and_value(broken_desynpuf: ValidationReport) -> None:
    p = _only(broken_desynpuf, "unparsable_value", "inpatient_claims", "CLM_FROM_DT")
    assert (p.file, p.rows, p.values, p.count) == (INPATIENT, (7,), ("2009O131",), 1)


def test_orphan_claim_is_reported_with_row_and_value(broken_desynpuf: ValidationReport) -> None:
    p = _only(broken_desynpuf, "orphan_key", "inpatient_claims", "DESYNPUF_ID")
    assert (p.file, p.rows, p.values, p.count) == (INPATIENT, (12,), ("FFFFFFFFFFFFFFFF",), 1)


def test_broken_desynpuf_has_no_other_problems(broken_desynpuf: ValidationReport) -> None:
    kinds = {(p.kind, p.table, p.column) for p in broken_desynpuf.problems}
    assert kinds == {
        ("missing_column", "beneficiary_summary", "BENE_ESRD_IND"),
        ("duplicate_key", "beneficiary_summary", "DESYNPUF_ID, BENE_YEAR"),
        ("unparsable_value", "inpatient_claims", "CLM_FROM_DT"),
        ("orphan_key", "inpatient_claims", "DESYNPUF_ID"),
    }, broken_desynpuf.render()


# --- broken Synthea copy: truncated gzip, empty file, binary files, delimiters ----------------------------------


@pytest.fixture(scope="module")
def broken_synthea(tmp_path_factory: pytest.TempPathFactory) -> tuple[ValidationReport, int]:
    folder = _copy(_folder(SYNTHEA / "ohdsi_dbt_27p"), tmp_path_factory.mktemp("synthea") / "broken")
    data = (folder / "conditions.csv.gz").read_bytes()
    (folder / "conditions.csv.gz").write_bytes(data[: len(data) // 2])  # truncated gzip stream
    (folder / "devices.csv.gz").write_bytes(b"")  # empty file
    (folder / "imaging_studies.csv.gz").write_bytes(random.Random(0).randbytes(2048))  # binary, not gzip
    (folder / "allergies.csv.gz").unlink()
    (folder / "allergies.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)  # binary, named .csv
    supplies = _read_gz(folder / "supplies.csv.gz")
    _write_gz(folder / "supplies.csv.gz", supplies, delimiter=";")  # sniffed: reads as if it were ','
    _write_gz(folder / "careplans.csv.gz", _read_gz(folder / "careplans.csv.gz"), delimiter="~")  # not sniffed
    _, report = read_dataset(load_schema("synthea"), folder)
    return report, len(supplies) - 1


def test_truncated_gzip_is_unreadable(broken_synthea: tuple[ValidationReport, int]) -> None:
    p = _only(broken_synthea[0], "unreadable_file", "conditions")
    assert p.file == "conditions.csv.gz"
    assert "gzip" in p.message.lower()


def test_empty_file_is_reported(broken_synthea: tuple[ValidationReport, int]) -> None:
    p = _only(broken_synthea[0], "empty_file", "devices")
    assert p.file == "devices.csv.gz"


@pytest.mark.parametrize(("table", "file"), [("imaging_studies", "imaging_studies.csv.gz"), ("allergies", "allergies.csv")])
def test_binary_file_is_unreadable(broken_synthea: tuple[ValidationReport, int], table: str, file: str) -> None:
    p = _only(broken_synthea[0], "unreadable_file", table)
    assert p.file == file


def test_semicolon_delimited_file_is_read_as_csv(broken_synthea: tuple[ValidationReport, int]) -> None:
    report, supplies_rows = broken_synthea
    assert not [p for p in report.problems if p.table == "supplies"], report.render()
    assert report.rows["supplies"] == supplies_rows


def test_unknown_delimiter_is_reported_with_a_hint(broken_synthea: tuple[ValidationReport, int]) -> None:
    report = broken_synthea[0]
    missing = [p for p in report.problems if p.kind == "missing_column" and p.table == "careplans"]
    assert {p.column for p in missing} == set(load_schema("synthea").table("careplans").columns)
    assert all(p.file == "careplans.csv.gz" and "check the delimiter" in p.message for p in missing)
    extra = _only(report, "unexpected_column", "careplans")
    assert extra.column is not None and extra.column.startswith("Id~START~STOP~PATIENT")


def test_broken_synthea_reports_only_the_broken_files(broken_synthea: tuple[ValidationReport, int]) -> None:
    tables = {p.table for p in broken_synthea[0].problems}
    assert tables == {"conditions", "devices", "imaging_studies", "allergies", "careplans"}, broken_synthea[0].render()
