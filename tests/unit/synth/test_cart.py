"""The cart generator's structure guarantees, and min_patients (rare values never emitted) on non-DP generators."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_schemas.io import load_schema, parse_schema
from synth.errors import GeneratorError
from synth.generators import get_generator
from synth.generators.rare import _ladder
from synth.load import frames_to_dataset
from synth.split import split_patients

KR = load_schema("kr_claims")


@pytest.fixture(scope="module")
def kr_train():
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(KR, simulate(300, seed=11))
    assert report.ok
    train, _holdout, _ = split_patients(dataset, seed=2)
    return train


@pytest.fixture(scope="module")
def kr_cart(kr_train):
    generator = get_generator("cart").fit(kr_train)
    return generator, generator.sample(240, seed=1)


def _claims(ds) -> pd.DataFrame:
    return ds.con.execute(
        f"SELECT c.patient_id, c.visit_date, c.care_type, p.eligibility_start, p.eligibility_end "
        f"FROM {ds.sql_name('claims')} c JOIN {ds.sql_name('patients')} p USING (patient_id) ORDER BY c.patient_id, c.visit_date"
    ).df()


def _same_day_share(claims: pd.DataFrame) -> float:
    gaps = claims.groupby("patient_id")["visit_date"].diff().dropna().dt.days
    return float((gaps == 0).mean())


def test_cart_claims_stay_in_order_within_eligibility_and_keep_same_day_clusters(kr_train, kr_cart) -> None:
    generator, cohort = kr_cart
    syn, real = _claims(cohort), _claims(kr_train)
    assert len(syn) > 0.6 * len(real) * 240 / kr_train.row_counts()["patients"]
    assert (syn["visit_date"] >= syn["eligibility_start"]).all() and (syn["visit_date"] <= syn["eligibility_end"]).all()
    # a visit and its pharmacy fill on the same day: the share of same-day consecutive claims is kept
    assert abs(_same_day_share(syn) - _same_day_share(real)) < 0.1, (_same_day_share(syn), _same_day_share(real))
    # patients without claims (zero inflation) exist in both
    per_patient_real = kr_train.row_counts()["claims"] / kr_train.row_counts()["patients"]
    per_patient_syn = len(syn) / 240
    assert 0.75 < per_patient_syn / per_patient_real < 1.33
    assert generator.last_sample_report_ is not None


def test_cart_rows_come_from_training_values_not_whole_records(kr_train, kr_cart) -> None:
    _generator, cohort = kr_cart
    cols = "sex, birth_year, region, insurance_type, income_decile, eligibility_start, eligibility_end"
    real = kr_train.con.execute(f"SELECT {cols} FROM {kr_train.sql_name('patients')}").df()
    syn = cohort.con.execute(f"SELECT {cols} FROM {cohort.sql_name('patients')}").df()
    copies = syn.merge(real.drop_duplicates(), how="inner").shape[0]
    assert copies < 0.2 * len(syn)  # donors are per column: whole training patients are not replayed
    assert set(syn["region"].dropna()) <= set(real["region"].dropna())


EMR = """
name: mini_emr
patient: {table: patients, column: pid}
tables:
  patients:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier, nullable: false}
      sex: {type: categorical, values: [M, F], nullable: false}
      birth: {type: datetime, unit: date, nullable: false}
  admissions:
    primary_key: aid
    order_by: admit
    columns:
      aid: {type: id, nullable: false}
      pid: {type: id, references: patients.pid, privacy: direct_identifier, nullable: false}
      admit: {type: datetime, nullable: false}
      discharge: {type: datetime, nullable: false}
      ward: {type: categorical, nullable: false}
    rules:
      - {name: discharge_after_admit, check: discharge >= admit}
  events:
    order_by: at
    columns:
      pid: {type: id, references: patients.pid, privacy: direct_identifier, nullable: false}
      aid: {type: id, references: admissions.aid, nullable: false}
      at: {type: datetime, nullable: false}
      kind: {type: categorical, nullable: false}
      code: {type: code, pattern: '^[A-Z][0-9]{2}(\\.[0-9])?$', nullable: false}
