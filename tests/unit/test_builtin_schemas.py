"""Every built-in schema loads and is well formed; the OMOP schema validates a hand-written extract."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from data_schemas.io import builtin_names, load_schema, parse_schema, schema_to_yaml
from data_schemas.model import Schema
from data_schemas.sdv_metadata import to_sdv_metadata
from synth.load import read_dataset
from synth.validation import Problem, ValidationReport

BUILTINS = builtin_names()


@pytest.fixture(scope="module", params=BUILTINS)
def schema(request: pytest.FixtureRequest) -> Schema:
    return load_schema(request.param)


def test_the_expected_schemas_ship() -> None:
    assert {"cms_desynpuf", "kr_claims", "omop_cdm", "synthea"} <= set(BUILTINS)


def test_schema_has_a_patient_table_with_its_key(schema: Schema) -> None:
    assert schema.patient.table in schema.tables
    assert not schema.patient_table.reference
    key = schema.patient_table.columns[schema.patient.column]
    assert key.type == "id"
    assert key.nullable is False


def test_fingerprint_is_a_stable_sha256(schema: Schema) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", schema.fingerprint)
    assert load_schema(schema.name).fingerprint == schema.fingerprint


def test_yaml_round_trip_keeps_the_fingerprint(schema: Schema) -> None:
    again = parse_schema(schema_to_yaml(schema), source=f"<{schema.name} round trip>")
    assert again.fingerprint == schema.fingerprint


def test_every_table_reaches_the_patient_table_or_is_a_reference_table(schema: Schema) -> None:
    for name, table in schema.tables.items():
        if name == schema.patient.table or table.reference:
            continue
        path = schema.path_to_patient(name)
        assert path, f"{schema.name}.{name} has no chain of foreign keys to {schema.patient.table}"
        assert path[-1][2:] == (schema.patient.table, schema.patient.column)
        assert schema.patient.table in schema.topological_order()[: schema.topological_order().index(name)]


def test_every_foreign_key_points_at_a_column_that_exists(schema: Schema) -> None:
    for table in schema.tables.values():
        for col in table.foreign_keys:
            ref_table, ref_col = col.foreign_key  # type: ignore[misc]
            assert ref_col in schema.tables[ref_table].columns, f"{table.name}.{col.name} -> {col.references}"


def test_patient_keys_are_pseudonymised_everywhere(schema: Schema) -> None:
    """The patient key and every column holding it are direct identifiers of type id (keyed hash)."""
    root = (schema.patient.table, schema.patient.column)
    holders = [schema.patient_table.columns[schema.patient.column]]
    holders += [c for t in schema.tables.values() for c in t.foreign_keys if c.foreign_key == root]
    for col in holders:
        assert col.type == "id" and col.privacy == "direct_identifier", col.name
        assert col.pseudonymisation == "hmac"


def test_schema_converts_to_sdv_metadata(schema: Schema) -> None:
    metadata = to_sdv_metadata(schema)
    expected = {t for t, table in schema.tables.items() if not table.reference}
    assert set(metadata.tables) == expected


# --- synthea -----------------------------------------------------------------------------------------


def test_synthea_layouts_and_reference_tables() -> None:
    synthea = load_schema("synthea")
    assert len(synthea.tables) == 18
    assert {t for t, table in synthea.tables.items() if table.reference} == {"organizations", "providers", "payers"}
    assert {t for t, table in synthea.tables.items() if not table.required} == {"observations", "claims_transactions"}
    one_layout_only = {
        (t.name, c.name) for t in synthea.tables.values() for c in t.columns.values() if not c.required
    }
    assert one_layout_only == {
        ("patients", "MIDDLE"), ("patients", "FIPS"), ("patients", "INCOME"),
        ("conditions", "SYSTEM"), ("procedures", "SYSTEM"), ("payers", "OWNERSHIP"),
        ("payer_transitions", "START_DATE"), ("payer_transitions", "END_DATE"),
        ("payer_transitions", "PLAN_OWNERSHIP"), ("payer_transitions", "OWNER_NAME"),
        ("payer_transitions", "START_YEAR"), ("payer_transitions", "END_YEAR"),
        ("payer_transitions", "OWNERSHIP"), ("payer_transitions", "OWNERNAME"),
        ("providers", "ENCOUNTERS"), ("providers", "PROCEDURES"), ("providers", "UTILIZATION"),
    }


@pytest.mark.parametrize("name", ["synthea", "omop_cdm"])
def test_patient_key_is_the_parent_link_of_every_event_table(name: str) -> None:
    schema = load_schema(name)
    for table in schema.tables.values():
        if table.name == schema.patient.table or table.reference:
            continue
        link = schema.parent_of(table.name)
        assert link is not None and link[1:] == (schema.patient.table, schema.patient.column), table.name


def test_synthea_direct_identifiers_are_dropped_or_hashed() -> None:
    synthea = load_schema("synthea")
    patients = synthea.table("patients")
    for name in ["PREFIX", "FIRST", "MIDDLE", "LAST", "SUFFIX", "MAIDEN", "SSN", "DRIVERS", "PASSPORT", "ADDRESS", "LAT", "LON"]:
        assert patients.columns[name].pseudonymisation == "drop", name
    # places below the state are identifiers under HIPAA's Safe Harbor method: dropped, never released
    for name in ["BIRTHPLACE", "CITY", "COUNTY", "FIPS", "ZIP"]:
        assert patients.columns[name].pseudonymisation == "drop", name
    for name in ["BIRTHDATE", "GENDER", "RACE", "ETHNICITY", "MARITAL", "STATE"]:
        assert patients.columns[name].privacy == "quasi_identifier", name
    assert synthea.table("claims_transactions").columns["PATIENTINSURANCEID"].pseudonymisation == "hmac"


# --- OMOP CDM: a small hand-written extract -------------------------------------------------------------

Rows = list[list[str]]

OMOP: dict[str, tuple[str, Rows]] = {
    "person": (
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,race_concept_id,"
        "ethnicity_concept_id,location_id,provider_id,care_site_id,person_source_value,gender_source_value,"
        "gender_source_concept_id,race_source_value,race_source_concept_id,ethnicity_source_value,"
        "ethnicity_source_concept_id",
        [
            ["1", "8507", "1950", "3", "14", "1950-03-14 00:00:00", "8527", "38003564", "10", "", "", "MRN-0001", "M", "0", "white", "0", "nonhispanic", "0"],
            ["2", "8532", "1985", "11", "2", "1985-11-02 00:00:00", "8516", "38003563", "11", "", "", "MRN-0002", "F", "0", "black", "0", "hispanic", "0"],
            ["3", "8532", "2012", "", "", "", "8527", "38003564", "", "", "", "MRN-0003", "F", "0", "white", "0", "nonhispanic", "0"],
        ],
    ),
    "observation_period": (
        "observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id",
        [
            ["1", "1", "2015-01-01", "2020-12-31", "32817"],
            ["2", "2", "2016-06-01", "2021-06-30", "32817"],
            ["3", "3", "2012-05-01", "2022-01-01", "32817"],
        ],
    ),
    "visit_occurrence": (
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,visit_end_date,"
        "visit_end_datetime,visit_type_concept_id,provider_id,care_site_id,visit_source_value,visit_source_concept_id,"
        "admitted_from_concept_id,admitted_from_source_value,discharged_to_concept_id,discharged_to_source_value,"
        "preceding_visit_occurrence_id",
        [
            ["101", "1", "9202", "2016-03-01", "2016-03-01 09:00:00", "2016-03-01", "2016-03-01 09:30:00", "32817", "501", "601", "enc-a1", "0", "0", "", "0", "", ""],
            ["102", "1", "9201", "2018-07-10", "2018-07-10 14:00:00", "2018-07-14", "2018-07-14 11:00:00", "32817", "502", "601", "enc-a2", "0", "8870", "ED", "8536", "home", "101"],
            ["103", "2", "9203", "2019-01-20", "2019-01-20 22:10:00", "2019-01-21", "2019-01-21 03:00:00", "32817", "503", "602", "enc-b1", "0", "0", "", "0", "", ""],
            ["104", "3", "9202", "2020-02-02", "2020-02-02 10:00:00", "2020-02-02", "2020-02-02 10:20:00", "32817", "501", "601", "enc-c1", "0", "0", "", "0", "", ""],
        ],
    ),
    "condition_occurrence": (
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_start_datetime,"
        "condition_end_date,condition_end_datetime,condition_type_concept_id,condition_status_concept_id,stop_reason,"
        "provider_id,visit_occurrence_id,visit_detail_id,condition_source_value,condition_source_concept_id,"
        "condition_status_source_value",
        [
            ["1001", "1", "320128", "2016-03-01", "2016-03-01 09:00:00", "", "", "32817", "0", "", "501", "101", "", "I10", "319826", ""],
            ["1002", "1", "201826", "2018-07-10", "2018-07-10 14:00:00", "2018-07-14", "2018-07-14 11:00:00", "32817", "0", "", "502", "102", "", "E11.9", "45552385", ""],
            ["1003", "2", "260139", "2019-01-20", "2019-01-20 22:10:00", "2019-02-01", "", "32817", "0", "", "503", "103", "", "J20.9", "45572152", ""],
        ],
    ),
    "drug_exposure": (
        "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_start_datetime,"
        "drug_exposure_end_date,drug_exposure_end_datetime,verbatim_end_date,drug_type_concept_id,stop_reason,refills,"
        "quantity,days_supply,sig,route_concept_id,lot_number,provider_id,visit_occurrence_id,visit_detail_id,"
        "drug_source_value,drug_source_concept_id,route_source_value,dose_unit_source_value",
        [
            ["2001", "1", "1308216", "2016-03-01", "", "2016-05-30", "", "", "32838", "", "2", "90", "90", "", "4132161", "", "501", "101", "", "00093505898", "0", "oral", "mg"],
            ["2002", "1", "1503297", "2018-07-14", "", "2018-08-13", "", "", "32838", "", "0", "60", "30", "", "4132161", "", "502", "102", "", "00093104801", "0", "oral", "mg"],
            ["2003", "2", "1713332", "2019-01-21", "", "2019-01-31", "", "", "32838", "", "0", "20", "10", "", "4132161", "", "503", "103", "", "00781613131", "0", "oral", "mg"],
        ],
    ),
    "procedure_occurrence": (
        "procedure_occurrence_id,person_id,procedure_concept_id,procedure_date,procedure_datetime,procedure_end_date,"
        "procedure_end_datetime,procedure_type_concept_id,modifier_concept_id,quantity,provider_id,visit_occurrence_id,"
        "visit_detail_id,procedure_source_value,procedure_source_concept_id,modifier_source_value",
        [
            ["3001", "1", "4230911", "2018-07-11", "2018-07-11 08:00:00", "2018-07-11", "2018-07-11 09:00:00", "32817", "0", "1", "502", "102", "", "93000", "2313814", ""],
            ["3002", "3", "4163872", "2020-02-02", "", "", "", "32817", "0", "1", "501", "104", "", "99213", "2514404", ""],
        ],
    ),
    "measurement": (
        "measurement_id,person_id,measurement_concept_id,measurement_date,measurement_datetime,measurement_time,"
        "measurement_type_concept_id,operator_concept_id,value_as_number,value_as_concept_id,unit_concept_id,range_low,"
        "range_high,provider_id,visit_occurrence_id,visit_detail_id,measurement_source_value,"
        "measurement_source_concept_id,unit_source_value,unit_source_concept_id,value_source_value,"
        "measurement_event_id,meas_event_field_concept_id",
        [
            ["4001", "1", "3004410", "2018-07-11", "2018-07-11 07:30:00", "", "32817", "0", "7.1", "0", "8554", "4.0", "5.6", "502", "102", "", "4548-4", "3004410", "%", "0", "7.1", "", ""],
            ["4002", "2", "3027018", "2019-01-20", "", "", "32817", "0", "96", "0", "8541", "60", "100", "503", "103", "", "8867-4", "3027018", "/min", "0", "96", "", ""],
            ["4003", "3", "3036277", "2020-02-02", "", "", "32817", "0", "112.5", "0", "8582", "", "", "501", "104", "", "8302-2", "3036277", "cm", "0", "112.5", "", ""],
        ],
    ),
    "death": (
        "person_id,death_date,death_datetime,death_type_concept_id,cause_concept_id,cause_source_value,cause_source_concept_id",
        [["1", "2020-12-31", "2020-12-31 23:10:00", "32817", "201826", "E11.9", "45552385"]],
    ),
}


def _copy(tables: dict[str, tuple[str, Rows]]) -> dict[str, tuple[str, Rows]]:
    return {name: (header, [list(r) for r in rows]) for name, (header, rows) in tables.items()}


def _set(tables: dict[str, tuple[str, Rows]], table: str, row: int, column: str, value: str) -> None:
    """Set one value; ``row`` counts data rows from 1, as the validation report does."""
    header, rows = tables[table]
    rows[row - 1][header.split(",").index(column)] = value


def _write(folder: Path, tables: dict[str, tuple[str, Rows]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in tables.items():
        width = len(header.split(","))
        assert all(len(r) == width for r in rows), name
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header.split(","))
            writer.writerows(rows)
    return folder


def _only(report: ValidationReport, kind: str, table: str, column: str | None = None) -> Problem:
    found = [p for p in report.problems if p.kind == kind and p.table == table and (column is None or p.column == column)]
    assert len(found) == 1, f"expected one {kind} in {table}.{column}, got {found}\n{report.render()}"
    return found[0]


def test_omop_fixture_validates_clean(tmp_path: Path) -> None:
    _, report = read_dataset(load_schema("omop_cdm"), _write(tmp_path / "omop", OMOP))
    assert report.ok, report.render()
    assert report.rows == {name: len(rows) for name, (_, rows) in OMOP.items()}


def test_omop_extract_without_deaths_and_with_upper_case_names_validates(tmp_path: Path) -> None:
    tables = _copy(OMOP)
    del tables["death"]
    folder = _write(tmp_path / "omop", tables)
    (folder / "person.csv").rename(folder / "PERSON.csv")
    _, report = read_dataset(load_schema("omop_cdm"), folder)
    assert report.ok, report.render()
    assert report.files["person"] == ["PERSON.csv"]
    assert report.rows["death"] == 0


def test_broken_omop_extract_is_reported_by_table_column_and_row(tmp_path: Path) -> None:
    tables = _copy(OMOP)
    _set(tables, "visit_occurrence", 3, "visit_end_date", "2019-01-19")  # before its start, 2019-01-20
    _set(tables, "condition_occurrence", 2, "person_id", "99")  # no such person
    _set(tables, "drug_exposure", 1, "drug_concept_id", "RX1308216")  # not a concept id
    _set(tables, "person", 3, "year_of_birth", "1785")  # below the plausible range
    _set(tables, "measurement", 2, "measurement_date", "2019-13-45")  # not a date
    _, report = read_dataset(load_schema("omop_cdm"), _write(tmp_path / "omop", tables))
    assert not report.ok

    visit = _only(report, "rule_violation", "visit_occurrence")
    assert "visit_dates_in_order" in visit.message
    assert (visit.file, visit.rows, visit.count) == ("visit_occurrence.csv", (3,), 1)

    orphan = _only(report, "orphan_key", "condition_occurrence", "person_id")
    assert (orphan.file, orphan.rows, orphan.values) == ("condition_occurrence.csv", (2,), ("99",))

    code = _only(report, "bad_code", "drug_exposure", "drug_concept_id")
    assert (code.file, code.rows, code.values) == ("drug_exposure.csv", (1,), ("RX1308216",))

    year = _only(report, "out_of_range", "person", "year_of_birth")
    assert (year.file, year.rows, year.values) == ("person.csv", (3,), ("1785",))

    date = _only(report, "unparsable_value", "measurement", "measurement_date")
    assert (date.file, date.rows, date.values) == ("measurement.csv", (2,), ("2019-13-45",))
    assert _only(report, "null_value", "measurement", "measurement_date").rows == (2,)

    assert {(p.kind, p.table) for p in report.problems} == {
        ("rule_violation", "visit_occurrence"),
        ("orphan_key", "condition_occurrence"),
        ("bad_code", "drug_exposure"),
        ("out_of_range", "person"),
        ("unparsable_value", "measurement"),
        ("null_value", "measurement"),
    }
