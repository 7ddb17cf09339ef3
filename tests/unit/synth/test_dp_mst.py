"""The DP generator: accounting, domains from the schema only, per-patient bounds, MST on one table, valid cohorts."""
from __future__ import annotations

import re

import numpy as np
import pytest

from data_schemas.io import load_schema
from synth.errors import GeneratorError
from synth.generators import describe_generators, get_generator
from synth.generators.dp_accounting import (
    Accountant,
    PrivacyBudgetError,
    epsilon_for_rho,
    noisy_counts,
    rho_for_epsilon,
    select_values,
)
from synth.generators.dp_codecs import OTHER, example_of, number_codec, placeholder_for, values_codec, year_codec
from synth.generators.dp_tree import AttrSpec, fit_tree, project_counts
from synth.load import frames_to_dataset
from synth.split import split_patients

KR = load_schema("kr_claims")
SYNPUF = load_schema("cms_desynpuf")


@pytest.fixture(scope="module")
def kr_trains():
    """Two disjoint training sets of the demo population (so that anything read from data would differ)."""
    from synth.demo_population import simulate

    out = []
    for seed in (5, 6):
        dataset, report = frames_to_dataset(KR, simulate(300, seed=seed))
        assert report.ok
        out.append(split_patients(dataset, seed=1)[0])
    return out


def test_budget_conversion_round_trips() -> None:
    for eps in (0.5, 1.0, 4.0, 16.0):
        rho = rho_for_epsilon(eps, 1e-6)
        assert epsilon_for_rho(rho, 1e-6) == pytest.approx(eps, rel=1e-6)
        assert epsilon_for_rho(rho * 1.01, 1e-6) > eps
    assert rho_for_epsilon(1.0, 1e-6) < rho_for_epsilon(1.0, 1e-3)


def test_accountant_refuses_to_overspend() -> None:
    acct = Accountant(rho_budget=0.01)
    noisy_counts(np.array([5, 6]), sensitivity=2, rho=0.006, accountant=acct, label="a:1")
    assert acct.rho_spent == pytest.approx(0.006, rel=1e-4)
    with pytest.raises(PrivacyBudgetError, match="only"):
        noisy_counts(np.array([5, 6]), sensitivity=2, rho=0.006, accountant=acct, label="a:2")


def test_value_selection_keeps_common_values_only() -> None:
    acct = Accountant(rho_budget=10.0, delta_budget=1e-6)
    kept = select_values({"common": 5000, "rare": 1, "mid": 3000}, max_values_per_patient=4, rho=1.0, delta=1e-7,
                         accountant=acct, label="values:x")
    assert set(kept) == {"common", "mid"}
    assert 0 < acct.delta_spent <= 1e-7


def test_placeholders_match_the_column_vocabulary_or_pattern() -> None:
    claims = KR.tables["claims"].columns
    assert placeholder_for(claims["main_dx"]) == "R69"
    treatment = KR.tables["claim_details"].columns["treatment_code"]
    assert re.fullmatch(treatment.code_pattern, placeholder_for(treatment))
    drg = SYNPUF.tables["inpatient_claims"].columns["CLM_DRG_CD"]
    assert placeholder_for(drg) == "OTH"
    assert example_of(r"^[A-Z]{1,2}[0-9]{3,4}[A-Z0-9]?$") == "A000"
    assert example_of(r"^(?!x)a$") is None


def test_codecs_round_trip_within_their_cells() -> None:
    rng = np.random.default_rng(0)
    cost = number_codec(KR.tables["claims"].columns["total_cost"])  # minimum 0, no maximum: half-octave grid
    values = np.array([0, 1, 7, 1500, 2_000_000])
    codes = cost.encode(values)
    back = cost.decode(codes, rng)
    assert np.array_equal(cost.encode(back), codes) and back[0] == 0 and back[1] == 1
    months = number_codec(SYNPUF.tables["beneficiary_summary"].columns["BENE_HI_CVRAGE_TOT_MONS"])
    assert months.n_regular == 13 and np.array_equal(months.decode(months.encode(np.arange(13)), rng), np.arange(13))
    years = year_codec("d", nullable=True)
    assert years.decode(years.encode(np.array([np.nan])), rng)[0] != years.decode(years.encode(np.array([0.0])), rng)[0]
    cats = values_codec("c", ["a", "b"], nullable=True, other=True, placeholder="Z")
    assert list(cats.decode(cats.encode(["a", "zz", None]), rng)) == ["a", "Z", None]
    assert cats.values == ("a", "b", OTHER)


