"""Per-patient records: roles from the schema, counts in SQL, the encoding, full-record hashes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_schemas.io import load_schema, parse_schema
from evaluate.privacy.records import build_records, fit_encoding, fit_record_spec, record_hashes
from synth.load import connect, frames_to_dataset

SINGLE = """
name: single
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier}
      name: {type: text, privacy: direct_identifier}
      sex: {type: categorical, values: [M, F], privacy: quasi_identifier}
      born: {type: numerical, integer: true, privacy: quasi_identifier}
      dx: {type: code, privacy: sensitive}
"""

MULTI = """
name: multi
patient: {table: people, column: pid}
tables:
  people:
    primary_key: [pid, year]
    columns:
      pid: {type: id, privacy: direct_identifier}
      year: {type: numerical, integer: true}
      flag: {type: categorical, values: ['1', '2']}
      cost: {type: numerical}
  visits:
    primary_key: vid
    columns:
      vid: {type: id}
      pid: {type: id, references: people.pid, privacy: direct_identifier}
      day: {type: datetime, unit: date}
      code: {type: code, privacy: sensitive}
"""


@pytest.fixture(scope="module")
def kr():
    from synth.demo_population import simulate

    schema = load_schema("kr_claims")
    dataset, report = frames_to_dataset(schema, simulate(200, seed=3), con=connect(), namespace="train")
    assert report.ok
    return dataset


def test_direct_identifiers_and_ids_never_enter_records(kr) -> None:
    spec = fit_record_spec(kr)
    banned = {(t, c.name) for t, tbl in kr.schema.tables.items() for c in tbl.columns.values()
              if c.privacy == "direct_identifier" or c.type in ("id", "text")}
    used = {(f.table, f.column) for f in spec.features if f.column}
    assert not used & banned
    skipped = {(s.table, s.column) for s in spec.skipped}
    assert ("patients", "rrn") in skipped and ("claims", "claim_id") in skipped
    names = [f.name for f in spec.features]
    assert "claims.n" in names and "claims.main_dx.mode" in names and "patients.sex" in names


def test_event_counts_and_sums_match_the_tables(kr) -> None:
    spec = fit_record_spec(kr, top_k=3)
    rec = build_records(kr, spec)
    truth = kr.con.execute(
        'SELECT patient_id, count(*), sum(total_cost) FROM train.claims GROUP BY 1'
    ).fetchall()
    by_key = dict(zip(rec.keys, range(len(rec))))
    for pid, n, cost in truth[:50]:
        i = by_key[pid]
        assert rec.columns["claims.n"][i] == n
        assert rec.columns["claims.total_cost.sum"][i] == pytest.approx(float(cost))
    no_claims = set(rec.keys) - {t[0] for t in truth}
    for pid in no_claims:
        assert rec.columns["claims.n"][by_key[pid]] == 0
    assert len([f for f in spec.features if f.name.startswith("claims.main_dx[")]) == 3


def test_records_follow_the_keys_asked(kr) -> None:
    spec = fit_record_spec(kr)
    everyone = build_records(kr, spec)
    keys = everyone.keys[[5, 1, 3]]
    some = build_records(kr, spec, keys)
    assert list(some.keys) == list(keys)
    assert np.array_equal(some.columns["claims.n"], everyone.columns["claims.n"][[5, 1, 3]])


def test_encoding_mismatch_adds_one_and_copies_are_identical(kr) -> None:
    spec = fit_record_spec(kr)
    rec = build_records(kr, spec)
    enc = fit_encoding(rec)
    x = enc.transform(rec)
    assert x.dtype == np.float32 and x.shape == (len(rec), enc.dim)
    one = rec.take(np.array([0, 0]))
    sex = one.columns["patients.sex"].copy()
    sex[1] = "F" if sex[0] == "M" else "M"
    one.columns["patients.sex"] = sex
    y = enc.transform(one)
    assert float(np.sum((y[0] - y[1]) ** 2)) == pytest.approx(1.0)
    assert np.array_equal(enc.transform(rec.take(np.array([4]))), x[[4]])


def test_single_table_schema_is_the_special_case() -> None:
    schema = parse_schema(SINGLE)
    frame = pd.DataFrame({"pid": ["a", "b", "c"], "name": ["x", "y", "z"], "sex": ["M", "F", "M"],
                          "born": [1950, 1960, 1970], "dx": ["I10", None, "E11"]})
    ds, report = frames_to_dataset(schema, {"people": frame})
    assert report.ok
    spec = fit_record_spec(ds)
    assert [f.name for f in spec.features] == ["people.sex", "people.born", "people.dx"]
    rec = build_records(ds, spec)
    assert list(rec.keys) == ["a", "b", "c"] and list(rec.columns["people.dx"]) == ["I10", None, "E11"]


def test_patient_table_with_several_rows_per_patient() -> None:
    schema = parse_schema(MULTI)
    people = pd.DataFrame({"pid": ["a", "a", "b"], "year": [2008, 2009, 2008], "flag": ["2", "1", "1"],
                           "cost": [10.0, 30.0, 5.0]})
    visits = pd.DataFrame({"vid": ["v1", "v2", "v3"], "pid": ["a", "a", "b"],
                           "day": pd.to_datetime(["2008-01-01", "2008-01-11", "2009-05-05"]), "code": ["X", "X", "Y"]})
    ds, report = frames_to_dataset(schema, {"people": people, "visits": visits})
    assert report.ok
    rec = build_records(ds, fit_record_spec(ds))
    a = list(rec.keys).index("a")
    assert rec.columns["people.n_rows"][a] == 2
    assert rec.columns["people.flag"][a] == "2"  # first row in primary-key order
    assert rec.columns["people.cost"][a] == pytest.approx(20.0)
    assert rec.columns["visits.day.span"][a] == pytest.approx(10.0)
    assert rec.columns["visits.code.mode"][a] == "X"


def test_record_hashes_ignore_ids_and_row_order() -> None:
    schema = parse_schema(MULTI)
    people = pd.DataFrame({"pid": ["a", "a", "b"], "year": [2008, 2009, 2008], "flag": ["2", "1", "1"], "cost": [1.0, 2.0, 3.0]})
    visits = pd.DataFrame({"vid": ["v1", "v2"], "pid": ["a", "a"], "day": pd.to_datetime(["2008-01-01", "2008-02-01"]),
                           "code": ["X", "Y"]})
    con = connect()
    one, _ = frames_to_dataset(schema, {"people": people, "visits": visits}, con=con, namespace="one")
    renamed = people.assign(pid=people.pid.map({"a": "q", "b": "r"})).iloc[::-1]
    moved = visits.assign(pid="q", vid=["w9", "w8"]).iloc[::-1]
    two, _ = frames_to_dataset(schema, {"people": renamed, "visits": moved}, con=con, namespace="two")
    k1, h1 = record_hashes(one)
    k2, h2 = record_hashes(two)
    assert list(k1) == ["a", "b"] and list(k2) == ["q", "r"]
    assert np.array_equal(h1, h2)
    changed = visits.assign(code=["X", "Z"])
    three, _ = frames_to_dataset(schema, {"people": people, "visits": changed}, con=con, namespace="three")
    h3 = record_hashes(three)[1]
    assert h3[0] != h1[0] and h3[1] == h1[1]


def _county_records(counties: list[str], costs: list[float]):
    from evaluate.privacy.records import Feature, Records, RecordSpec

    feats = (Feature("people.county", "categorical", "patient", "people", "county", "", "quasi_identifier"),
             Feature("people.cost", "numeric", "patient", "people", "cost", ""))
    spec = RecordSpec("t", "people", "pid", feats)
    keys = np.array([f"p{i}" for i in range(len(counties))], dtype=object)
    return Records(keys, {"people.county": np.array(counties, dtype=object), "people.cost": np.array(costs, dtype=float)}, spec)


def test_rare_category_values_stay_apart_and_extreme_numbers_are_capped() -> None:
    # 200 counties, most held by one or two patients: beyond the 30 most frequent they used to be one
    # "other" slot, so two patients of different rare counties looked identical on that column; now a
    # column with more than max_categories values gets a sign code per value
    rng = np.random.default_rng(0)
    counties = [f"c{i:03d}" for i in range(200)] + [f"c{i:03d}" for i in range(40)] * 5
    train = _county_records(counties, list(rng.normal(100, 10, len(counties))))
    enc = fit_encoding(train, max_categories=30)
    assert enc.dim == len(enc.labels) and enc.labels[0] == "people.cost"
    probe = _county_records(["c150", "c150", "c151", "c000", "never-seen", None], [100.0] * 6)
    x = enc.transform(probe)
    sq = lambda i, j: float(np.sum((x[i] - x[j]) ** 2))  # noqa: E731
    assert sq(0, 1) == 0.0  # the same rare county: identical
    assert 0.2 < sq(0, 2) < 2.0 and 0.2 < sq(0, 3) < 2.0  # two different counties: about one mismatch
    assert 0.2 < sq(0, 4) < 2.0 and sq(4, 5) == pytest.approx(1.0)  # an unseen value and a missing one are apart too
    codes = enc.transform(_county_records(counties, [100.0] * len(counties)))[:200, 1:]
    pairs = ((codes[:, None, :] - codes[None, :, :]) ** 2).sum(-1)[np.triu_indices(200, 1)]
    assert pairs.min() > 0.0 and abs(pairs.mean() - 1.0) < 0.03  # every pair apart, one mismatch on average
    # a generator's absurd amount is capped half a robust range beyond the training band: no far-off hub
    far = enc.transform(_county_records(["c000", "c000"], [1e9, 1e5]))
    assert far[0, 0] == far[1, 0] and far[0, 0] < 2.0
