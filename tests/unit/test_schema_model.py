"""Schema loading: located errors for malformed files, derived structure, YAML round trip, SDV metadata."""
from __future__ import annotations

from pathlib import Path

import pytest

from data_schemas.errors import SchemaError, UnknownSchemaError
from data_schemas.io import load_schema, parse_schema, schema_to_yaml
from data_schemas.rules import expand_check
from data_schemas.sdv_metadata import to_sdv_dict, to_sdv_metadata

MINIMAL = """\
name: mini
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier}
      sex: {type: categorical, values: [M, F]}
      born: {type: numerical, integer: true}
  visits:
    primary_key: vid
    columns:
      vid: id
      pid: {type: id, references: people.pid}
      day: {type: datetime, unit: date}
    rules:
      - name: after_birth
        check: year(day) >= patient.born
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(SchemaError) as info:
        parse_schema(text, source="broken.yaml")
    assert "broken.yaml" in str(info.value)
    return info.value.problems


def test_minimal_schema_derives_structure() -> None:
    schema = parse_schema(MINIMAL)
    assert schema.topological_order() == ["people", "visits"]
    assert schema.path_to_patient("visits") == [("visits", "pid", "people", "pid")]
    assert schema.table("visits").column("day").sql_type == "DATE"
    assert schema.table("people").column("pid").pseudonymisation == "hmac"


def test_invalid_yaml_names_line() -> None:
    problems = _problems("name: x\n  tables: [\n")
    assert problems[0].startswith("line 2")
    assert "not valid YAML" in problems[0]


def test_unknown_type_names_line_and_key() -> None:
    problems = _problems(MINIMAL.replace("day: {type: datetime, unit: date}", "day: {type: date}"))
    assert len(problems) == 1
    assert "line 15" in problems[0] and "tables.visits.columns.day.type" in problems[0]


def test_every_problem_reported_at_once() -> None:
    text = MINIMAL.replace("references: people.pid", "references: persons.pid").replace(
        "primary_key: vid", "primary_key: nope"
    )
    problems = _problems(text)
    assert any("primary_key" in p and "'nope'" in p for p in problems)
    assert any("unknown table 'persons'" in p for p in problems)


def test_rule_that_does_not_compile_is_located() -> None:
    problems = _problems(MINIMAL.replace("patient.born", "patient.unborn"))
    assert len(problems) == 1
    assert "line 18" in problems[0] and "after_birth" in problems[0]


def test_unknown_field_and_bad_regex() -> None:
    problems = _problems(MINIMAL.replace("sex: {type: categorical, values: [M, F]}", "sex: {type: code, pattern: '[a-'}\n      age: {type: numerical, colour: red}"))
    assert any("columns.sex" in p and "regular expression" in p for p in problems)
    assert any("columns.age.colour" in p for p in problems)


def test_missing_patient_table() -> None:
    problems = _problems(MINIMAL.replace("patient: {table: people", "patient: {table: humans"))
    assert problems == ["line 2, patient.table: patient table 'humans' is not a table of the schema"]


def test_unknown_schema_name(tmp_path: Path) -> None:
    with pytest.raises(UnknownSchemaError, match="kr_claims"):
        load_schema(tmp_path / "absent.yaml")


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SchemaError, match="bin.yaml"):
        load_schema(path)


@pytest.mark.parametrize("name", ["kr_claims", "cms_desynpuf"])
def test_yaml_round_trip_keeps_fingerprint(name: str) -> None:
    schema = load_schema(name)
    again = parse_schema(schema_to_yaml(schema))
    assert again.fingerprint == schema.fingerprint


def test_fingerprint_changes_with_content() -> None:
    a = parse_schema(MINIMAL)
    b = parse_schema(MINIMAL.replace("values: [M, F]", "values: [M, F, X]"))
    assert a.fingerprint != b.fingerprint


def test_repeated_groups_expand() -> None:
    table = load_schema("cms_desynpuf").table("inpatient_claims")
    dx = [c for c in table.columns.values() if c.group == "diagnosis_codes"]
    assert [c.name for c in dx] == [f"ICD9_DGNS_CD_{i}" for i in range(1, 11)]
    assert all(c.vocabulary == "ICD9CM" for c in dx)


def test_expand_check_only_touches_aliases() -> None:
    assert expand_check("patient.sex = 'M' AND x.patient.y AND parent.a > 1") == (
        "__sm_patient.sex = 'M' AND x.patient.y AND __sm_parent.a > 1"
    )


def test_sdv_metadata_leaves_out_direct_identifiers() -> None:
    schema = load_schema("kr_claims")
    spec = to_sdv_dict(schema)
    patients = spec["tables"]["patients"]["columns"]
    assert "name" not in patients and "rrn" not in patients and "phone" not in patients
    assert patients["patient_id"] == {"sdtype": "id"}
    assert patients["sex"] == {"sdtype": "categorical", "range_values": ["M", "F"]}
    assert {r["child_table_name"] for r in spec["relationships"]} == {"claims", "claim_details", "diagnoses", "prescriptions"}
    metadata = to_sdv_metadata(schema)
    assert set(metadata.tables) == set(schema.tables)


def test_sdv_metadata_drops_composite_keys() -> None:
    spec = to_sdv_dict(load_schema("cms_desynpuf"))
    assert "primary_key" not in spec["tables"]["beneficiary_summary"]
    assert spec["relationships"] == []