def test_a_categorical_encodes_as_its_values_one_by_one() -> None:
    """The categorical path (each category looked up once) gives the codes of the per-value path: kept values,
    values outside the list (to "other", or to the null code / 0 without one), nulls, unused categories."""
    import pandas as pd

    values = ["a", "zz", None, "b", "a", "q", None]
    cat = pd.Categorical(values, categories=["q", "b", "a", "zz", "unused"])
    for codec in (values_codec("c", ["a", "b"], nullable=True, other=True, placeholder="Z"),
                  values_codec("c", ["a", "b"], nullable=True), values_codec("c", ["a", "b"], nullable=False),
                  values_codec("c", ["a", "b"], nullable=False, other=True, placeholder="Z")):
        one_by_one = codec.encode(np.asarray(values, dtype=object))
        assert np.array_equal(codec.encode(cat), one_by_one), codec
    empty = values_codec("c", ["a"], nullable=True)
    assert empty.encode(pd.Categorical([None, None], categories=[])).tolist() == [empty.null_code] * 2


@pytest.mark.parametrize("sizes,n", [([3, 5, 2], 500), ([2] * 9, 300), ([7], 50), ([4, 4], 0), ([2**40, 2**30], 20)])
def test_unique_rows_match_numpys_row_wise_unique(sizes: list[int], n: int) -> None:
    """Patterns in the same (lexicographic) order and the same inverse, also past the one-key limit (fallback)."""
    from synth.generators.dp_tree import unique_rows

    rng = np.random.default_rng(len(sizes) + n)
    codes = np.stack([rng.integers(0, min(k, 6), n) for k in sizes], axis=1) if n else np.zeros((0, len(sizes)), dtype=np.int64)
    patterns, inverse = unique_rows(codes, sizes)
    want_patterns, want_inverse = np.unique(codes, axis=0, return_inverse=True)
    assert np.array_equal(patterns, want_patterns) and np.array_equal(inverse, want_inverse.ravel())
    assert np.array_equal(patterns[inverse], codes)


def test_tree_learns_pairs_and_samples_given_evidence() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    a = rng.integers(0, 3, n)
    b = (a + (rng.random(n) < 0.1)) % 3
    c = rng.integers(0, 200, n)
    specs = [AttrSpec("a", 3), AttrSpec("b", 3), AttrSpec("c", 200, ordered=True)]
    acct = Accountant(rho_budget=50.0)
    model = fit_tree(np.stack([a, b, c], 1), specs, sensitivity=1, rho=50.0, accountant=acct, label="t", bins=8)
    assert 49.99 < acct.rho_spent <= 50.0
    assert ("a", "b") in model.edges or ("b", "a") in model.edges
    assert model.sizes[2] <= 8  # the wide ordered attribute was compressed
    given = model.sample(2000, np.random.default_rng(2), evidence={0: np.full(2000, 2)})
    assert (given[:, 0] == 2).all() and np.mean(given[:, 1] == 2) > 0.8
    assert project_counts(np.array([-5.0, 3.0, 10.0]), 10.0).tolist() == pytest.approx([0.0, 1.5, 8.5])


def test_generator_parameters_are_checked() -> None:
    with pytest.raises(GeneratorError, match="The 'epsilon' parameter of dp_mst must be a float in"):
        get_generator("dp_mst", epsilon=0)
    with pytest.raises(GeneratorError, match="'max_rows_per_patient'"):
        get_generator("dp_mst", max_rows_per_patient=0)
    row = {r["name"]: r for r in describe_generators()}["dp_mst"]
    assert row["differentially_private"] and row["family"] == "dp"


