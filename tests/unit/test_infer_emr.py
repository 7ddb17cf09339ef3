"""Schema inference on a hospital EMR export shaped like the MIMIC-IV demo (synth.demo_hospital), and the
adversarial cases of issue 15: foreign keys only to unique keys, the patient -> admission -> event tree,
dictionaries, timestamps, clinical vocabulary named ``*_name``, and a claims table with no patient id."""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from data_schemas.io import parse_schema
from data_schemas.model import Schema
from synth.demo_hospital import Sizes, write_hospital
from synth.errors import DataDirError
from synth.infer import Draft, draft_schema
from synth.load import read_dataset

EVENTS_WITH_ADMISSION = ("diagnoses_icd", "procedures_icd", "hcpcsevents", "drgcodes", "services", "poe")
EVENTS_SOMETIMES_OUTSIDE = ("labevents", "microbiologyevents", "transfers")  # hadm_id missing on some rows
VOCABULARY_NAMES = (("microbiologyevents", "test_name"), ("microbiologyevents", "org_name"),
                    ("microbiologyevents", "ab_name"), ("omr", "result_name"), ("poe_detail", "field_name"))


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    data = out.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


@pytest.fixture(scope="module")
def hosp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Draft, list[str]]:
    folder = write_hospital(tmp_path_factory.mktemp("hosp") / "hosp", 25, seed=1, sizes=Sizes(labs=12, orders=6))
    messages: list[str] = []
    return folder, draft_schema(folder, progress=messages.append), messages


def _fks(schema: Schema) -> dict[tuple[str, str], str]:
    return {(t.name, c.name): c.references for t in schema.tables.values() for c in t.foreign_keys}  # type: ignore[misc]


def assert_fks_point_at_unique_keys(schema: Schema) -> None:
    """Every foreign key targets a single-column primary key, or the entity id of an (id, file year) key."""
    for (table, column), ref in _fks(schema).items():
        target, key = ref.split(".")
        pk = schema.tables[target].primary_key
        rest = [k for k in pk if schema.tables[target].columns[k].from_filename is None]
        assert pk == [key] or rest == [key], f"{table}.{column} -> {ref}, whose table's key is {pk}"


def test_the_draft_validates_the_export_and_round_trips(hosp: tuple[Path, Draft, list[str]]) -> None:
    folder, draft, _ = hosp
    assert len(draft.schema.tables) == 22
    assert parse_schema(draft.to_yaml()).model_dump() == draft.schema.model_dump()
    _, report = read_dataset(draft.schema, folder)
    assert report.ok, report.render()


def test_foreign_keys_point_at_the_table_where_the_id_is_the_key(hosp: tuple[Path, Draft, list[str]]) -> None:
    _, draft, _ = hosp
    schema = draft.schema
    assert_fks_point_at_unique_keys(schema)
    assert (schema.patient.table, schema.patient.column) == ("patients", "subject_id")
    assert schema.tables["admissions"].primary_key == ["hadm_id"]
    assert schema.tables["admissions"].columns["hadm_id"].references is None
    assert schema.tables["diagnoses_icd"].primary_key == ["hadm_id", "seq_num"]
    fks = _fks(schema)
    for table in EVENTS_WITH_ADMISSION + EVENTS_SOMETIMES_OUTSIDE:
        assert fks[table, "hadm_id"] == "admissions.hadm_id", table
        assert fks[table, "subject_id"] == "patients.subject_id", table
    assert not [ref for ref in fks.values() if ref.startswith("diagnoses_icd.")]
    assert fks["poe_detail", "poe_id"] == "poe.poe_id"
    assert fks["emar_detail", "emar_id"] == "emar.emar_id"
    assert fks["labevents", "order_provider_id"] == "provider.provider_id"


def test_patient_admission_event_tree(hosp: tuple[Path, Draft, list[str]]) -> None:
    _, draft, _ = hosp
    schema = draft.schema
    parent = {t: (schema.parent_of(t) or (None, None, None))[1] for t in schema.tables}
    assert parent["admissions"] == "patients"
    for table in EVENTS_WITH_ADMISSION:
        assert parent[table] == "admissions", table
        assert schema.path_to_patient(table)[-1][2] == "patients"
    for table in EVENTS_SOMETIMES_OUTSIDE + ("omr",):
        assert parent[table] == "patients", table  # a row with no admission still has its patient
    assert parent["poe_detail"] == "poe"
    # the tree link comes first among the foreign keys, as the schema model reads it
    assert schema.tables["diagnoses_icd"].foreign_keys[0].name == "hadm_id"
    assert any("diagnoses_icd -> admissions" in n for n in draft.notes)