"""


def _mini_emr(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Patients with 0-4 admissions each, 1-6 events inside each admission, in time order."""
    rng = np.random.default_rng(seed)
    pats, adms, evs = [], [], []
    for p in range(n):
        birth = pd.Timestamp("1950-01-01") + pd.Timedelta(days=int(rng.integers(0, 15000)))
        pats.append({"pid": f"p{p}", "sex": "MF"[p % 2], "birth": birth})
        t = pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        for a in range(int(rng.choice([0, 1, 1, 2, 3, 4]))):
            t = t + pd.Timedelta(days=int(rng.integers(5, 200)), hours=int(rng.integers(0, 23)))
            stay = pd.Timedelta(days=int(rng.integers(1, 9)))
            aid = f"a{p}_{a}"
            adms.append({"aid": aid, "pid": f"p{p}", "admit": t, "discharge": t + stay, "ward": ["icu", "med", "surg"][a % 3]})
            at = t
            for _ in range(int(rng.integers(1, 7))):
                at = min(at + pd.Timedelta(hours=int(rng.integers(0, 30))), t + stay)
                evs.append({"pid": f"p{p}", "aid": aid, "at": at, "kind": str(rng.choice(["lab", "drug", "note"])),
                            "code": f"{'ABC'[int(rng.integers(0, 3))]}{int(rng.integers(10, 14))}.{int(rng.integers(0, 3))}"})
    return {"patients": pd.DataFrame(pats), "admissions": pd.DataFrame(adms), "events": pd.DataFrame(evs)}


def test_cart_keeps_events_inside_their_admission() -> None:
    schema = parse_schema(EMR, source="<test>")
    dataset, report = frames_to_dataset(schema, _mini_emr(160, 3))
    assert report.ok, report.render()
    train, _holdout, _ = split_patients(dataset, seed=0)
    generator = get_generator("cart").fit(train)
    cohort = generator.sample(120, seed=4)
    assert ("events", "aid") in generator.tree_keys_  # events hang under their admission, not only the patient
    joined = cohort.con.execute(
        f"SELECT e.pid AS epid, a.pid AS apid, e.at, a.admit, a.discharge, e.aid FROM {cohort.sql_name('events')} e "
        f"JOIN {cohort.sql_name('admissions')} a ON e.aid = a.aid"
    ).df()
    n_events = cohort.row_counts()["events"]
    assert len(joined) == n_events > 0  # every event's admission exists
    assert (joined["epid"] == joined["apid"]).all()  # ... and belongs to the event's patient
    assert (joined["at"] >= joined["admit"]).all() and (joined["at"] <= joined["discharge"]).all()
    per_adm_real = train.row_counts()["events"] / train.row_counts()["admissions"]
    per_adm_syn = n_events / cohort.row_counts()["admissions"]
    assert 0.8 < per_adm_syn / per_adm_real < 1.25
    per_pat_real = train.row_counts()["admissions"] / train.row_counts()["patients"]
    assert 0.8 < (cohort.row_counts()["admissions"] / 120) / per_pat_real < 1.25