def _frames_with_outlier(seed: int) -> tuple[dict, str]:
    """A demo population in which one training patient holds a made-up diagnosis code and extreme costs on every claim."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from synth.demo_population import simulate

    frames = simulate(300, seed=seed)
    dataset, _ = frames_to_dataset(KR, frames)
    train, _, _ = split_patients(dataset, seed=1)
    counts = train.con.execute(
        f"SELECT patient_id, count(*) n FROM {train.sql_name('claims')} GROUP BY 1 ORDER BY n DESC, patient_id LIMIT 1").fetchall()
    patient = counts[0][0]
    claims = frames["claims"]
    mine = pc.equal(claims.column("patient_id"), patient)
    for name, value in (("main_dx", "Q99.ZZZZ"), ("total_cost", 10**12), ("patient_share", 10**11)):
        column = claims.column(name)
        replaced = pc.if_else(mine, pa.scalar(value, type=column.type), column)
        claims = claims.set_column(claims.schema.get_field_index(name), claims.schema.field(name), replaced)
    return {**frames, "claims": claims}, patient


def test_a_value_held_by_one_patient_never_enters_the_model() -> None:
    """Domains never come from the data: one patient with a made-up code on every claim and costs of 10^12 moves no
    grid, and the code is not kept even at the largest epsilon, while codes many patients hold are (power)."""
    from synth.demo_population import simulate

    plain, _ = frames_to_dataset(KR, simulate(300, seed=5))
    outlier_frames, _ = _frames_with_outlier(5)
    outlier, report = frames_to_dataset(KR, outlier_frames)
    assert report.ok, report.render()
    fitted = [get_generator("dp_mst", epsilon=1000.0).fit(split_patients(d, seed=1)[0]) for d in (plain, outlier)]
    a, b = (g.nodes_ for g in fitted)
    for name in a:
        for col, codec in a[name].codecs.items():
            if codec.edges is not None:  # numbers, dates, counts: the same grid with or without the outlier
                assert np.array_equal(codec.edges, b[name].codecs[col].edges), (name, col)
    kept = b["claims"].codecs["main_dx"].values
    assert "Q99.ZZZZ" not in kept
    assert fitted[1].privacy_accounting()["kept_values"]["claims.main_dx"] >= 3  # common codes pass the threshold


def test_each_measurement_is_charged_at_the_tables_cap() -> None:
    """Every OpenDP measurement is calibrated at the input distance one patient can cause: its table's cap (rows)
    or, for a value selection, (values per patient, their L2, 1), and its cost is that distance's privacy map."""
    import math

    frames, patient = _frames_with_outlier(6)
    claims = frames["claims"]  # the same patient also gets 1,000 more claims (copies of one of theirs)
    import pyarrow as pa
    import pyarrow.compute as pc

    first = claims.filter(pc.equal(claims.column("patient_id"), patient)).slice(0, 1)
    copies = pa.concat_tables([first] * 1000)
    ids = pa.array([f"HEAVY{i:06d}" for i in range(1000)], type=claims.schema.field("claim_id").type)
    copies = copies.set_column(0, claims.schema.field("claim_id"), ids)
    dataset, report = frames_to_dataset(KR, {**frames, "claims": pa.concat_tables([claims, copies])})
    assert report.ok, report.render()
    train = split_patients(dataset, seed=1)[0]
    gen = get_generator("dp_mst", epsilon=2.0, max_rows_per_patient=5).fit(train)
    caps = {n: node.cap for n, node in gen.nodes_.items()}
    assert caps == {"patients": 1, "claims": 5, "claim_details": 5, "diagnoses": 5, "prescriptions": 5}
    groups = gen._selection_groups(KR)
    kinds = set()
    for charge in gen.charges_:
        kind, rest = charge.label.split(":", 1)
        if kind == "table":
            table = rest.split(":", 1)[0]
            assert charge.d_in == caps[table], charge.label
            l2 = float(charge.d_in)
        else:
            node, group = rest.split(".", 1)
            k = min(gen.max_values_per_patient, caps[node] * len(groups[(node, group)]))
            assert charge.d_in == (k, math.ceil(math.sqrt(k)), 1), charge.label
            l2 = float(charge.d_in[1])
        kinds.add(charge.mechanism)
        # zCDP of the Gaussian (discrete or thresholded) and of report-noisy-max with Gumbel noise: (l2 / scale)^2 / 2
        assert charge.rho == pytest.approx(l2**2 / (2 * charge.scale**2), rel=1e-6), charge.label
    assert kinds == {"make_gaussian", "make_noisy_max", "make_gaussian_threshold"}
    from synth.generators.base import training_data

    rows = gen._bounded_rows(training_data(train), np.random.default_rng(0))
    assert max(np.bincount(rows["claims"].patient_row).max(), 0) <= 5  # the 1,016-claim patient gives 5


