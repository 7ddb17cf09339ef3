"""Generator contract: every registered generator fits and samples a valid cohort; identifiers never reach one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_schemas.io import load_schema
from synth.errors import GeneratorError, NotFittedError, UnknownGeneratorError
from synth.generators import GENERATORS, Generator, describe_generators, get_generator, training_data
from synth.generators.baselines import IndependentGenerator
from synth.generators.hma import hma_limits_problem
from synth.load import frames_to_dataset
from synth.pipeline import make_generator
from synth.split import split_patients

SCHEMA = load_schema("kr_claims")
SMALL_NEURAL = {"epochs": 1, "batch_size": 100, "max_rows_per_table": 200}
PARAMS: dict[str, dict] = {"ctgan": {**SMALL_NEURAL, "pac": 10}, "tvae": SMALL_NEURAL, "par": {"epochs": 1},
                           "dp_mst": {"epsilon": 1000.0}}  # 120 patients at epsilon 1 may rightly sample no claims


@pytest.fixture(scope="module")
def kr_train():
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(SCHEMA, simulate(150, seed=5))
    assert report.ok
    train, holdout, _ = split_patients(dataset, seed=1)
    return train


MULTI_TABLE = sorted(set(GENERATORS) - {"hma"})


@pytest.mark.parametrize("name", MULTI_TABLE)
def test_every_generator_samples_a_valid_cohort(name: str, kr_train) -> None:
    generator = make_generator(name, PARAMS.get(name, {}), allow_unsafe=True)
    generator.fit(kr_train)
    cohort = generator.sample(40, seed=3)  # the base class validates it against the schema
    counts = cohort.row_counts()
    assert counts["patients"] == 40
    assert counts["claims"] > 0
    empty = cohort.con.execute(
        f"SELECT count(*) FILTER (WHERE name IS NOT NULL OR rrn IS NOT NULL OR phone IS NOT NULL) FROM {cohort.sql_name('patients')}"
    ).fetchall()[0][0]
    assert empty == 0
    report = generator.last_sample_report_
    assert report is not None
    assert all(c.violations >= c.dropped for c in report.rules.values())


def test_hma_refuses_schemas_beyond_its_limits(kr_train) -> None:
    assert "depth 3" in (hma_limits_problem(SCHEMA) or "")
    with pytest.raises(GeneratorError, match="hma cannot model schema kr_claims: relationship depth 3"):
        get_generator("hma").fit(kr_train)


def test_categorical_text_frames_hold_the_same_values(kr_train) -> None:
    """dp_mst's compact frames (text columns as categoricals) equal the plain frames value for value, nulls included."""
    plain = training_data(kr_train)
    compact = training_data(kr_train, categorical_text=True)
    assert GENERATORS["dp_mst"].categorical_text and not GENERATORS["cart"].categorical_text
    for name, frame in plain.frames.items():
        got = compact.frames[name]
        text = [c for c in frame.columns if frame[c].dtype == object]
        assert text, name  # every kr_claims table has text columns
        assert all(isinstance(got[c].dtype, pd.CategoricalDtype) for c in text), name
        assert [c for c in got.columns if isinstance(got[c].dtype, pd.CategoricalDtype)] == text, name
        assert got.memory_usage(deep=True).sum() < frame.memory_usage(deep=True).sum(), name
        pd.testing.assert_frame_equal(got.astype({c: object for c in text}), frame, check_exact=True)
    assert plain.frames["claims"]["sub_dx"].isna().any()  # a text column with nulls is covered


@pytest.mark.parametrize("values", [
    np.array([0, 7, 12345678, 123456789], dtype=np.int64),
    np.array([0.0, np.nan, 3.0, 99999999.0, 2.9]),
    pd.array([5, None, 0], dtype="Int64"),
    pd.Series([pd.NA] * 3),
    np.array([], dtype=np.int64),
    np.array([-3, 4], dtype=np.int64),
], ids=["ints", "floats-nan", "nullable", "all-missing", "empty", "negative"])
def test_synthetic_ids_read_as_one_f_string_per_key(values) -> None:
    """The column-wide ids equal the per-row rule they replace, ``f"{prefix}{int(v):08d}"`` or None."""
    from synth.generators.base import synthetic_ids

    expected = [None if pd.isna(v) else f"SPATPAT-{int(v):08d}" for v in values]
    assert list(synthetic_ids(values, "SPATPAT-")) == expected


