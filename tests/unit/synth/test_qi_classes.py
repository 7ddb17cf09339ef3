"""Quasi-identifier classes, one definition for the evaluator and cart's min_patients: a cohort fitted with
``min_patients=k`` points at training classes of fewer than k patients no more often than fresh patients do."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_schemas.io import parse_schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.policy import apply_policy, load_policy
from evaluate.runner import run_metrics
from synth.generators import get_generator
from synth.load import frames_to_dataset
from synth.qi_classes import QiClasses

SCHEMA = parse_schema("""
name: qi_people
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier, nullable: false}
      sex: {type: categorical, values: [M, F], privacy: quasi_identifier, nullable: false}
      born: {type: datetime, unit: date, privacy: quasi_identifier, nullable: false}
      race: {type: categorical, privacy: quasi_identifier}
      marital: {type: categorical, privacy: quasi_identifier}
      income: {type: numerical}
""")
SMALL = "privacy.k_anonymity.small_class_share"


def _people(n: int, seed: int, start: int = 0) -> dict[str, pd.DataFrame]:
    """A population where most generalised combinations (5-year band x sex x race x marital) are rare at 120 people."""
    rng = np.random.default_rng(seed)
    year = rng.integers(1930, 2016, n)
    born = pd.to_datetime(pd.DataFrame({"year": year, "month": rng.integers(1, 13, n), "day": rng.integers(1, 29, n)}))
    race = rng.choice(["white", "black", "asian", "other", "native"], n, p=[0.6, 0.15, 0.1, 0.1, 0.05]).astype(object)
    marital = np.where(2020 - year < 25, "S", rng.choice(["M", "D", "W", "S"], n, p=[0.5, 0.2, 0.1, 0.2])).astype(object)
    marital[rng.random(n) < 0.05] = None
    income = np.round(rng.lognormal(10, 1, n) * (1 + (race == "white")), 2)
    return {"people": pd.DataFrame({"pid": [f"p{start + i}" for i in range(n)], "sex": rng.choice(["M", "F"], n),
                                    "born": born, "race": race, "marital": marital, "income": income})}


def _dataset(frames: dict[str, pd.DataFrame], namespace: str, con=None):
    dataset, report = frames_to_dataset(SCHEMA, frames, namespace=namespace, con=con)
    assert report.ok, report
    return dataset


def _rows(dataset) -> pd.DataFrame:
    return dataset.con.execute(f"SELECT * FROM {dataset.sql_name('people')}").df()


@pytest.fixture(scope="module")
def people():
    train = _dataset(_people(120, 1), "train")
    holdout = _dataset(_people(400, 7, start=10_000), "holdout", train.con)
    rows = _rows(train)
    return train, holdout, QiClasses.fit(SCHEMA, rows, rows, 5)


def test_fresh_rate_is_leave_one_out_over_training() -> None:
    schema = parse_schema("""
name: tiny
patient: {table: p, column: id}
tables:
  p:
    primary_key: id
    columns:
      id: {type: id, nullable: false}
      a: {type: categorical, privacy: quasi_identifier}
""")
    # classes of 1, 2, 3 and 6 patients: leaving one out, those of 2 and 3 still hold 1 to 4 others (5 of 12)
    rows = pd.DataFrame({"id": range(12), "a": ["w"] + ["x"] * 2 + ["y"] * 3 + ["z"] * 6})
    qi = QiClasses.fit(schema, rows, rows, 5)
    assert qi is not None and qi.fresh_rate == pytest.approx(5 / 12)
    probe = pd.DataFrame({"a": ["w", "x", "y", "z", "new", None]})
    assert qi.class_sizes(probe).tolist() == [1, 2, 3, 6, 0, 0]
    assert qi.small(probe).tolist() == [True, True, True, False, False, False]
    assert QiClasses.fit(schema, rows.drop(columns="a"), rows.drop(columns="a"), 5) is None  # nothing tagged here


def test_the_generator_counts_the_classes_the_evaluator_counts(people) -> None:
    train, holdout, qi = people
    cohort = _dataset({"people": _rows(get_generator("cart").fit(train).sample(300, seed=5))}, "synthetic", train.con)
    ctx = EvalContext(SCHEMA, train.con, train, cohort, holdout, EvalOptions(seed=0))
    got = {r.name: r for r in run_metrics(ctx, ["privacy.k_anonymity"]).results}
    assert got[SMALL].value == pytest.approx(float(qi.small(_rows(cohort)).mean()))
    assert got[SMALL].details[0]["baseline_rate"] == pytest.approx(float(qi.small(_rows(holdout)).mean()))


def test_min_patients_points_at_small_classes_no_more_than_fresh_patients(people) -> None:
    train, holdout, qi = people
    verdicts = {}
    for params in ({}, {"min_patients": 5}):
        generator = get_generator("cart", **params).fit(train)
        cohort = _dataset({"people": _rows(generator.sample(400, seed=3))}, f"synthetic{len(verdicts)}", train.con)
        share = float(qi.small(_rows(cohort)).mean())
        ctx = EvalContext(SCHEMA, train.con, train, cohort, holdout, EvalOptions(seed=0))
        evaluation = run_metrics(ctx, ["privacy.k_anonymity"])
        verdicts[bool(params)] = (share, generator.last_sample_report_.qi_redrawn,
                                  next(v.status for v in apply_policy(evaluation, load_policy()).verdicts if v.metric == SMALL))
    (plain, plain_redrawn, plain_status), (guarded, redrawn, status) = verdicts[False], verdicts[True]
    fresh = float(qi.small(_rows(holdout)).mean())
    # donors replay training's combinations: the plain cohort points at small classes far more than fresh people
    assert plain > fresh + 0.1 and plain_status != "pass" and plain_redrawn == 0
    assert guarded <= qi.fresh_rate + 0.01 and status == "pass" and redrawn > 0