def test_a_table_with_nothing_to_measure_keeps_only_a_noisy_count() -> None:
    """A model holds no exact count: without an attribute to measure, the row count itself is measured."""
    x = np.zeros((500, 2), dtype=np.int64)
    estimates = []
    for _ in range(3):
        acct = Accountant(rho_budget=0.001)
        model = fit_tree(x, [AttrSpec("a", 1), AttrSpec("b", 1)], sensitivity=4, rho=0.001, accountant=acct, label="t")
        assert [(c.label, c.d_in) for c in acct.charges] == [("t:count", 4)]
        estimates.append(model.n_estimate)
    assert len(set(estimates)) > 1 and all(abs(e - 500) < 1000 for e in estimates)


def test_the_default_release_size_is_a_noisy_estimate(kr_trains) -> None:
    """``release_size`` never reads the exact training size, and a fitted model keeps none."""
    import pickle

    sizes = []
    for _ in range(3):
        gen = get_generator("dp_mst", epsilon=1.0).fit(kr_trains[0])
        sizes.append(gen.release_size(10**9))
        assert not hasattr(gen, "n_train_patients_")
        assert b"n_train_patients_" not in pickle.dumps(gen)
    assert all(0 < s < 10_000 for s in sizes) and len(set(sizes)) > 1
    assert get_generator("independent").release_size(123) == 123  # a non-DP generator samples as many as it saw


def test_rows_per_patient_are_capped(kr_trains) -> None:
    from synth.generators.base import training_data

    gen = get_generator("dp_mst", epsilon=1.0, max_rows_per_patient=3)
    data = training_data(kr_trains[0])
    gen.schema_ = KR
    gen._plan(KR)
    rows = gen._bounded_rows(data, np.random.default_rng(0))
    for name in ("claims", "claim_details", "diagnoses"):
        assert np.bincount(rows[name].patient_row).max() <= 3
    assert len(rows["patients"].frame) == data.n_patients()


def test_fitted_generator_samples_a_valid_cohort(kr_trains) -> None:
    gen = get_generator("dp_mst", epsilon=4.0).fit(kr_trains[0])
    cohort = gen.sample(60, seed=4)  # validated against the schema by the base class
    assert cohort.row_counts()["patients"] == 60
    again = gen.sample(60, seed=4)
    assert again.row_counts() == cohort.row_counts()  # sampling is seeded post-processing
    assert gen.get_params()["epsilon"] == 4.0 and gen.epsilon == 4.0 and gen.delta == 1e-6


def test_children_per_row_are_counted_past_the_row_cap(kr_trains) -> None:
    """The number of claims per patient is one cell of the patient row (sensitivity 1), counted over all the
    patient's claims up to ``max_children``, not over the ``max_rows_per_patient`` rows the claims model sees."""
    from synth.generators.base import training_data

    train = kr_trains[0]
    data = training_data(train)
    real = data.frames["claims"].groupby("patient_id").size().reindex(data.frames["patients"]["patient_id"]).fillna(0)
    gen = get_generator("dp_mst", epsilon=200.0, max_rows_per_patient=2, max_children=60).fit(train)
    assert gen.accounting_["children_per_row_limit"]["patients.claims"] == 60
    sample = gen.sample(len(real), seed=0)
    counts = sample.row_counts()
    per_patient = counts["claims"] / counts["patients"]
    assert per_patient > 3 * 2  # the old model drew at most the cap (2) claims per patient
    assert 0.7 < per_patient / real.clip(upper=60).mean() < 1.3
    rows = gen._bounded_rows(data, np.random.default_rng(0))
    assert np.bincount(rows["claims"].patient_row).max() <= 2  # the claims model itself still sees 2 rows per patient
    assert rows["claims"].per_parent.sum() == len(data.frames["claims"])


