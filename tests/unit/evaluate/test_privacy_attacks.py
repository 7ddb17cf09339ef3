"""Anonymeter-style attacks, exact copies, quasi-identifier risk and parameter checks on small data."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_schemas.io import load_schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.errors import EmptyInputError
from evaluate.privacy.attack_data import MixedFrame
from evaluate.privacy.errors import InvalidParameterError
from evaluate.privacy.inference import inference_risks
from evaluate.privacy.linkability import linkability_risk
from evaluate.privacy.singling_out import QueryCounter, multivariate_queries, random_queries, singling_out_risk
from evaluate.runner import run_metrics
from tests.unit.evaluate.test_privacy_helpers import load_parts


def _frame(rng: np.random.Generator, n: int, p: int = 2, c: int = 2, nan: float = 0.1, digits: int = 1) -> MixedFrame:
    num = np.round(rng.normal(size=(n, p)), digits)
    num[rng.random((n, p)) < nan] = np.nan
    cat = rng.integers(-1, 4, size=(n, c))
    return MixedFrame(tuple(f"n{i}" for i in range(p)), num, tuple(f"c{i}" for i in range(c)), cat)


def _brute_count(frame: MixedFrame, query) -> int:
    mask = np.ones(frame.n_rows, dtype=bool)
    nn = len(frame.numeric_names)
    for col, op, val in query:
        v = frame.numeric[:, col] if col < nn else frame.categorical[:, col - nn]
        present = ~np.isnan(v) if col < nn else v >= 0
        with np.errstate(invalid="ignore"):
            m = {"isnull": ~present, "notnull": present, "eq": present & (v == val), "ne": present & (v != val),
                 "le": present & (v <= val), "lt": present & (v < val), "ge": present & (v >= val),
                 "gt": present & (v > val)}[op]
        mask &= m
    return int(mask.sum())


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_query_counter_matches_a_full_scan(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = _frame(rng, n)
    counter = QueryCounter(frame)
    queries = random_queries(frame, n_queries=30, n_cols=2, rng=rng)
    found, _ = multivariate_queries(frame, counter, n_queries=10, n_cols=3, max_attempts=200, rng=rng)
    for q in queries + found:
        assert counter.count(q) == _brute_count(frame, q)
    assert all(counter.count(q) == 1 for q in found)


def test_singling_out_copy_vs_fresh() -> None:
    rng = np.random.default_rng(0)
    ori, control, fresh = _frame(rng, 3000, nan=0.0), _frame(rng, 3000, nan=0.0), _frame(rng, 3000, nan=0.0)
    copy, _ = singling_out_risk(ori, ori, control, n_attacks=200, rng=np.random.default_rng(1))
    assert copy.attack.observed > 0.99 and copy.value > 0.5  # compared at the smaller of 3,000 distinct rows each
    safe, info = singling_out_risk(ori, fresh, control, n_attacks=200, rng=np.random.default_rng(1))
    assert safe.ci.low < 0.1 and info["n_queries"] > 0


def test_linkability_and_inference_copy_vs_fresh() -> None:
    rng = np.random.default_rng(3)
    # continuous numbers: with many tied distances the nearest record is an arbitrary one (ties go to the
    # lower index, as an argsort does in Anonymeter), and links are then found by chance only
    ori, control, fresh = (_frame(rng, 2000, nan=0.0, digits=6) for _ in range(3))
    aux = (["n0", "c0"], ["n1", "c1"])
    copy, _ = linkability_risk(ori, ori, control, aux, n_attacks=300, rng=np.random.default_rng(4))
    safe, _ = linkability_risk(ori, fresh, control, aux, n_attacks=300, rng=np.random.default_rng(4))
    assert copy.value > 0.8 and safe.ci.low < 0.05
    risks = inference_risks(ori, ori, control, ["n0", "n1", "c0"], ["c1"], n_attacks=300, rng=np.random.default_rng(5))
    assert risks["c1"].value > 0.8
    fresh_risk = inference_risks(ori, fresh, control, ["n0", "n1", "c0"], ["c1"], n_attacks=300, rng=np.random.default_rng(5))
    assert fresh_risk["c1"].ci.low < 0.05
    with pytest.raises(EmptyInputError):
        linkability_risk(ori.take(np.array([], dtype=int)), ori, control, aux, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def small_copy_ctx():
    from synth.demo_population import simulate

    schema = load_schema("kr_claims")
    data = load_parts(schema, simulate(450, seed=11), {"train": (0, 150), "holdout": (150, 300), "synthetic": (0, 150)})
    return EvalContext(schema, data["train"].con, data["train"], data["synthetic"], data["holdout"], EvalOptions(seed=2))


def test_every_privacy_metric_runs_and_flags_a_copy(small_copy_ctx: EvalContext) -> None:
    evaluation = run_metrics(small_copy_ctx, ["privacy"])
    json.dumps(evaluation.to_dict())
    got = {r.name: r for r in evaluation.results}
    assert got["privacy.exact_copies"].value == 1.0
    assert got["privacy.mia.distance.auc"].value > 0.95
    assert got["privacy.mia.distance.tpr_at_fpr_1pct"].value is None  # 75 non-members are too few for FPR 1 %
    assert "needs at least 100 non-member targets" in got["privacy.mia.distance.tpr_at_fpr_1pct"].skipped[0].reason
    assert got["privacy.mia.shadow.auc"].value is None and "generator_factory" in got["privacy.mia.shadow.auc"].skipped[0].reason
    assert got["privacy.unique_qi_matches"].value > 0.3
    for name in ("privacy.singling_out.risk", "privacy.linkability.risk", "privacy.attribute_inference.risk"):
        rates = got[name].details[0]
        assert rates["kind"] == "rates" and {"attack_rate", "baseline_rate", "control_rate"} <= set(rates)
        assert got[name].value > 0.3 and got[name].ci is not None
    roc = [d for d in got["privacy.mia.domias.auc"].details if d["kind"] == "roc"]
    assert 2 <= len(roc) <= 200
    for r in evaluation.results:
        assert r.value is None or r.range[0] <= r.value <= r.range[1]  # [0, 1] but for the epsilon bound
    # the epsilon audit needs canaries and a refit (tests/integration/test_dp_release.py): without a generator it says how
    bound = got["privacy.epsilon_lower_bound"]
    assert bound.value is None and "--audit canaries" in bound.skipped[0].reason


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"privacy.singling_out": {"n_attacks": 0}},
         "The 'n_attacks' parameter of privacy.singling_out must be an int in [1, 1000000]; got 0 instead."),
        ({"privacy": {"n_targets": 2}}, "The 'n_targets' parameter of privacy.mia.distance must be an int in [10, inf); got 2 instead."),
        ({"privacy.mia.domias": {"synthetic_bandwidth": -1}},
         "The 'synthetic_bandwidth' parameter of privacy.mia.domias must be a float in (0.0, 100.0]; got -1 instead."),
        ({"privacy.linkability": {"aux_cols": [["patients.sex"], ["nope"]]}}, "unknown: nope"),
    ],
)
def test_parameter_errors_name_parameter_range_and_value(small_copy_ctx: EvalContext, params: dict, message: str) -> None:
    ctx = EvalContext(small_copy_ctx.schema, small_copy_ctx.con, small_copy_ctx.train, small_copy_ctx.synthetic,
                      small_copy_ctx.holdout, EvalOptions(seed=2, params=params))
    metric = next(iter(k for k in params if k != "privacy"), "privacy.mia.distance")
    with pytest.raises(InvalidParameterError) as err:
        run_metrics(ctx, [metric])
    assert message in str(err.value)
