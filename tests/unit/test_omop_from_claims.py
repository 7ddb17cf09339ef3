"""claims_to_omop: the simulated kr_claims population as an OMOP CDM v5.4 dataset that validates clean."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from data_schemas.io import load_schema
from synth.load import frames_to_dataset
from synth.omop_from_claims import (
    BAND_SIZE,
    LOCAL_CONCEPT_BASE,
    NEGATIVE,
    POSITIVE,
    VOCABULARY_BANDS,
    claims_to_omop,
    pseudo_concept_id,
)

OMOP = load_schema("omop_cdm")


@pytest.fixture(scope="module")
def omop(kr_frames: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return claims_to_omop(kr_frames)


def _df(table: pa.Table):  # type: ignore[no-untyped-def]
    return table.to_pandas(date_as_object=False)


def test_validates_with_zero_problems(omop: dict[str, pa.Table]) -> None:
    _, report = frames_to_dataset(OMOP, omop)
    assert report.problems == [], report.render()
    assert set(report.rows) == set(OMOP.tables)


def test_every_cdm_column_in_order_with_integer_ids(omop: dict[str, pa.Table]) -> None:
    assert set(omop) == set(OMOP.tables)
    for name, table in OMOP.tables.items():
        got = omop[name]
        assert got.column_names == list(table.columns), name
        for col in table.columns.values():
            if col.type == "id" or col.pattern == "^[0-9]+$":
                assert pa.types.is_integer(got.schema.field(col.name).type), f"{name}.{col.name}"
        key = table.primary_key[0]
        if name != "death":  # death's key is person_id
            ids = got.column(key).to_numpy()
            assert np.array_equal(ids, np.arange(1, got.num_rows + 1)), f"{name}.{key} is not 1..n"


def test_row_counts_follow_the_source(kr_frames: dict[str, pa.Table], omop: dict[str, pa.Table]) -> None:
    category = kr_frames["claim_details"].column("category")
    n_patients = kr_frames["patients"].num_rows
    expected = {
        "person": n_patients,
        "observation_period": n_patients,
        "visit_occurrence": kr_frames["claims"].num_rows,
        "condition_occurrence": kr_frames["diagnoses"].num_rows,
        "drug_exposure": kr_frames["prescriptions"].num_rows,
        "procedure_occurrence": pc.sum(pc.is_in(category, pa.array(["procedure", "imaging"]))).as_py(),
        "measurement": pc.sum(pc.equal(category, "lab")).as_py(),
        "death": n_patients - kr_frames["patients"].column("death_date").null_count,
    }
    assert {name: t.num_rows for name, t in omop.items()} == expected
    assert all(expected[name] > 0 for name in expected if name != "death")


def test_person_and_observation_period(kr_frames: dict[str, pa.Table], omop: dict[str, pa.Table]) -> None:
    patients, person, period = _df(kr_frames["patients"]), _df(omop["person"]), _df(omop["observation_period"])
    assert (person["person_source_value"] == patients["patient_id"]).all()
    assert (person["gender_concept_id"] == np.where(patients["sex"] == "M", 8507, 8532)).all()
    assert (person["year_of_birth"] == patients["birth_year"]).all()
    assert (person["race_concept_id"] == 0).all() and (person["ethnicity_concept_id"] == 0).all()
    # birth date from the resident registration number: YYMMDD
    born = person["birth_datetime"]
    assert born.notna().all()
    assert (born.dt.strftime("%y%m%d") == patients["rrn"].str[:6]).all()
    assert (born.dt.month == person["month_of_birth"]).all() and (born.dt.day == person["day_of_birth"]).all()
    assert (period["observation_period_start_date"] == patients["eligibility_start"]).all()
    assert (period["observation_period_end_date"] == patients["eligibility_end"]).all()


def test_birth_details_are_null_without_a_usable_rrn(kr_frames: dict[str, pa.Table]) -> None:
    patients = kr_frames["patients"]
    rrn = patients.column("rrn").to_pylist()
    rrn[0], rrn[1] = None, "991399-1234567"  # missing; month 13
    year = patients.column("birth_year").to_pylist()
    year[2] += 1  # disagrees with the number
    frames = dict(kr_frames)
    frames["patients"] = patients.set_column(patients.column_names.index("rrn"), "rrn", pa.array(rrn)).set_column(
        patients.column_names.index("birth_year"), "birth_year", pa.array(year, pa.int64())
    )
    person = claims_to_omop(frames)["person"]
    assert person.column("birth_datetime").to_pylist()[:3] == [None, None, None]
    assert person.column("month_of_birth").to_pylist()[:3] == [None, None, None]
    assert person.column("birth_datetime").null_count == 3
    _, report = frames_to_dataset(OMOP, claims_to_omop(frames))
    assert report.ok, report.render()


def test_visits(kr_frames: dict[str, pa.Table], omop: dict[str, pa.Table]) -> None:
    claims, visits = _df(kr_frames["claims"]), _df(omop["visit_occurrence"])
    assert (visits["visit_source_value"] == claims["claim_id"]).all()
    concepts = claims["care_type"].map({"inpatient": 9201, "outpatient": 9202, "emergency": 9203, "pharmacy": 581458})
    assert (visits["visit_concept_id"] == concepts).all()
    stay = np.where(claims["care_type"] == "inpatient", np.maximum(claims["length_of_stay"] - 1, 0), 0)
    days = (visits["visit_end_date"] - visits["visit_start_date"]).dt.days
    assert (days == stay).all()
    # the preceding visit is the same person's previous one
    prev = visits.dropna(subset=["preceding_visit_occurrence_id"])
    before = visits.set_index("visit_occurrence_id").loc[prev["preceding_visit_occurrence_id"].astype(int)]
    assert (before["person_id"].to_numpy() == prev["person_id"].to_numpy()).all()
    assert (before["visit_start_date"].to_numpy() <= prev["visit_start_date"].to_numpy()).all()
    assert (prev["preceding_visit_occurrence_id"] != prev["visit_occurrence_id"]).all()
    firsts = visits.groupby("person_id")["preceding_visit_occurrence_id"].apply(lambda s: s.isna().sum())
    assert (firsts == 1).all()


def test_events_point_at_their_visit(omop: dict[str, pa.Table]) -> None:
    visits = _df(omop["visit_occurrence"]).set_index("visit_occurrence_id")
    for name, date in (("condition_occurrence", "condition_start_date"), ("drug_exposure", "drug_exposure_start_date"),
                       ("procedure_occurrence", "procedure_date"), ("measurement", "measurement_date")):
        events = _df(omop[name])
        visit = visits.loc[events["visit_occurrence_id"]]
        assert (visit["person_id"].to_numpy() == events["person_id"].to_numpy()).all(), name
        assert (visit["visit_start_date"].to_numpy() == events[date].to_numpy()).all(), name


def test_conditions_drugs_procedures(kr_frames: dict[str, pa.Table], omop: dict[str, pa.Table]) -> None:
    dx, cond = _df(kr_frames["diagnoses"]), _df(omop["condition_occurrence"])
    assert (cond["condition_source_value"] == dx["kcd_code"]).all()
    assert (cond["condition_status_concept_id"] == np.where(dx["dx_type"] == "main", 32902, 32908)).all()
    assert (cond["condition_concept_id"] == [pseudo_concept_id("KCD", c) for c in dx["kcd_code"]]).all()
    rx, drugs = _df(kr_frames["prescriptions"]), _df(omop["drug_exposure"])
    assert (drugs["drug_source_value"] == rx["atc_code"]).all()
    assert (drugs["days_supply"] == rx["days_supplied"]).all()
    assert np.allclose(drugs["quantity"], rx["daily_dose"] * rx["days_supplied"])
    span = (drugs["drug_exposure_end_date"] - drugs["drug_exposure_start_date"]).dt.days
    assert (span == rx["days_supplied"] - 1).all()
    procedures = _df(omop["procedure_occurrence"])
    assert procedures["procedure_source_value"].str.match(r"^[A-Z]{1,2}[0-9]{3,4}[A-Z0-9]?$").all()
    assert (procedures["quantity"] >= 1).all()


def test_lab_results_are_plausible(kr_frames: dict[str, pa.Table], omop: dict[str, pa.Table]) -> None:
    m = _df(omop["measurement"])
    numeric = m["value_as_number"].notna()
    assert (m.loc[numeric, "value_as_number"] >= 0).all()
    qualitative = m["value_as_concept_id"].notna()
    assert (numeric ^ qualitative).all(), "every result is either a number or a concept"
    assert set(m.loc[qualitative, "value_as_concept_id"].astype(int)) <= {NEGATIVE, POSITIVE}
    # diabetic patients' HbA1c is higher than the others'
    claims = _df(kr_frames["claims"]).reset_index(drop=True)
    diabetic = claims["main_dx"].str.startswith("E11").to_numpy()[m["visit_occurrence_id"].to_numpy() - 1]
    hba1c = (m["measurement_source_value"] == "C3750").to_numpy()
    if (hba1c & diabetic).any() and (hba1c & ~diabetic).any():
        assert m.loc[hba1c & diabetic, "value_as_number"].mean() > m.loc[hba1c & ~diabetic, "value_as_number"].mean()


def test_deterministic_and_seeded(kr_frames: dict[str, pa.Table], omop: dict[str, pa.Table]) -> None:
    again = claims_to_omop(kr_frames)
    assert all(again[name].equals(omop[name]) for name in omop)
    other = claims_to_omop(kr_frames, seed=1)
    assert all(other[name].equals(omop[name]) for name in omop if name != "measurement")
    assert not other["measurement"].column("value_as_number").equals(omop["measurement"].column("value_as_number"))


def test_pseudo_concept_ids() -> None:
    assert pseudo_concept_id("KCD", "I10") == pseudo_concept_id("KCD", "I10")
    assert pseudo_concept_id("KCD", "I10") != pseudo_concept_id("KCD", "I11")
    for vocabulary, band in VOCABULARY_BANDS.items():
        value = pseudo_concept_id(vocabulary, "X00")
        assert LOCAL_CONCEPT_BASE + band * BAND_SIZE <= value < LOCAL_CONCEPT_BASE + (band + 1) * BAND_SIZE
        assert value < 2**31 - 1  # the CDM's concept_id is a 32-bit integer
    with pytest.raises(ValueError, match="'vocabulary' parameter of pseudo_concept_id must be one of KCD, ATC, KR_FEE; got 'LOINC'"):
        pseudo_concept_id("LOINC", "718-7")


def test_bad_input_raises(kr_frames: dict[str, pa.Table]) -> None:
    frames = {k: v for k, v in kr_frames.items() if k != "prescriptions"}
    with pytest.raises(ValueError, match="missing: prescriptions"):
        claims_to_omop(frames)
    claims = kr_frames["claims"]
    ids = claims.column("patient_id").to_pylist()
    ids[0] = "P9999999"
    orphan = dict(kr_frames, claims=claims.set_column(claims.column_names.index("patient_id"), "patient_id", pa.array(ids)))
    with pytest.raises(ValueError, match=r"1 claims.patient_id value\(s\) have no matching row \(e.g. 'P9999999'\)"):
        claims_to_omop(orphan)


@pytest.mark.slow
def test_gaussian_copula_release_on_omop() -> None:
    from synth.demo_population import simulate
    from synth.generators import get_generator
    from synth.split import split_patients

    frames = claims_to_omop(simulate(150, seed=7))
    dataset, report = frames_to_dataset(OMOP, frames)
    assert report.ok, report.render()
    train, _holdout, _record = split_patients(dataset, seed=0, holdout_fraction=0.2)
    train_rows = train.row_counts()
    generator = get_generator("gaussian_copula").fit(train)
    synthetic = generator.sample(100, seed=1)  # the base class re-validates against omop_cdm
    rows = synthetic.row_counts()
    assert rows["person"] == 100
    assert all(rows[name] > 0 for name, n in train_rows.items() if n > 0 and name != "death"), rows
    # secondary keys: every event's visit is one of the same person's visits, starting on or before the event
    # where the person has one; no event lacks a visit, as in training; a visit's predecessor is the person's
    visits = synthetic.to_arrow("visit_occurrence").to_pandas().set_index("visit_occurrence_id")
    for name, date in (("condition_occurrence", "condition_start_date"), ("drug_exposure", "drug_exposure_start_date"),
                       ("procedure_occurrence", "procedure_date"), ("measurement", "measurement_date")):
        events = synthetic.to_arrow(name).to_pandas()
        assert events["visit_occurrence_id"].notna().all(), name
        visit = visits.loc[events["visit_occurrence_id"]]
        assert (visit["person_id"].to_numpy() == events["person_id"].to_numpy()).all(), name
        first = visits.groupby("person_id")["visit_start_date"].min().reindex(events["person_id"]).to_numpy()
        before = events[date].to_numpy() >= first  # a visit on or before the event exists
        assert (visit["visit_start_date"].to_numpy()[before] <= events[date].to_numpy()[before]).all(), name
    prev = visits.dropna(subset=["preceding_visit_occurrence_id"])
    earlier = visits.loc[prev["preceding_visit_occurrence_id"]]
    assert (earlier["person_id"].to_numpy() == prev["person_id"].to_numpy()).all()
    assert (earlier["visit_start_date"].to_numpy() <= prev["visit_start_date"].to_numpy()).all()
