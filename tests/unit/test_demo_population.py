"""The simulated kr_claims demo population: schema conformity, every rule, keys, realism, determinism."""
from __future__ import annotations

import datetime as dt
import re

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_schemas.io import load_schema
from data_schemas.model import Schema
from data_schemas.rules import violations_sql
from synth.demo_population import DISPENSING_BY_DAYS, simulate

KR_CLAIMS = load_schema("kr_claims")
ARROW_TYPES = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "DATE": pa.date32()}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return KR_CLAIMS


@pytest.fixture(scope="module")
def population() -> dict[str, pa.Table]:
    return simulate(3_000, seed=11)


@pytest.fixture(scope="module")
def frames(population: dict[str, pa.Table]) -> dict[str, pd.DataFrame]:
    return {name: table.to_pandas() for name, table in population.items()}


def rule_violations(schema: Schema, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Number of rows breaking each rule, keyed 'table.rule'."""
    con = duckdb.connect()
    try:
        for name, table in tables.items():
            con.register(name, table)
        relations = {t: t for t in schema.tables}
        return {
            f"{t.name}.{rule.name}": con.execute(
                violations_sql(schema, t.name, rule, relations, select="count(*)")
            ).fetchone()[0]
            for t in schema.tables.values()
            for rule in t.rules
        }
    finally:
        con.close()


# ----------------------------------------------------------------------------------------- schema


def test_tables_columns_and_types_follow_the_schema(schema: Schema, population: dict[str, pa.Table]) -> None:
    assert list(population) == list(schema.tables)
    for name, spec in schema.tables.items():
        table = population[name]
        assert table.column_names == spec.column_names, name
        for col in spec.columns.values():
            assert table.schema.field(col.name).type == ARROW_TYPES[col.sql_type], (name, col.name)
            if not col.nullable:
                assert table.column(col.name).null_count == 0, (name, col.name)
        assert table.num_rows > 0, name


def test_every_rule_holds(schema: Schema, population: dict[str, pa.Table]) -> None:
    assert all(schema.tables[t].rules for t in ("patients", "claims", "diagnoses"))
    broken = {rule: n for rule, n in rule_violations(schema, population).items() if n}
    assert broken == {}


def test_keys_are_unique_and_foreign_keys_resolve(schema: Schema, frames: dict[str, pd.DataFrame]) -> None:
    for name, spec in schema.tables.items():
        frame = frames[name]
        assert not frame.duplicated(spec.primary_key).any(), name
        for col in spec.foreign_keys:
            ref_table, ref_col = col.foreign_key  # type: ignore[misc]
            assert frame[col.name].isin(frames[ref_table][ref_col]).all(), (name, col.name)


def test_values_respect_vocabularies_ranges_and_patterns(schema: Schema, frames: dict[str, pd.DataFrame]) -> None:
    for name, spec in schema.tables.items():
        frame = frames[name]
        for col in spec.columns.values():
            values = frame[col.name].dropna()
            if col.values is not None:
                assert set(values) <= set(col.values), (name, col.name, set(values) - set(col.values))
            if col.type == "numerical":
                if col.minimum is not None:
                    assert (values >= col.minimum).all(), (name, col.name)
                if col.maximum is not None:
                    assert (values <= col.maximum).all(), (name, col.name)
            if col.code_pattern is not None:
                bad = values[~values.str.match(col.code_pattern)]
                assert bad.empty, (name, col.name, bad.head().tolist())


def test_identifiers_look_korean(frames: dict[str, pd.DataFrame]) -> None:
    patients = frames["patients"]
    assert patients.patient_id.str.fullmatch(r"P\d{7}").all()
    assert patients.name.str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").all()
    phones = patients.phone.dropna()
    assert phones.str.fullmatch(r"010-\d{4}-\d{4}").all()
    assert len(phones) > 0.8 * len(patients)
    front, back = patients.rrn.str[:6], patients.rrn.str[7:]
    assert (front.str[:2].astype(int) == patients.birth_year % 100).all()
    expected = np.where(patients.sex == "M", 1, 2) + np.where(patients.birth_year >= 2000, 2, 0)
    assert (back.str[0].astype(int) == expected).all()
    digits = (front + back).map(lambda s: [int(c) for c in s])
    weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    check = digits.map(lambda d: (11 - sum(w * x for w, x in zip(weights, d[:12])) % 11) % 10 == d[12])
    assert check.all()


# ----------------------------------------------------------------------------------------- consistency


def test_diagnoses_start_with_the_claims_main_and_sub_diagnosis(frames: dict[str, pd.DataFrame]) -> None:
    claims = frames["claims"].set_index("claim_id")
    dx = frames["diagnoses"]
    main = dx[dx.seq == 1].set_index("claim_id")
    assert main.index.is_unique and len(main) == len(claims)
    assert (main.kcd_code == claims.main_dx.loc[main.index]).all()
    sub = dx[dx.seq == 2].set_index("claim_id").kcd_code
    with_sub = claims.sub_dx.dropna()
    assert set(sub.index) == set(with_sub.index)
    assert (sub.loc[with_sub.index] == with_sub).all()
    seqs = dx.groupby("claim_id").seq.agg(["min", "max", "count"])
    assert (seqs["min"] == 1).all() and (seqs["max"] == seqs["count"]).all()
    assert not dx.duplicated(["claim_id", "kcd_code"]).any()


def test_detail_lines_and_costs_add_up(frames: dict[str, pd.DataFrame]) -> None:
    details, claims = frames["claim_details"], frames["claims"].set_index("claim_id")
    assert (details.amount == (details.quantity * details.unit_price).round()).all()
    lines = details.groupby("claim_id").line_no.agg(["min", "max", "count"])
    assert (lines["min"] == 1).all() and (lines["max"] == lines["count"]).all()
    summed = details.groupby("claim_id").amount.sum().reindex(claims.index, fill_value=0)
    assert (claims.total_cost >= summed).all()
    with_drugs = claims.index.isin(frames["prescriptions"].claim_id)
    assert (claims.total_cost[~with_drugs] == summed[~with_drugs]).all()
    categories = details.merge(claims.care_type, left_on="claim_id", right_index=True)
    assert set(categories.category[categories.care_type == "pharmacy"]) == {"dispensing"}
    assert (categories.care_type[categories.category == "room"] == "inpatient").all()
    consult = categories[categories.category == "consultation"]
    assert consult.treatment_code.str.fullmatch(r"AA[12]5\d|V1100").all()


def test_dispensing_fee_follows_the_longest_supply(frames: dict[str, pd.DataFrame]) -> None:
    longest = frames["prescriptions"].groupby("claim_id").days_supplied.max()
    details = frames["claim_details"]
    fee = details[details.treatment_code.str.match(r"Z4")].set_index("claim_id").treatment_code
    limits = np.array([days for days, _, _ in DISPENSING_BY_DAYS])
    codes = np.array([code for _, code, _ in DISPENSING_BY_DAYS])
    assert fee.index.is_unique
    assert (fee == codes[np.searchsorted(limits, longest.loc[fee.index])]).all()
    assert longest.loc[fee.index].between(1, 365).all()


def test_pharmacy_claims_follow_a_visit_the_same_day(frames: dict[str, pd.DataFrame]) -> None:
    claims = frames["claims"]
    pharmacy = claims[claims.care_type == "pharmacy"]
    visits = claims[claims.care_type.isin(["outpatient", "emergency"])]
    key = ["patient_id", "visit_date", "main_dx"]
    matched = pharmacy.merge(visits[key].drop_duplicates(), on=key, how="left", indicator=True)
    assert (matched["_merge"] == "both").all()
    assert pharmacy.claim_id.isin(frames["prescriptions"].claim_id).all()
    prescribed = claims.set_index("claim_id").care_type.loc[frames["prescriptions"].claim_id]
    assert set(prescribed) <= {"outpatient", "pharmacy"}


def test_claims_are_ordered_by_patient_and_date(frames: dict[str, pd.DataFrame]) -> None:
    claims = frames["claims"]
    assert claims.claim_id.is_monotonic_increasing
    ordered = claims.sort_values(["patient_id", "visit_date"], kind="stable")
    assert (ordered.index == claims.index).all()


# ----------------------------------------------------------------------------------------- realism


def test_population_structure_looks_korean(frames: dict[str, pd.DataFrame]) -> None:
    patients = frames["patients"]
    age = 2024 - patients.birth_year
    assert age.between(0, 101).all() and 38 < age.mean() < 50
    assert (age >= 65).mean() == pytest.approx(0.19, abs=0.04)
    regions = patients.region.value_counts(normalize=True)
    assert list(regions.index[:2]) == ["gyeonggi", "seoul"] and regions.iloc[0] == pytest.approx(0.27, abs=0.04)
    insurance = patients.insurance_type.value_counts(normalize=True)
    assert insurance["employee"] == pytest.approx(0.70, abs=0.04)
    assert insurance["self_employed"] == pytest.approx(0.27, abs=0.04)
    assert insurance["medical_aid"] == pytest.approx(0.03, abs=0.015)
    assert set(patients.income_decile[patients.insurance_type != "medical_aid"]) == set(range(1, 11))
    start = dt.date(2024, 1, 1)
    covered = (patients.eligibility_start <= start) & (patients.eligibility_end == dt.date(2024, 12, 31))
    assert covered.mean() > 0.9
    assert (patients.eligibility_start > start).sum() > 0
    dead = patients.death_date.notna()
    assert 0.002 < dead.mean() < 0.02
    assert (patients.eligibility_end[dead] == patients.death_date[dead]).all()
    assert age[dead].mean() > age.mean() + 20


def test_prevalence_depends_on_age_and_sex(frames: dict[str, pd.DataFrame]) -> None:
    patients = frames["patients"].set_index("patient_id")
    dx = frames["diagnoses"].merge(frames["claims"][["claim_id", "patient_id"]], on="claim_id")
    age = 2024 - patients.birth_year

    def prevalence(pattern: str, mask: pd.Series) -> float:
        having = set(dx.patient_id[dx.kcd_code.str.match(pattern)])
        return float(patients.index[mask].isin(list(having)).mean())

    assert prevalence(r"I10", age >= 60) > 0.3
    assert prevalence(r"I10", age >= 60) > 8 * prevalence(r"I10", age < 40)
    assert prevalence(r"E11", age >= 60) > 4 * prevalence(r"E11", age < 40)
    women, men = (age >= 60) & (patients.sex == "F"), (age >= 60) & (patients.sex == "M")
    assert prevalence(r"M17", women) > prevalence(r"M17", men)
    assert prevalence(r"J06", age < 10) > prevalence(r"J06", age >= 20)
    sex_of = patients.sex.loc[dx.patient_id].to_numpy()
    assert set(sex_of[dx.kcd_code.str.match(r"C61|N40").to_numpy()]) == {"M"}
    pregnant = dx.kcd_code.str.match(r"O").to_numpy()
    assert pregnant.any() and set(sex_of[pregnant]) == {"F"}
    assert age.loc[dx.patient_id[pregnant]].between(15, 50).all()


def test_utilisation_and_costs_are_plausible(frames: dict[str, pd.DataFrame]) -> None:
    claims, patients = frames["claims"], frames["patients"]
    per_patient_year = len(claims) / len(patients)
    assert 8 < per_patient_year < 20
    care = claims.care_type.value_counts(normalize=True)
    assert care["outpatient"] > 0.45 and care["pharmacy"] > 0.3 and care["inpatient"] < 0.03
    cost = claims.groupby("care_type").total_cost.median()
    assert cost["inpatient"] > 20 * cost["outpatient"]
    out = claims[claims.care_type == "outpatient"]
    by_institution = out.groupby("institution_type").total_cost.mean()
    assert by_institution["tertiary_hospital"] > by_institution["clinic"]
    assert (claims.total_cost.mean() / claims.total_cost.median()) > 2  # heavy right tail
    share = claims.patient_share.sum() / claims.total_cost.sum()
    assert 0.1 < share < 0.35
    admitted = claims[claims.care_type == "inpatient"]
    assert admitted.length_of_stay.median() >= 3
    aid = claims.patient_id.isin(patients.patient_id[patients.insurance_type == "medical_aid"])
    assert (claims.patient_share[aid] <= 2_000).all()


def test_prescriptions_match_conditions(frames: dict[str, pd.DataFrame]) -> None:
    rx = frames["prescriptions"].merge(frames["claims"][["claim_id", "main_dx", "sub_dx"]], on="claim_id")
    assert rx.atc_code.str.fullmatch(r"[A-Z]\d{2}[A-Z]{2}\d{2}").all()
    chronic = rx.atc_code.str.match(r"C09|C10A|A10B")
    assert rx.days_supplied[chronic].between(28, 90).all()
    antibiotics = rx.atc_code.str.match(r"J01")
    assert rx.days_supplied[antibiotics].between(3, 7).all()
    metformin = rx[rx.atc_code == "A10BA02"]
    assert metformin.main_dx.str.match(r"E11").mean() > 0.6
    chemo = rx.atc_code.str.match(r"L01")
    assert rx.main_dx[chemo].str.match(r"C").all()
    assert (rx.daily_dose > 0).all()


# ----------------------------------------------------------------------------------------- determinism


def test_same_seed_same_tables_other_seed_other_tables() -> None:
    first, again, other = simulate(400, seed=5), simulate(400, seed=5), simulate(400, seed=6)
    for name in first:
        assert first[name].equals(again[name]), name
    assert not all(first[name].equals(other[name]) for name in first)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=50),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    reference_date=st.dates(min_value=dt.date(2001, 1, 1), max_value=dt.date(2030, 12, 31)),
)
def test_small_populations_keep_every_rule(n: int, seed: int, reference_date: dt.date) -> None:
    schema = KR_CLAIMS
    tables = simulate(n, seed=seed, reference_date=reference_date)
    assert tables["patients"].num_rows == n
    assert {rule: count for rule, count in rule_violations(schema, tables).items() if count} == {}
    claims = tables["claims"].to_pandas()
    if len(claims):
        assert claims.visit_date.max() <= reference_date
        assert claims.visit_date.min() >= reference_date - dt.timedelta(days=365)


# ----------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patients": 0}, "The 'n_patients' parameter of simulate must be an int >= 1; got 0 instead."),
        ({"n_patients": -3}, "The 'n_patients' parameter of simulate must be an int >= 1; got -3 instead."),
        ({"n_patients": 2.5}, "The 'n_patients' parameter of simulate must be an int >= 1; got 2.5 instead."),
        ({"n_patients": True}, "The 'n_patients' parameter of simulate must be an int >= 1; got True instead."),
        ({"seed": -1}, "The 'seed' parameter of simulate must be an int >= 0; got -1 instead."),
        ({"seed": "7"}, "The 'seed' parameter of simulate must be an int >= 0; got '7' instead."),
        ({"reference_date": dt.date(1999, 12, 31)}, "The 'reference_date' parameter of simulate must be a "
         "datetime.date between 2001-01-01 and 2030-12-31; got datetime.date(1999, 12, 31) instead."),
        ({"reference_date": "2024-12-31"}, "The 'reference_date' parameter of simulate must be a datetime.date"),
        ({"reference_date": dt.datetime(2024, 12, 31)}, "The 'reference_date' parameter of simulate"),
    ],
)
def test_bad_parameters_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        simulate(**{"n_patients": 5, **kwargs})