def test_dictionaries_are_reference_tables_and_their_codes_stay_codes(hosp: tuple[Path, Draft, list[str]]) -> None:
    _, draft, _ = hosp
    schema = draft.schema
    for name in ("d_labitems", "d_icd_diagnoses", "d_icd_procedures", "d_hcpcs", "provider"):
        assert schema.tables[name].reference, name
    itemid = schema.tables["labevents"].columns["itemid"]
    assert (itemid.type, itemid.references) == ("code", None)
    assert "d_labitems.itemid" in itemid.description
    assert schema.tables["diagnoses_icd"].columns["icd_code"].type == "code"
    assert any(n.startswith("dictionaries") and "d_labitems" in n for n in draft.notes)


def test_timestamps_keep_the_time_of_day(hosp: tuple[Path, Draft, list[str]]) -> None:
    _, draft, _ = hosp
    cols = {(t.name, c.name): c for t in draft.schema.tables.values() for c in t.columns.values()}
    for key in (("admissions", "admittime"), ("labevents", "charttime"), ("transfers", "intime"), ("poe", "ordertime")):
        assert (cols[key].type, cols[key].unit) == ("datetime", "timestamp"), key
    for key in (("patients", "dod"), ("procedures_icd", "chartdate"), ("omr", "chartdate")):
        assert (cols[key].type, cols[key].unit) == ("datetime", "date"), key
    assert draft.schema.tables["admissions"].order_by == "admittime"


def test_clinical_vocabulary_named_name_is_not_a_person(hosp: tuple[Path, Draft, list[str]]) -> None:
    folder, draft, _ = hosp
    schema = draft.schema
    for table, column in VOCABULARY_NAMES:
        col = schema.tables[table].columns[column]
        assert col.privacy is None and col.pseudonymisation is None, (table, column)
        assert col.type != "id"
    direct = {(t, c.name) for t, c in schema.direct_identifiers()}
    assert {t for t, _ in direct} <= set(schema.tables)
    assert all(c == "subject_id" for _, c in direct), direct
    assert schema.tables["patients"].columns["gender"].privacy == "quasi_identifier"
    assert schema.tables["patients"].columns["dod"].privacy == "sensitive"


def test_progress_is_reported_step_by_step(hosp: tuple[Path, Draft, list[str]]) -> None:
    _, _, messages = hosp
    text = "\n".join(messages)
    for step in ("read labevents", "column types of", "primary keys", "foreign keys of", "patient table",
                 "privacy tags", "checking the draft", "draft ready"):
        assert step in text, step
    assert all(m.startswith("[") and " s] " in m for m in messages)


# --------------------------------------------------------------------------------------------------
# small adversarial folders


def test_personal_names_on_an_event_table_are_caught_by_their_values(tmp_path: Path) -> None:
    people = ["Ann Lee", "Bo Kim", "Cy Park", "Di Choi", "Ed Jung", "Fay Han", "Gil Oh", "Hana Seo"]
    _write_csv(tmp_path / "patients.csv", ["patient_id", "sex"], [[f"p{i}", "MF"[i % 2]] for i in range(8)])
    visits = []
    for i in range(40):
        p = i % 8
        visits.append([f"v{i}", f"p{p}", people[p], ["Blood Culture", "Urine Culture"][i % 2], "Jo Nam" if i % 3 else None])
    _write_csv(tmp_path / "visits.csv", ["visit_id", "patient_id", "name", "test_name", "contact_name"], visits)
    _write_csv(tmp_path / "labs.csv", ["lab_id", "patient_id", "name"],
               [[f"l{i}", f"p{i % 8}", ["Blood Culture", "Urine Culture", "Sodium"][i % 3]] for i in range(40)])
    schema = draft_schema(tmp_path).schema
    visits_cols = schema.tables["visits"].columns
    assert visits_cols["name"].privacy == "direct_identifier"  # one personal name per patient
    assert visits_cols["contact_name"].privacy == "direct_identifier"  # says whose name it is
    assert visits_cols["test_name"].privacy is None
    assert schema.tables["labs"].columns["name"].privacy is None  # shared by every patient: vocabulary