def test_generators_see_no_identifiers(kr_train) -> None:
    data = training_data(kr_train)
    raw = {
        r[0]
        for t in ("patients", "claims")
        for r in kr_train.con.execute(f"SELECT DISTINCT CAST(patient_id AS VARCHAR) FROM {kr_train.sql_name(t)}").fetchall()
    }
    assert "name" not in data.frames["patients"] and "rrn" not in data.frames["patients"] and "phone" not in data.frames["patients"]
    for name, frame in data.frames.items():
        for col in SCHEMA.tables[name].columns_of_type("id"):
            assert frame[col.name].dtype.kind in "iu", (name, col.name)
        values = {str(v) for column in frame.columns for v in frame[column].dropna().unique()}
        assert not values & raw

    seen: list = []

    class Spy(IndependentGenerator):
        def _fit(self, data, progress):
            seen.append(data)
            super()._fit(data, progress)

    Spy().fit(kr_train)
    assert set(seen[0].frames["patients"].columns).isdisjoint({"name", "rrn", "phone"})


def test_rule_counts_include_violations_made_by_resampling(kr_train) -> None:
    """A resample that fixes one rule and breaks another counts the new violation (violations >= dropped)."""

    class Mender(IndependentGenerator):
        def _sample(self, n_patients, rng, seed):
            frames = super()._sample(n_patients, rng, seed)
            claims = frames["claims"].copy()
            claims["care_type"], claims["institution_type"] = "outpatient", "clinic"
            claims["length_of_stay"], claims["patient_share"], claims["total_cost"] = 0, 10, 100
            claims.loc[claims.index[0], "patient_share"] = 1000  # breaks patient_share_within_cost only
            frames["claims"] = claims
            return frames

        def _resample(self, table, frames, rows, rng):
            if table != "claims":
                return None
            # fixes the cost but makes a non-pharmacy claim at a pharmacy, every round
            return pd.DataFrame({"patient_share": [10] * len(rows), "institution_type": ["pharmacy"] * len(rows)})

    generator = Mender().fit(kr_train)
    generator.sample(5, seed=1)
    rules = generator.last_sample_report_.rules
    cost, pharmacy = rules["claims.patient_share_within_cost"], rules["claims.pharmacy_at_pharmacy"]
    assert (cost.violations, cost.resampled, cost.dropped) == (1, 1, 0)
    assert pharmacy.violations == 1 and pharmacy.dropped == 1
    assert all(c.violations >= c.dropped for c in rules.values())


@pytest.mark.parametrize("name", ["gaussian_copula", "independent", "copy"])
def test_same_seed_same_parquet_bytes(name: str, kr_train, tmp_path: Path) -> None:
    outputs = []
    for attempt in range(2):
        generator = make_generator(name, {}, allow_unsafe=True).fit(kr_train)
        if attempt == 0:  # another seed first: a sample depends on its seed only, not on earlier samples
            other = generator.sample(30, seed=10).write(tmp_path / "other")
        paths = generator.sample(30, seed=9).write(tmp_path / f"{attempt}")
        outputs.append({t: p.read_bytes() for t, p in paths.items()})
    assert outputs[0] == outputs[1]
    assert any(p.read_bytes() != outputs[0][t] for t, p in other.items())


def test_copy_returns_training_records(kr_train) -> None:
    cohort = make_generator("copy", {}, allow_unsafe=True).fit(kr_train).sample(20, seed=1)
    cols = "sex, birth_year, region, insurance_type, income_decile, eligibility_start, eligibility_end, death_date"
    cohort.con.register("train_patients", kr_train.to_arrow("patients"))
    copied = cohort.con.execute(
        f"SELECT count(*) FROM (SELECT {cols} FROM {cohort.sql_name('patients')} "
        f"INTERSECT ALL SELECT {cols} FROM train_patients)"
    ).fetchall()[0][0]
    assert copied == 20


def test_unsafe_generator_needs_allow_unsafe() -> None:
    with pytest.raises(GeneratorError, match="--allow-unsafe"):
        make_generator("copy", {})


def test_parameter_errors() -> None:
    with pytest.raises(UnknownGeneratorError, match="registered: .*gaussian_copula"):
        get_generator("gan9000")
    with pytest.raises(GeneratorError, match="unknown parameter\\(s\\) epoch for engine tvae; accepted: .*epochs"):
        get_generator("tvae", epoch=3)
    with pytest.raises(GeneratorError, match="unknown parameter\\(s\\) alpha for generator independent"):
        get_generator("independent", alpha=1)
    with pytest.raises(GeneratorError, match="'epochs' parameter of ctgan must be an int >= 1; got 0"):
        get_generator("ctgan", epochs=0)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_manifest_params_rebuild_the_generator(name: str) -> None:
    """A release's recorded parameters rebuild its generator (the shadow-model attack and audits rely on it)."""
    generator = get_generator(name)
    again = get_generator(name, **generator.get_params())
    assert again.get_params() == generator.get_params()


