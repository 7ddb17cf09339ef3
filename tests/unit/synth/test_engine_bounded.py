"""Bounding before the fit (``synth.engine.local``): what a DP generator fits on when the engine caps each
patient's rows first, on DuckDB here (the Spark tests assert the same rows and counts on Spark)."""
from __future__ import annotations

import numpy as np
import pytest

from data_schemas.io import load_schema
from synth.engine.local import bounded, fit_input
from synth.generators import get_generator
from synth.generators.base import training_data
from synth.load import frames_to_dataset
from synth.split import split_patients

KR = load_schema("kr_claims")
CAP, LIMIT = 2, 30
SALT = bytes(range(32))


@pytest.fixture(scope="module")
def train():
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(KR, simulate(300, seed=5))
    assert report.ok
    return split_patients(dataset, seed=1)[0]


@pytest.fixture(scope="module")
def gen():
    return get_generator("dp_mst", epsilon=4.0, max_rows_per_patient=CAP, max_children=LIMIT)


def _true_counts(train, table: str, fk: str) -> dict:
    rows = train.con.execute(f'SELECT "{fk}", count(*) FROM {train.sql_name(table)} GROUP BY 1').fetchall()
    return {k: int(n) for k, n in rows}


def test_the_engine_counts_children_past_the_cap_for_every_kept_parent_row(train, gen) -> None:
    limits = gen.count_limits(KR)
    assert limits == {"claims": LIMIT, "claim_details": LIMIT, "diagnoses": LIMIT, "prescriptions": LIMIT}
    kept = bounded(train, gen.contribution_caps(KR), salt=SALT, count_limits=limits)
    assert sorted(kept.child_counts) == sorted(limits)
    for table in limits:
        fk, parent, parent_col = (lambda link: (link[0].name, link[1], link[2]))(KR.parent_of(table))
        truth = _true_counts(train, table, fk)
        parents = {k for (k,) in kept.con.execute(f'SELECT "{parent_col}" FROM {kept.sql_name(parent)}').fetchall()}
        got = dict(kept.con.execute(f"SELECT key, n FROM {kept.child_counts[table]}").fetchall())
        want = {k: min(n, LIMIT) for k, n in truth.items() if k in parents}
        assert got == want, table
        kept_rows = kept.num_rows(table)
        assert kept_rows < sum(truth.values())  # the cap dropped rows of this table...
        assert max(got.values()) > CAP  # ...and the counts still see past it


def test_dp_mst_models_the_same_children_per_patient_from_bounded_rows(train, gen) -> None:
    """Claims per patient (a cell of the patient row) come out equal whether the generator bounds the full
    split itself or fits on what the engine bounded; without the engine's counts they would stop at the cap."""
    gen._plan(KR)
    rng = np.random.default_rng(0)
    full = gen._bounded_rows(training_data(train), rng)["claims"].per_parent
    kept = bounded(train, gen.contribution_caps(KR), salt=SALT, count_limits=gen.count_limits(KR))
    engine = gen._bounded_rows(training_data(kept), rng)["claims"].per_parent
    assert full.max() > CAP
    assert np.array_equal(np.minimum(full, LIMIT), engine)
    truncated = bounded(train, gen.contribution_caps(KR), salt=SALT, namespace="no_counts")
    assert gen._bounded_rows(training_data(truncated), rng)["claims"].per_parent.max() == CAP


def test_fit_input_bounds_dp_generators_on_duckdb_and_leaves_others_whole(train, gen) -> None:
    chosen = fit_input(gen, train)
    assert chosen is not train and chosen.child_counts
    per_patient = chosen.con.execute(f"SELECT max(n) FROM (SELECT patient_id, count(*) AS n FROM {chosen.sql_name('claims')} GROUP BY 1)").fetchall()
    assert per_patient[0][0] == CAP
    assert fit_input(get_generator("independent"), train) is train
    fitted = gen.fit(chosen)
    cohort = fitted.sample(50, seed=1)
    assert cohort.row_counts()["claims"] / 50 > CAP  # children drawn past the cap, from the engine's counts