def test_a_claims_table_without_a_patient_id_is_a_clear_question(tmp_path: Path) -> None:
    rows = [[f"2009{1 + i % 12:02d}{1 + i % 28:02d}", f"2009{1 + i % 12:02d}{1 + (i + 3) % 28:02d}", f"{1000 + i * 7.5:.2f}",
             ["4019", "25000", "V5866"][i % 3], i % 5] for i in range(60)]
    _write_csv(tmp_path / "claims.csv", ["CLM_FROM_DT", "CLM_THRU_DT", "CLM_PMT_AMT", "ICD9_DGNS_CD_1", "CLM_UTLZTN_DAY_CNT"], rows)
    with pytest.raises(DataDirError, match=r"no column of claims \(claims.csv\) can identify a patient.*date or a measure"):
        draft_schema(tmp_path)


def test_a_claims_table_with_only_a_row_id_makes_each_row_its_own_record(tmp_path: Path) -> None:
    rows = [[f"C{i:05d}", f"2009{1 + i % 12:02d}15", f"{1000 + i * 7.5:.2f}"] for i in range(60)]
    _write_csv(tmp_path / "claims.csv", ["CLM_ID", "CLM_FROM_DT", "CLM_PMT_AMT"], rows)
    draft = draft_schema(tmp_path)
    assert (draft.schema.patient.table, draft.schema.patient.column) == ("claims", "CLM_ID")
    assert any("its own patient record" in n for n in draft.notes)


def test_a_one_row_per_admission_table_does_not_steal_the_admission_key(tmp_path: Path) -> None:
    """hadm_id is unique in both admissions and a one-row-per-admission table: admissions owns it, the
    other table points at it, and events point at admissions whatever the table names' lengths."""
    _write_csv(tmp_path / "patients.csv", ["subject_id", "gender"], [[100 + i, "MF"[i % 2]] for i in range(10)])
    adm = [[100 + i % 10, 2000 + i, f"2150-01-{1 + i:02d} 10:00:00", "EMERGENCY"] for i in range(20)]
    _write_csv(tmp_path / "admissions.csv", ["subject_id", "hadm_id", "admittime", "admission_type"], adm)
    _write_csv(tmp_path / "drg_summaries_per_stay.csv", ["subject_id", "hadm_id", "drg_code"],
               [[r[0], r[1], ["871", "291"][i % 2]] for i, r in enumerate(adm)])
    _write_csv(tmp_path / "labevents.csv", ["labevent_id", "subject_id", "hadm_id", "valuenum"],
               [[i, adm[i % 20][0], adm[i % 20][1] if i % 4 else None, 1.5 + i] for i in range(60)])
    schema = draft_schema(tmp_path).schema
    assert schema.tables["admissions"].primary_key == ["hadm_id"]
    assert schema.tables["drg_summaries_per_stay"].primary_key != ["hadm_id"]
    fks = _fks(schema)
    assert fks["drg_summaries_per_stay", "hadm_id"] == "admissions.hadm_id"
    assert fks["labevents", "hadm_id"] == "admissions.hadm_id"
    assert "admissions.hadm_id" not in {fks.get(("admissions", "hadm_id"))}
    assert_fks_point_at_unique_keys(schema)


def test_a_link_to_another_patients_row_is_not_the_tree_link(tmp_path: Path) -> None:
    """Where the admission a row points at belongs to another patient, the row hangs under its own patient."""
    _write_csv(tmp_path / "patients.csv", ["subject_id", "gender"], [[100 + i, "MF"[i % 2]] for i in range(10)])
    adm = [[100 + i % 10, 2000 + i] for i in range(20)]
    _write_csv(tmp_path / "admissions.csv", ["subject_id", "hadm_id"], adm)
    rows = [[i, adm[i % 20][0] if i % 7 else adm[(i + 1) % 20][0], adm[i % 20][1]] for i in range(60)]
    _write_csv(tmp_path / "procedures.csv", ["procedure_id", "subject_id", "hadm_id"], rows)
    draft = draft_schema(tmp_path)
    assert draft.schema.parent_of("procedures")[1] == "patients"  # type: ignore[index]
    assert _fks(draft.schema)["procedures", "hadm_id"] == "admissions.hadm_id"
    assert any("name another patient" in n for n in draft.notes)