def _heavy_tailed_emr(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """The mini EMR where 6% of patients hold most events (Synthea's observations) and a dose table numbers
    its rows 1..n within each patient across admissions (MIMIC's emar_detail.emar_seq)."""
    frames = _mini_emr(n, seed)
    rng = np.random.default_rng(seed + 1)
    events, adms = frames["events"], frames["admissions"]
    heavy = adms.drop_duplicates("pid").sample(frac=0.06, random_state=seed)
    extra = []
    for _, adm in heavy.iterrows():
        for h in range(int(rng.integers(150, 250))):
            extra.append({"pid": adm["pid"], "aid": adm["aid"], "at": adm["admit"] + pd.Timedelta(minutes=h),
                          "kind": "lab", "code": "A10.0"})
    frames["events"] = pd.concat([events, pd.DataFrame(extra)], ignore_index=True)
    doses = adms[["pid", "aid", "admit"]].loc[adms.index.repeat(rng.integers(1, 4, len(adms)))].reset_index(drop=True)
    doses["seq"] = doses.groupby("pid").cumcount() + 1.0
    doses["drug"] = rng.choice(["x", "y", "z"], len(doses))
    frames["doses"] = doses[["pid", "aid", "seq", "drug"]]
    return frames


DOSES = """
  doses:
    primary_key: [pid, seq]
    columns:
      pid: {type: id, references: patients.pid, privacy: direct_identifier, nullable: false}
      aid: {type: id, references: admissions.aid, nullable: false}
      seq: {type: numerical, nullable: false}
      drug: {type: categorical, nullable: false}
"""


def test_cart_rows_per_patient_stay_near_training_on_heavy_tails_and_sequence_keys_do_not_collide() -> None:
    schema = parse_schema(EMR + DOSES, source="<test>")
    dataset, report = frames_to_dataset(schema, _heavy_tailed_emr(200, 5))
    assert report.ok, report.render()
    train, _holdout, _ = split_patients(dataset, seed=0)
    counts = train.row_counts()
    generator = get_generator("cart").fit(train)
    assert generator.numbered_ == {"doses": (["pid"], "seq", 1.0)}
    for seed in range(4):  # small cohorts: a few heavy patients more or less swing the total without calibration
        cohort = generator.sample(60, seed=seed)
        syn = cohort.row_counts()
        for table in ("admissions", "events", "doses"):
            ratio = (syn[table] / 60) / (counts[table] / counts["patients"])
            assert 0.9 < ratio < 1.1, (seed, table, ratio)
        doses = cohort.con.execute(f"SELECT pid, seq FROM {cohort.sql_name('doses')} ORDER BY pid, seq").df()
        assert (doses.groupby("pid")["seq"].transform(lambda s: s - np.arange(1, len(s) + 1)) == 0).all()
        assert generator.last_sample_report_.rules["doses.primary_key"].dropped == 0


# -- min_patients ------------------------------------------------------------------------------------


def test_code_ladder() -> None:
    assert _ladder("E11.9") == ["E11"]
    assert _ladder("C09AA05") == ["C09AA0", "C09AA", "C09A", "C09"]
    assert _ladder("401") == []


def test_a_code_climbs_to_its_prefix_only_in_a_vocabulary_of_prefixes() -> None:
    """ICD-10 ``E11.9`` generalises to its category ``E11``; RxNorm ``1049625`` does not become ``10496`` (a prefix
    of an RxNorm number is another concept or none, though five patients' codes start with it): it takes the
    column's stand-in, a code K patients hold."""
    from synth.generators.rare import fit_rare

    schema = parse_schema(
        """
name: mini_vocab
patient: {table: patients, column: pid}
tables:
  patients:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier, nullable: false}
      rx: {type: code, vocabulary: RXNORM, nullable: false}
      dx: {type: code, vocabulary: ICD10, nullable: false}
""",
        source="<test>",
    )
    rare = [str(1049625 + 5 * i) for i in range(5)]  # five one-patient codes sharing the prefix 10496
    frame = pd.DataFrame({
        "pid": np.arange(12),
        "rx": rare + ["313782"] * 7,
        "dx": ["E11.9", "E11.2", "E11.3", "E11.4", "E11.5"] + ["I10"] * 7,
    })
    model = fit_rare(schema, {"patients": frame}, 5)
    out, replaced = model.apply({"patients": frame.iloc[:5]})
    assert replaced == 10
    assert out["patients"]["dx"].tolist() == ["E11"] * 5
    assert out["patients"]["rx"].tolist() == ["313782"] * 5


def test_min_patients_refuses_a_required_column_with_no_common_value() -> None:
    """A column that may not be missing and whose every value is held by fewer than K patients has no stand-in: the
    old code emitted its most held value (2 patients here), a rare value, on every row. Now the fit is refused, and
    the error names the column, K and the most held count; nullable, the same column goes missing instead. A code
    whose rare values all climb to a common parent needs no stand-in and is accepted."""
    from synth.generators.rare import fit_rare

    text = """
name: mini_required
patient: {table: patients, column: pid}
tables:
  patients:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier, nullable: false}
      site: {type: categorical, nullable: false}
      dx: {type: code, vocabulary: ICD10, nullable: false}
"""
    frame = pd.DataFrame({"pid": np.arange(12), "site": [f"s{i // 2}" for i in range(12)],
                          "dx": [f"E11.{i % 9}" for i in range(12)]})  # six sites of 2 patients; one E11 group of 12
    with pytest.raises(GeneratorError, match=r"min_patients=5: no value of patients.site is held by 5 or more .*most held, 2"):
        fit_rare(parse_schema(text, source="<test>"), {"patients": frame}, 5)
    nullable = parse_schema(text.replace("site: {type: categorical, nullable: false}", "site: {type: categorical}"),
                            source="<test>")
    out, _ = fit_rare(nullable, {"patients": frame}, 5).apply({"patients": frame})
    assert out["patients"]["site"].isna().all() and set(out["patients"]["dx"]) == {"E11"}


@pytest.fixture(scope="module")
def kr_with_rare():
    """The small population with one code planted on a single training patient (a rare disease)."""
    from synth.demo_population import simulate

    frames = {k: v.to_pandas() for k, v in simulate(300, seed=11).items()}
    claims = frames["claims"]
    first = claims.index[claims["patient_id"] == claims["patient_id"].iloc[0]]
    claims.loc[first, "main_dx"] = "Q87.4"  # held by one patient only
    dataset, report = frames_to_dataset(KR, frames)
    assert report.ok
    train, _holdout, _ = split_patients(dataset, seed=2)
    held = train.con.execute(f"SELECT count(DISTINCT patient_id) FROM {train.sql_name('claims')} WHERE main_dx = 'Q87.4'").fetchone()[0]
    return train, held


def _patients_per_code(ds, table: str, column: str) -> pd.Series:
    key = "patient_id"
    frame = ds.con.execute(f"SELECT DISTINCT {key}, {column} AS v FROM {ds.sql_name(table)} WHERE {column} IS NOT NULL").df()
    return frame.groupby("v")[key].nunique()


@pytest.mark.parametrize("name", ["cart", "gaussian_copula", "independent", "copy"])
def test_min_patients_never_emits_a_rare_code(name: str, kr_with_rare) -> None:
    train, held = kr_with_rare
    k = 5
    params = {"min_patients": k}
    generator = get_generator(name, **params).fit(train)
    cohort = generator.sample(300, seed=7)
    real = _patients_per_code(train, "claims", "main_dx")
    syn = _patients_per_code(cohort, "claims", "main_dx")
    rare = set(real.index[real < k])
    if held:
        assert "Q87.4" in rare
    assert not (set(syn.index) & rare), sorted(set(syn.index) & rare)[:5]
    # what replaced a rare code is a parent group held by >= k training patients (or a common code)
    for code in set(syn.index) - set(real.index):
        group = train.con.execute(
            f"SELECT count(DISTINCT patient_id) FROM {train.sql_name('claims')} WHERE starts_with(main_dx, ?)", [code]
        ).fetchone()[0]
        assert group >= k, code
    assert generator.last_sample_report_.generalised_values >= 0
    for col in ("region", "insurance_type"):
        common = _patients_per_code(train, "patients", col)
        assert set(_patients_per_code(cohort, "patients", col).index) <= set(common.index[common >= k])


def test_min_patients_parameter_errors() -> None:
    with pytest.raises(GeneratorError, match="The 'min_patients' parameter of cart must be an int >= 1"):
        get_generator("cart", min_patients=0)
    with pytest.raises(GeneratorError, match="min_patients"):
        get_generator("dp_mst", epsilon=1.0, min_patients=5)
    assert get_generator("gaussian_copula", min_patients=3).get_params()["min_patients"] == 3
    with pytest.raises(GeneratorError, match="The 'min_leaf' parameter of cart"):
        get_generator("cart", min_leaf=0)


# -- observation end and rows per patient of deeper tables (Synthea) ---------------------------------


def _censored_emr(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Admissions from birth to an export date (right-censored there, as a Synthea export), so older patients
    have more; a latent 'heavy' fifth of the patients has 8-12 events per admission, the others 0-2."""
    rng = np.random.default_rng(seed)
    export = pd.Timestamp("2025-06-01")
    pats, adms, evs = [], [], []
    for p in range(n):
        birth = pd.Timestamp("1945-01-01") + pd.Timedelta(days=int(rng.integers(0, 27000)))
        pats.append({"pid": f"p{p}", "sex": "MF"[p % 2], "birth": birth})
        heavy = rng.random() < 0.2
        t = birth + pd.Timedelta(days=int(rng.integers(0, 700)))
        a = 0
        while t < export:
            aid = f"a{p}_{a}"
            discharge = min(t + pd.Timedelta(days=int(rng.integers(0, 4))), export)
            adms.append({"aid": aid, "pid": f"p{p}", "admit": t, "discharge": discharge, "ward": ["icu", "med", "surg"][a % 3]})
            for e in range(int(rng.integers(8, 13)) if heavy else int(rng.integers(0, 3))):
                evs.append({"pid": f"p{p}", "aid": aid, "at": t + pd.Timedelta(minutes=e), "kind": "lab", "code": "A10.0"})
            t = t + pd.Timedelta(days=int(rng.exponential(900)) + 1, hours=int(rng.integers(0, 23)))
            a += 1
    return {"patients": pd.DataFrame(pats), "admissions": pd.DataFrame(adms), "events": pd.DataFrame(evs)}


@pytest.fixture(scope="module")
def censored():
    schema = parse_schema(EMR, source="<test>")
    dataset, report = frames_to_dataset(schema, _censored_emr(240, 3))
    assert report.ok, report.render()
    train, _holdout, _ = split_patients(dataset, seed=0)
    generator = get_generator("cart").fit(train)
    return train, generator, generator.sample(200, seed=0)


def test_cart_sequences_end_where_training_observation_ends(censored) -> None:
    train, _generator, cohort = censored
    real = train.con.execute(f"SELECT max(admit) FROM {train.sql_name('admissions')}").fetchall()[0][0]
    syn = cohort.con.execute(f"SELECT admit FROM {cohort.sql_name('admissions')}").df()["admit"]
    assert (syn <= pd.Timestamp(real)).all(), (syn.max(), real, float((syn > pd.Timestamp(real)).mean()))
    per_patient_real = train.row_counts()["admissions"] / train.row_counts()["patients"]
    assert 0.9 < (len(syn) / 200) / per_patient_real < 1.1


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    return float(np.max(np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a) - np.searchsorted(np.sort(b), grid, "right") / len(b))))


def test_cart_keeps_the_spread_of_rows_per_patient_of_a_table_below_the_patients_children(censored) -> None:
    train, generator, cohort = censored
    assert "__n_*events" in generator.nodes_["patients"].chain  # events per patient drawn at the root

    def per_patient(ds) -> np.ndarray:
        return ds.con.execute(
            f"SELECT coalesce(n, 0) AS n FROM {ds.sql_name('patients')} LEFT JOIN "
            f"(SELECT pid, count(*) AS n FROM {ds.sql_name('events')} GROUP BY pid) USING (pid)"
        ).fetchnumpy()["n"].astype(float)

    assert _ks(per_patient(train), per_patient(cohort)) < 0.1  # 0.15 when summed over admissions drawn alone


def test_child_counts_take_their_leaf_donors_in_turn() -> None:
    from synth.generators.cart import Leaves

    donors = np.array([0.0, 1.0, 5.0, 40.0, 2.0, 3.0])  # leaf 0: the first four, leaf 1: the last two
    model = Leaves([], None, np.array([0, 4]), np.array([4, 2]), donors)
    leaf = np.r_[np.zeros(10, dtype=np.int64), np.ones(5, dtype=np.int64)]
    for seed in range(5):
        drawn = model.pick_balanced(leaf, np.random.default_rng(seed))
        uses = pd.Series(drawn[:10]).value_counts().reindex(donors[:4], fill_value=0)
        assert uses.between(2, 3).all() and uses.sum() == 10, uses  # each donor twice, two of them a third time
        assert sorted(pd.Series(drawn[10:]).value_counts().tolist()) == [2, 3]


def test_min_patients_resample_draws_common_values_only_and_leaves_no_placeholder(kr_with_rare) -> None:
    """rare_values="resample": a rare donor is replaced by a common value of the model's own leaf, so no code of
    fewer than k training patients appears, and neither does a generalisation (a parent group, a missing or most
    frequent value standing in for the rare code): every emitted code is a training code held by >= k patients."""
    train, held = kr_with_rare
    k = 5
    generalising = get_generator("cart", min_patients=k).fit(train)
    generalising.sample(300, seed=7)
    assert generalising.last_sample_report_.generalised_values > 0  # the data has rare codes to replace
    generator = get_generator("cart", min_patients=k, rare_values="resample").fit(train)
    assert generator.get_params()["rare_values"] == "resample"
    cohort = generator.sample(300, seed=7)
    assert generator.last_sample_report_.generalised_values == 0  # nothing left for the generalisation to replace
    for table, column in (("claims", "main_dx"), ("patients", "region"), ("patients", "insurance_type"), ("claims", "care_type")):
        real = _patients_per_code(train, table, column)
        syn = _patients_per_code(cohort, table, column)
        assert set(syn.index) <= set(real.index[real >= k]), (column, sorted(set(syn.index) - set(real.index[real >= k]))[:5])
    if held:
        assert "Q87.4" not in set(_patients_per_code(cohort, "claims", "main_dx").index)
    # missing values come from donors as in training, not as stand-ins for rare codes
    def null_share(ds) -> float:
        return ds.con.execute(f"SELECT avg(CASE WHEN main_dx IS NULL THEN 1 ELSE 0 END) FROM {ds.sql_name('claims')}").fetchone()[0]

    assert null_share(cohort) <= null_share(train) + 0.02
    with pytest.raises(GeneratorError, match="The 'rare_values' parameter of cart must be one of 'generalise', 'resample'"):
        get_generator("cart", min_patients=k, rare_values="drop")


# -- rare values through text and derived columns (Synthea's CODE and DESCRIPTION), and derivation sources -----

CODED = """
name: mini_coded
patient: {table: patients, column: pid}
tables:
  patients:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier, nullable: false}
      sex: {type: categorical, values: [M, F], nullable: false}
      city: {type: categorical, privacy: quasi_identifier, nullable: false}
      expenses: {type: numerical, minimum: 0, nullable: false}
  events:
    order_by: at
    columns:
      pid: {type: id, references: patients.pid, privacy: direct_identifier, nullable: false}
      at: {type: datetime, nullable: false}
      code: {type: code, pattern: '^[0-9]{6,9}$', nullable: false}
      description: {type: text, privacy: sensitive}
"""


def _coded(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Patients with a per-patient amount (every value once) and 1-5 events each; an event's description names its
    code (one description per code, as Synthea's); ten codes are common, forty are held by one patient each."""
    rng = np.random.default_rng(seed)
    pats, evs = [], []
    for p in range(n):
        pats.append({"pid": f"p{p}", "sex": "MF"[int(rng.integers(0, 2))], "city": f"c{int(rng.integers(0, 40))}",
                     "expenses": float(1000 + 37 * p + rng.integers(0, 30))})
        t = pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        for e in range(int(rng.integers(1, 6))):
            code = 100000 + int(rng.integers(0, 10)) if (p >= 40 or e) else 900000 + p  # patients 0-39: one rare code each
            t = t + pd.Timedelta(days=int(rng.integers(1, 90)))
            evs.append({"pid": f"p{p}", "at": t, "code": str(code), "description": f"finding number {code}"})
    return {"patients": pd.DataFrame(pats), "events": pd.DataFrame(evs)}


@pytest.fixture(scope="module")
def coded_train():
    schema = parse_schema(CODED, source="<test>")
    dataset, report = frames_to_dataset(schema, _coded(220, 5))
    assert report.ok, report.render()
    train, _holdout, _ = split_patients(dataset, seed=0)
    return train


def _pairs(ds) -> pd.DataFrame:
    return ds.con.execute(f"SELECT pid, code, description FROM {ds.sql_name('events')}").df()


@pytest.mark.parametrize("rare_values", ["generalise", "resample"])
def test_min_patients_keeps_a_rare_codes_description_out_too(rare_values: str, coded_train) -> None:
    """A text column naming a code (the code derived from it) is held to min_patients as the code is: no description
    of fewer than k training patients is emitted; resample leaves nothing to generalise; each pair stays a
    training pair (on the old code the rare description was drawn, its code derived and then generalised)."""
    k = 5
    real = _pairs(coded_train)
    held = real.groupby("description")["pid"].nunique()
    rare = set(held.index[held < k])
    assert len(rare) >= 20  # the data has rare descriptions to keep out
    generator = get_generator("cart", min_patients=k, rare_values=rare_values).fit(coded_train)
    syn = _pairs(generator.sample(200, seed=3))
    assert not set(syn["description"]) & rare, sorted(set(syn["description"]) & rare)[:5]
    codes = real.groupby("code")["pid"].nunique()
    assert not set(syn["code"]) & set(codes.index[codes < k])
    if rare_values == "resample":
        assert generator.last_sample_report_.generalised_values == 0
    # every description names its own code: under generalise too, where the code's stand-in (the most frequent
    # code) takes a description of that code, not a missing one
    pairs = set(zip(real["code"], real["description"]))
    assert set(zip(syn["code"], syn["description"])) <= pairs, sorted(set(zip(syn["code"], syn["description"])) - pairs)[:3]


def test_min_patients_keeps_readings_in_a_text_column_and_holds_its_labels() -> None:
    """A text column of readings and labels (Synthea's observation VALUE): a number held by one patient is a
    quantity and stays (a rule says a numeric observation's value is a number); a rare label is replaced by the
    most frequent common label, never by a reading, or by a blank where training is blank more often."""
    from synth.generators.rare import fit_rare

    schema = parse_schema(CODED, source="<test>")
    values = [f"{36 + p / 10:.1f}" for p in range(30)] + ["Never smoker"] * 20 + ["rare finding", "-3", "nan", "inf"]
    events = pd.DataFrame({"pid": [f"p{i}" for i in range(len(values))], "at": pd.Timestamp("2020-01-01"),
                           "code": "100001", "description": values})
    patients = pd.DataFrame({"pid": events["pid"], "sex": "F", "city": "c1", "expenses": 1.0})
    frames = {"patients": patients, "events": events}
    model = fit_rare(schema, frames, 5)
    out, replaced = model.apply(frames)
    got = dict(zip(values, out["events"]["description"]))
    assert all(got[v] == v for v in values[:30]) and got["-3"] == "-3"  # readings held by one patient each stay
    # nullable but never missing in training: a blank would stand out, the most frequent common label stands in
    assert got["rare finding"] == got["nan"] == got["inf"] == "Never smoker"
    assert replaced == 3
    blank = pd.DataFrame({"pid": [f"b{i}" for i in range(25)], "at": pd.Timestamp("2020-01-01"), "code": "100001",
                          "description": None})  # training blank on 25 rows, more than "Never smoker"'s 20
    more = {"patients": pd.concat([patients, blank[["pid"]].assign(sex="F", city="c1", expenses=1.0)]),
            "events": pd.concat([events, blank], ignore_index=True)}
    out, _ = fit_rare(schema, more, 5).apply(frames)
    got = dict(zip(values, out["events"]["description"]))
    assert got["rare finding"] is None and got["nan"] is None and got["36.0"] == "36.0"  # there a blank stands in
    assert got["Never smoker"] == "Never smoker"
    required = parse_schema(CODED.replace("privacy: sensitive}", "privacy: sensitive, nullable: false}"), source="<test>")
    out, _ = fit_rare(required, frames, 5).apply(frames)  # not nullable: the most frequent common label stands in
    got = dict(zip(values, out["events"]["description"]))
    assert got["rare finding"] == got["nan"] == "Never smoker" and got["36.0"] == "36.0"


def test_cart_derives_no_column_from_one_whose_values_are_all_different(coded_train) -> None:
    """A per-patient amount with a different value on every row determines every other column of the table only
    trivially: deriving sex and city from it replayed each training patient's (amount, sex, city) whole."""
    generator = get_generator("cart").fit(coded_train)
    assert not generator.nodes_["patients"].derived
    assert generator.nodes_["events"].derived == {"code": ("description", generator.nodes_["events"].derived["code"][1])}
    cols = "expenses, sex, city"
    real = coded_train.con.execute(f"SELECT {cols} FROM {coded_train.sql_name('patients')}").df()
    syn = generator.sample(200, seed=3)
    syn = syn.con.execute(f"SELECT {cols} FROM {syn.sql_name('patients')}").df()
    assert syn.merge(real.drop_duplicates(), how="inner").shape[0] < 0.5 * len(syn)


def _one_heavy_emr(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """The mini EMR plus two patients with 150 admissions of 5 events each: a tail of 2% of the patients holding
    about a third of the events (Synthea's ma_112p: one patient of 93 holds 709 of 3,285 medications)."""
    frames = _mini_emr(n, seed)
    adms, evs = [frames["admissions"]], [frames["events"]]
    for h in range(2):
        pid = f"p{h}"
        t = pd.Timestamp("2015-01-01")
        rows = [{"aid": f"h{h}_{a}", "pid": pid, "admit": t + pd.Timedelta(days=2 * a),
                 "discharge": t + pd.Timedelta(days=2 * a + 1), "ward": "med"} for a in range(150)]
        adms.append(pd.DataFrame(rows))
        evs.append(pd.DataFrame([{"pid": pid, "aid": r["aid"], "at": r["admit"] + pd.Timedelta(hours=e), "kind": "lab",
                                  "code": "A10.0"} for r in rows for e in range(5)]))
    return {"patients": frames["patients"], "admissions": pd.concat(adms, ignore_index=True),
            "events": pd.concat(evs, ignore_index=True)}


def test_a_tail_the_cohort_did_not_draw_is_not_spread_over_its_other_patients() -> None:
    """Events per patient (a table below the patient's children): the bulk keeps training's shape whether or not the
    cohort drew one of the two heavy patients. Before, the cohort's events were calibrated to training's mean,
    which the tail carries, so a cohort without the tail pushed its light patients up (62% at or under training's
    78% point on Synthea). A patient's events also stay within what its admissions held in training (at most
    training's largest events per admission of any patient), where a draw once gave 709 medications to 41
    encounters."""
    schema = parse_schema(EMR, source="<test>")
    dataset, report = frames_to_dataset(schema, _one_heavy_emr(120, 7))
    assert report.ok, report.render()
    train, _holdout, _ = split_patients(dataset, seed=0)
    held = {r[0] for r in train.con.execute(f"SELECT pid FROM {train.sql_name('patients')}").fetchall()}
    assert {"p0", "p1"} <= held  # both heavy patients are in training
    generator = get_generator("cart").fit(train)

    def per_patient(ds) -> pd.DataFrame:
        return ds.con.execute(
            f"SELECT coalesce(e.n, 0) AS events, coalesce(a.n, 0) AS admissions FROM {ds.sql_name('patients')} p "
            f"LEFT JOIN (SELECT pid, count(*) AS n FROM {ds.sql_name('events')} GROUP BY pid) e USING (pid) "
            f"LEFT JOIN (SELECT pid, count(*) AS n FROM {ds.sql_name('admissions')} GROUP BY pid) a USING (pid)"
        ).df()

    real = per_patient(train)
    bulk = float(real["events"].quantile(0.5))
    most = float((real["events"] / real["admissions"].where(real["admissions"] > 0)).max())
    shares = []
    for seed in range(6):
        cohort = per_patient(generator.sample(100, seed=seed))
        shares.append(float((cohort["events"] <= bulk).mean()))
        with_adm = cohort[cohort["admissions"] > 0]
        assert (with_adm["events"] <= most * with_adm["admissions"] + 1e-9).all(), seed
        assert (cohort.loc[cohort["admissions"] == 0, "events"] == 0).all()
    assert abs(np.mean(shares) - float((real["events"] <= bulk).mean())) < 0.03, (shares, float((real["events"] <= bulk).mean()))


def test_a_total_above_its_cap_is_redrawn_from_its_leaf_donors_under_it() -> None:
    from synth.generators.cart import Leaves

    donors = np.array([8.0, 53.0, 90.0, 709.0, 1.0, 2.0])  # leaf 0: Synthea's medications leaf, cut down; leaf 1
    model = Leaves([], None, np.array([0, 4]), np.array([4, 2]), donors)
    leaf = np.array([0, 0, 0, 1])
    drawn = np.array([709.0, 709.0, 53.0, 2.0])
    cap = np.array([60.0, 5.0, 100.0, 1.5])  # row 1: no donor of its leaf fits (its smallest is taken)
    seen = set()
    for seed in range(8):
        out = model.within(leaf, drawn, cap, np.random.default_rng(seed))
        assert out[0] in (8.0, 53.0) and out[1] == 8.0 and out[2] == 53.0 and out[3] == 1.0
        seen.add(out[0])
    assert seen == {8.0, 53.0}  # a random donor under the cap, not always the same one