def test_a_workload_target_joins_the_tree_first() -> None:
    """AIM-style workload: pairs holding a target get a public selection bonus, so the tree is a star around it
    on independent columns (without the workload the target would be a leaf or two). The bonus decides the
    picks, so the selection gets ``workload_select`` (0.1) of the table's rho instead of a third and the pair
    tables the difference: same total, same sensitivity, less noise on the target's pairs."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(2000, 6))
    specs = [AttrSpec(f"a{j}", 4, False) for j in range(6)]
    spent: dict[tuple[int, ...], dict[str, float]] = {}
    for workload in ((), (2,)):
        acct = Accountant(rho_budget=10.0)
        model = fit_tree(x, specs, sensitivity=1, rho=10.0, accountant=acct, label="t", workload=workload)
        assert all(c.d_in == 1 for c in acct.charges)
        spent[workload] = {kind: sum(c.rho for c in acct.charges if c.label.split(":")[1] == kind) for kind in ("one-way", "select", "two-way")}
        assert acct.rho_spent == pytest.approx(10.0, rel=1e-4)
        if workload:
            assert all("a2" in edge for edge in model.edges) and len(model.edges) == 5
    assert spent[()] == pytest.approx({"one-way": 10 / 3, "select": 10 / 3, "two-way": 10 / 3}, rel=1e-4)
    assert spent[(2,)] == pytest.approx({"one-way": 10 / 3, "select": 1.0, "two-way": 10 - 10 / 3 - 1.0}, rel=1e-4)


def test_resampling_one_attribute_keeps_to_the_allowed_codes_and_the_rest_of_the_row() -> None:
    """``TreeModel.resample`` (the Gibbs step of the rule repair) draws ``j`` given its tree neighbours, only among
    the allowed codes; a row with none allowed keeps its code."""
    rng = np.random.default_rng(3)
    n = 6000
    a = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.9, a, rng.integers(0, 3, n))
    specs = [AttrSpec("a", 3), AttrSpec("b", 3)]
    model = fit_tree(np.stack([a, b], 1), specs, sensitivity=1, rho=100.0, accountant=Accountant(rho_budget=100.0), label="t")
    rows = np.array([[0, 0], [2, 2]] * 1000)
    allowed = np.ones((rows.shape[0], 3), dtype=bool)
    allowed[:, 0] = False  # b = 0 is forbidden
    allowed[1::2] = False  # nothing allowed for the rows with a = 2
    drawn = model.resample(rows, 1, np.random.default_rng(4), allowed=allowed)
    assert (drawn[0::2] != 0).all() and (drawn[1::2] == 2).all()
    free = model.resample(rows, 1, np.random.default_rng(5))
    assert np.mean(free[0::2] == 0) > 0.8 and np.mean(free[1::2] == 2) > 0.8  # b follows a


def test_targets_must_name_modelled_columns(kr_trains) -> None:
    with pytest.raises(GeneratorError, match="'targets'"):
        get_generator("dp_mst", targets=["claims.no_such_column"]).fit(kr_trains[0])
    with pytest.raises(GeneratorError, match="'targets'"):
        get_generator("dp_mst", targets="claims.care_type")
    gen = get_generator("dp_mst", epsilon=50.0, targets=["claims.care_type"]).fit(kr_trains[0])
    assert gen.get_params()["targets"] == ["claims.care_type"] and gen.accounting_["workload"] == ["claims.care_type"]


RULED = """
name: ruled
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, nullable: false}
      kind: {type: categorical, values: [admitted, visit], nullable: false}
      stay: {type: numerical, integer: true, minimum: 0, maximum: 365, nullable: false}
    rules:
      - name: stay_only_when_admitted
        check: (kind = 'admitted') = (stay >= 1)
"""


def test_a_broken_rule_redraws_the_attribute_it_is_about_not_the_target() -> None:
    """With 4 bins, the stay's first bin holds 0 (the visits, 10%) and short stays, so a drawn visit often gets a
    stay >= 1. Redrawing whole rows (rejection on the rules) then halves the visits (0.043 measured); redrawing
    the stay given the kind, among the values the rule allows, keeps the kind's share (0.106)."""
    import pandas as pd

    from data_schemas.io import parse_schema

    schema = parse_schema(RULED, source="<test>")
    rng = np.random.default_rng(0)
    n = 4000
    visit = rng.random(n) < 0.1
    stay = np.where(visit, 0, rng.integers(1, 366, size=n))
    people = pd.DataFrame({"pid": np.arange(n), "kind": np.where(visit, "visit", "admitted"), "stay": stay})
    train, report = frames_to_dataset(schema, {"people": people})
    assert report.ok, report.render()
    gen = get_generator("dp_mst", epsilon=1000.0, bins=4, targets=["people.kind"]).fit(train)
    model = gen.nodes_["people"].model
    j = model.index("stay")
    assert 0 in model.fine_members[j][0] and model.fine_members[j][0].size > 1  # the first bin mixes 0 with stays
    sample = gen.sample(n, seed=1)
    frame = sample.con.sql(f"SELECT kind, stay FROM {sample.sql_name('people')}").df()
    assert len(frame) == n and ((frame["kind"] == "admitted") == (frame["stay"] >= 1)).all()
    assert (frame["kind"] == "visit").mean() == pytest.approx(0.1, abs=0.025)
