"""The one-run canary audit's statistics and its canaries: a known mechanism is not overstated, perfect guesses
reach the design's limit, canaries are valid patients marked by values no one else holds."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.stats import binom

from data_schemas.io import load_schema
from evaluate.privacy.audit import epsilon_lower_bound, p_value
from evaluate.privacy.canaries import canary_scores, make_canaries, marker_columns, random_match, with_canaries
from synth.load import frames_to_dataset
from synth.split import split_patients

KR = load_schema("kr_claims")


def test_p_value_is_steinke_et_al_theorem() -> None:
    """With delta = 0 it is the binomial tail at e^eps / (1 + e^eps); delta adds 2 m delta times the largest mean mass below v."""
    q = 1 / (1 + math.exp(-1.0))
    assert p_value(100, 80, 60, 1.0, 0.0) == pytest.approx(binom.sf(59, 80, q))
    below = [sum(binom.pmf(60 - j, 80, q) for j in range(1, i + 1)) / i for i in range(1, 61)]
    assert p_value(100, 80, 60, 1.0, 1e-3) == pytest.approx(binom.sf(59, 80, q) + max(below) * 1e-3 * 2 * 100)
    assert p_value(10, 10, 0, 1.0, 0.0) == 1.0
    with pytest.raises(ValueError, match="0 <= v <= r <= m"):
        p_value(10, 11, 3, 1.0, 0.0)


def test_the_bound_inverts_the_p_value() -> None:
    eps = epsilon_lower_bound(200, 200, 170, delta=1e-6, confidence=0.95)
    assert p_value(200, 200, 170, eps, 1e-6) < 0.05 <= p_value(200, 200, 170, eps + 1e-3, 1e-6)
    assert epsilon_lower_bound(200, 200, 100, delta=1e-6, confidence=0.95) == 0.0  # a coin toss rules nothing out


def test_a_known_mechanism_is_not_overstated() -> None:
    """Randomised response at epsilon = 1 on every canary: the bound stays at or below 1 (at 95 %, about 19 runs in 20)."""
    rng = np.random.default_rng(3)
    q = math.e / (1 + math.e)
    bounds = [epsilon_lower_bound(1000, 1000, int((rng.random(1000) < q).sum()), delta=0.0, confidence=0.95) for _ in range(40)]
    assert sum(b > 1.0 for b in bounds) <= 6 and max(bounds) < 1.3
    assert np.median(bounds) > 0.7  # and the audit is tight enough to come close


def test_perfect_guesses_reach_the_designs_limit() -> None:
    limits = [epsilon_lower_bound(m, m, m, delta=1e-6, confidence=0.95) for m in (50, 100, 200, 1000)]
    assert limits == sorted(limits) and limits[1] == pytest.approx(math.log(0.05 ** 0.01 / (1 - 0.05 ** 0.01)), rel=1e-3)
    assert 3.4 < limits[1] < 3.6 and limits[-1] > 5.5
    # delta weakens the bound (the 2 m delta term of the theorem)
    weaker = [epsilon_lower_bound(100, 100, 100, delta=d, confidence=0.95) for d in (1e-6, 1e-4, 1e-2)]
    assert weaker[0] == pytest.approx(limits[1]) and weaker[0] > weaker[1] > weaker[2]


@pytest.mark.parametrize("pattern", [r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?$", r"^[A-Z]{1,2}[0-9]{3,4}[A-Z0-9]?$",
                                     r"^[A-Z]([0-9]{2}([A-Z]{1,2}([0-9]{2})?)?)?$", r"^(V|E)?[0-9]{3}\d*$",
                                     r"^([0-9]{3,5}|V[0-9]{2,4}|E[0-9]{3,4}|OTHER)$"])
def test_random_values_match_their_pattern(pattern: str) -> None:
    rng = np.random.default_rng(0)
    values = {random_match(pattern, rng) for _ in range(200)}
    assert None not in values and all(re.fullmatch(pattern, v) for v in values)
    assert len(values) > 150  # made up afresh each time
    assert "OTHER" not in values  # a fixed alternative (DE-SynPUF's ICD-9 "OTHER") marks no canary


@pytest.fixture(scope="module")
def kr_train():
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(KR, simulate(200, seed=4))
    assert report.ok
    return split_patients(dataset, seed=1)[0]


def test_canaries_are_valid_patients_marked_by_values_no_one_holds(kr_train) -> None:
    canaries = make_canaries(kr_train, 40, np.random.default_rng(1))
    assert canaries.n + canaries.dropped == 40 and canaries.n >= 36
    assert set(marker_columns(KR)) == set(canaries.marker_columns) == {
        ("claims", "main_dx"), ("claims", "sub_dx"), ("claim_details", "treatment_code"), ("diagnoses", "kcd_code"),
        ("prescriptions", "atc_code")}
    for (table, column), part in canaries.markers.groupby(["table", "column"]):
        pattern = KR.tables[table].columns[column].code_pattern
        assert part["value"].is_unique and all(re.fullmatch(pattern, v) for v in part["value"])
        held = {r[0] for r in kr_train.con.execute(f'SELECT DISTINCT "{column}" FROM {kr_train.sql_name(table)}').fetchall()}
        assert not held & set(part["value"])
    included = np.arange(canaries.n) % 2 == 0
    both = with_canaries(kr_train, canaries, included)  # validated against the schema (types, keys, rules)
    n_patients = both.row_counts()["patients"]
    assert n_patients == kr_train.row_counts()["patients"] + int(included.sum())
    scores = canary_scores(both, canaries)  # the training set itself: every included canary shows, no other
    assert (scores[included] > 0).all() and (scores[~included] == 0).all()


def test_canaries_on_desynpuf_icd9_codes(synpuf_dir) -> None:
    """DE-SynPUF's ICD-9 pattern allows the fixed word OTHER, which training holds: every marker is still fresh."""
    from data_schemas.io import load_schema
    from synth.load import read_dataset

    schema = load_schema("cms_desynpuf")
    dataset, report = read_dataset(schema, synpuf_dir)
    assert report.ok
    train = split_patients(dataset, seed=0, holdout_fraction=0.9)[0]
    canaries = make_canaries(train, 100, np.random.default_rng(0))
    assert canaries.n >= 90
    for (table, column), part in canaries.markers.groupby(["table", "column"]):
        held = {r[0] for r in train.con.execute(f'SELECT DISTINCT "{column}" FROM {train.sql_name(table)}').fetchall()}
        assert part["value"].is_unique and not held & set(part["value"]) and "OTHER" not in set(part["value"]), (table, column)


def test_the_schema_rules_checked_on_canaries_run_on_a_locked_down_connection(kr_train, monkeypatch) -> None:
    """Canaries are checked against the schema's rules, i.e. SQL from a schema file: like validation, on a
    connection that touches no file and whose settings are locked."""
    import duckdb

    import evaluate.privacy.canaries as canaries_module

    seen = []

    def recording_connect(*args, **kwargs):
        con = canaries_module.__dict__["_real_connect"](*args, **kwargs)
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
        seen.append(con.execute("SELECT current_setting('enable_external_access'), current_setting('lock_configuration')").fetchall()[0])
        return con

    monkeypatch.setitem(canaries_module.__dict__, "_real_connect", canaries_module.connect)
    monkeypatch.setattr(canaries_module, "connect", recording_connect)
    assert make_canaries(kr_train, 10, np.random.default_rng(2)).n >= 8
    assert seen and set(seen) == {(False, True)}