def test_not_fitted_and_bad_sample_size(kr_train, tmp_path: Path) -> None:
    generator = get_generator("independent")
    with pytest.raises(NotFittedError):
        generator.sample(5, seed=0)
    with pytest.raises(NotFittedError):
        generator.save(tmp_path / "m.pkl")
    generator.fit(kr_train)
    with pytest.raises(ValueError, match="'n_patients' parameter of sample must be an int >= 1; got 0"):
        generator.sample(0, seed=0)


def test_save_and_load_round_trip(kr_train, tmp_path: Path) -> None:
    generator = get_generator("gaussian_copula").fit(kr_train)
    generator.save(tmp_path / "model.pkl")
    loaded = Generator.load(tmp_path / "model.pkl")
    a = generator.sample(15, seed=2).to_arrow("claims")
    b = loaded.sample(15, seed=2).to_arrow("claims")
    assert a.equals(b)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(GeneratorError, match="junk.pkl"):
        Generator.load(tmp_path / "junk.pkl")


def test_hierarchical_keeps_dates_ordered_and_children_linked(kr_train) -> None:
    cohort = get_generator("gaussian_copula").fit(kr_train).sample(40, seed=4)
    # rows of an order_by table come out sorted within each parent
    dates = cohort.con.execute(f"SELECT patient_id, visit_date FROM {cohort.sql_name('claims')}").fetchall()
    by_patient: dict[str, list] = {}
    for pid, day in dates:
        by_patient.setdefault(pid, []).append(day)
    assert all(v == sorted(v) for v in by_patient.values())
    # children per parent stay in a plausible range of the training distribution
    per = np.array([len(v) for v in by_patient.values()])
    train_per = kr_train.con.execute(f"SELECT count(*) FROM {kr_train.sql_name('claims')} GROUP BY patient_id").fetchnumpy()
    assert per.mean() < 3 * list(train_per.values())[0].mean()


@pytest.fixture(scope="module")
def par_generator(kr_train):
    return make_generator("par", {"epochs": 1}).fit(kr_train)


def test_par_keeps_each_patients_claims_in_date_order(par_generator) -> None:
    assert par_generator.sequence_ == "claims"
    # the model's own output, before the base class sorts anything: claims in the order PAR drew them
    frames = par_generator._sample(20, np.random.default_rng(0), 0)
    claims = frames["claims"]
    assert len(claims) > 0 and claims["patient_id"].nunique() > 1
    assert claims.groupby("patient_id", sort=False)["visit_date"].apply(lambda s: s.is_monotonic_increasing).all()
    # in the cohort, claim ids number each sequence in drawn order: dates never go back in id order
    cohort = par_generator.sample(20, seed=5)
    rows = cohort.con.execute(
        f"SELECT patient_id, visit_date FROM {cohort.sql_name('claims')} ORDER BY patient_id, claim_id"
    ).fetchall()
    by_patient: dict[str, list] = {}
    for pid, day in rows:
        by_patient.setdefault(pid, []).append(day)
    assert len(by_patient) > 1 and all(v == sorted(v) for v in by_patient.values())
    # seeded: the same seed gives the same cohort, another seed another one
    again = par_generator.sample(20, seed=5)
    assert all(cohort.to_arrow(t).equals(again.to_arrow(t)) for t in SCHEMA.tables)
    assert not par_generator.sample(10, seed=6).to_arrow("claims").equals(cohort.to_arrow("claims"))


def test_par_parameter_errors(kr_train) -> None:
    with pytest.raises(GeneratorError, match="'epochs' parameter of par must be an int >= 1; got 0"):
        get_generator("par", epochs=0)
    with pytest.raises(GeneratorError, match="'sequence_table' parameter of par must be one of claims; got 'diagnoses'"):
        get_generator("par", epochs=1, sequence_table="diagnoses").fit(kr_train)


def test_describe_generators_lists_every_entry() -> None:
    rows = {r["name"]: r for r in describe_generators()}
    assert {"copy", "independent", "gaussian_copula", "ctgan", "tvae", "hierarchical", "hma", "par"} <= set(rows)
    assert rows["copy"]["unsafe"] and not rows["gaussian_copula"]["unsafe"]
    assert all(r["description"] and r["family"] for r in rows.values())
