"""Calibration of the privacy evaluator: what makes its numbers trustworthy.

* ``copy``: the "synthetic" data are the training patients themselves. Every attack must flag it
  (membership-inference AUC > 0.95, exact-copy share near 1, risk level high).
* ``fresh``: the "synthetic" data are patients of the same population that no generator saw (another
  part of the simulated demo population; another DE-SynPUF sample folder, a disjoint population).
  Membership inference must be a coin toss (AUC within 0.5 +- 0.05), the DCR share near 0.5.
* Small leaks on real data (``benchmarks/calibrate_privacy.py`` at test size, DE-SynPUF, an 80/20 split
  of disjoint samples): every training patient copied, near-copied or with one quasi-identifier changed,
  5 % of the synthetic patients copied verbatim or as near-copies among fresh patients, and 1 % copied
  verbatim all come out ``high``; 2 % near-copies at least ``medium``; fresh patients alone ``low``.
* Results are deterministic for a seed.
* Our Anonymeter-style risks lie within Anonymeter's confidence intervals on the same data and
  parameters (needs the separate ``.venv-anonymeter``: anonymeter pins numpy < 1.27).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from data_schemas.io import load_schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.policy import apply_policy, load_policy
from evaluate.result import EvaluationResult
from evaluate.runner import run_metrics
from synth.load import connect, read_dataset
from tests.benchmark_module import load_benchmark
from tests.unit.evaluate.test_privacy_helpers import ExactCopyGenerator, load_parts

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
SYNPUF = DATASETS / "desynpuf"
ATTACKS = ("distance", "domias", "shadow")
N = 2000


@pytest.fixture(scope="module")
def population():
    from synth.demo_population import simulate

    return simulate(3 * N, seed=2024)


def _evaluate(population, synthetic_part: tuple[int, int], *, seed: int = 7, metrics: list[str] | None = None) -> EvaluationResult:
    schema = load_schema("kr_claims")
    data = load_parts(schema, population, {"train": (0, N), "holdout": (N, 2 * N), "synthetic": synthetic_part})
    params = {"privacy.mia.shadow": {"generator_factory": ExactCopyGenerator, "n_shadow_models": 4, "n_targets": 100}}
    ctx = EvalContext(schema, data["train"].con, data["train"], data["synthetic"], data["holdout"],
                      EvalOptions(seed=seed, params=params))
    return run_metrics(ctx, metrics or ["privacy"])


@pytest.fixture(scope="module")
def copy_result(population) -> EvaluationResult:
    return _evaluate(population, (0, N))


@pytest.fixture(scope="module")
def fresh_result(population) -> EvaluationResult:
    return _evaluate(population, (2 * N, 3 * N))


def _value(result: EvaluationResult, name: str) -> float:
    r = result.get(name)
    assert r is not None and r.value is not None, f"{name} was not computed: {r}"
    return r.value


def test_copy_is_flagged_by_every_attack(copy_result: EvaluationResult) -> None:
    for attack in ATTACKS:
        assert _value(copy_result, f"privacy.mia.{attack}.auc") > 0.95, attack
    assert _value(copy_result, "privacy.exact_copies") > 0.99
    assert _value(copy_result, "privacy.dcr.share_closer_to_train") > 0.9
    for risk in ("singling_out", "linkability", "attribute_inference"):
        assert _value(copy_result, f"privacy.{risk}.risk") > 0.5, risk
    # classes on generalised quasi-identifiers (5-year birth bands): fewer are unique, a copy still matches far more
    unique = copy_result.get("privacy.unique_qi_matches")
    rates = next(d for d in unique.details if d["kind"] == "rates")  # type: ignore[union-attr]
    assert rates["attack_rate"] - rates["baseline_rate"] > 0.1
    verdict = apply_policy(copy_result, load_policy())
    assert verdict.risk_level == "high"
    failed = {v.metric for v in verdict.verdicts if v.status == "fail"}
    assert {f"privacy.mia.{a}.auc" for a in ATTACKS} <= failed
    assert {"privacy.exact_copies", "privacy.singling_out.risk", "privacy.linkability.risk",
            "privacy.attribute_inference.risk", "privacy.dcr.share_closer_to_train"} <= failed


def test_fresh_patients_look_like_non_members(fresh_result: EvaluationResult) -> None:
    for attack in ("distance", "domias"):
        assert abs(_value(fresh_result, f"privacy.mia.{attack}.auc") - 0.5) < 0.05, attack
    # 100 targets per class: the AUC's own spread is about 0.04 (seeds 7-12 gave 0.47-0.57, mean 0.51)
    shadow = fresh_result.get("privacy.mia.shadow.auc")
    assert shadow is not None and shadow.ci is not None and abs(shadow.value - 0.5) < 0.1 and shadow.ci.low < 0.55
    assert abs(_value(fresh_result, "privacy.dcr.share_closer_to_train") - 0.5) < 0.04
    assert _value(fresh_result, "privacy.exact_copies") == 0.0
    for risk in ("singling_out", "linkability", "attribute_inference"):
        r = fresh_result.get(f"privacy.{risk}.risk")
        assert r is not None and r.ci is not None and r.ci.low < 0.05, risk
    verdict = apply_policy(fresh_result, load_policy())
    assert verdict.risk_level == "low", verdict.reasons


def test_results_are_deterministic_for_a_seed(population, fresh_result: EvaluationResult) -> None:
    metrics = ["privacy.dcr", "privacy.mia.distance", "privacy.mia.domias", "privacy.singling_out",
               "privacy.linkability", "privacy.attribute_inference", "privacy.exact_copies", "privacy.k_anonymity"]
    again = _evaluate(population, (2 * N, 3 * N), metrics=metrics)
    for r in again.results:
        first = fresh_result.get(r.name)
        assert first is not None and first.to_dict() == r.to_dict(), r.name
    other = _evaluate(population, (2 * N, 3 * N), seed=8, metrics=["privacy.mia.distance"])
    assert other.get("privacy.mia.distance.auc").to_dict() != fresh_result.get("privacy.mia.distance.auc").to_dict()  # type: ignore[union-attr]


def _synpuf(folders: dict[str, str], max_rows: int = 4000) -> EvalContext:
    if not SYNPUF.is_dir():
        pytest.skip(f"DE-SynPUF calibration needs the shared datasets at {SYNPUF} (absent here)")
    schema = load_schema("cms_desynpuf")
    con = connect(read_dirs=[SYNPUF])
    data = {}
    for ns, folder in folders.items():
        dataset, report = read_dataset(schema, SYNPUF / folder, con=con, namespace=ns)
        assert report.ok
        data[ns] = dataset
    return EvalContext(schema, con, data["train"], data["synthetic"], data["holdout"], EvalOptions(seed=3, max_rows=max_rows))


SYNPUF_METRICS = ["privacy.exact_copies", "privacy.dcr", "privacy.mia.distance", "privacy.mia.domias"]


@pytest.mark.shared_data
@pytest.mark.slow
def test_synpuf_disjoint_samples_look_like_non_members() -> None:
    ctx = _synpuf({"train": "1-sample-10000", "holdout": "2-sample-10000", "synthetic": "3-sample-10000"})
    result = run_metrics(ctx, SYNPUF_METRICS)
    for attack in ("distance", "domias"):
        assert abs(_value(result, f"privacy.mia.{attack}.auc") - 0.5) < 0.05, attack
    assert abs(_value(result, "privacy.dcr.share_closer_to_train") - 0.5) < 0.05
    assert _value(result, "privacy.exact_copies") < 0.01


@pytest.mark.shared_data
@pytest.mark.slow
def test_synpuf_copy_is_flagged() -> None:
    # Every synthetic patient must be kept: a subsample of the copies would hide most members' twins.
    ctx = _synpuf({"train": "1-sample-10000", "holdout": "2-sample-10000", "synthetic": "1-sample-10000"}, max_rows=10_000)
    result = run_metrics(ctx, SYNPUF_METRICS)
    for attack in ("distance", "domias"):
        assert _value(result, f"privacy.mia.{attack}.auc") > 0.95, attack
    assert _value(result, "privacy.exact_copies") == 1.0


@pytest.mark.slow
def test_our_risks_lie_within_anonymeters_confidence_intervals(population, tmp_path: Path) -> None:
    bench = load_benchmark("bench_privacy")
    if bench.anonymeter_python() is None:
        pytest.skip(
            f"anonymeter pins numpy < 1.27 and lives in its own environment, absent here ({bench.ANONYMETER_VENV}); "
            "create it with: python3 -m venv .venv-anonymeter && .venv-anonymeter/bin/pip install anonymeter 'numpy<1.27'"
        )
    check = bench.agreement_check(population=population, n_rows=N, n_attacks=300, workdir=tmp_path, seed=5)
    for attack, row in check.items():
        low, high = row["anonymeter_ci"]
        assert low - 0.02 <= row["ours"] <= high + 0.02, (attack, row)


@pytest.fixture(scope="module")
def harness():
    if not SYNPUF.is_dir():
        pytest.skip(f"the calibration harness needs the DE-SynPUF samples at {SYNPUF} (absent here)")
    cal = load_benchmark("calibrate_privacy")
    pops = cal.Populations(SYNPUF)
    # 1,600 training and 400 holdout patients (80/20, disjoint samples), 1,600 synthetic patients per case
    return cal, pops, cal.prepare_run(pops, 0, n_train=1600, n_holdout=400)


@pytest.mark.shared_data
@pytest.mark.parametrize(("case", "levels"), [
    ("verbatim", {"high"}), ("near", {"high"}), ("one_qi", {"high"}), ("exact_5", {"high"}), ("near_5", {"high"}),
    ("exact_1", {"high"}),  # 16 verbatim patients among 1,584 fresh ones
    ("near_2", {"medium", "high"}),  # 32 near-copies (1 % is 16 here, below what 1,600 patients can show: see the README)
    ("fresh", {"low"}),
])
def test_small_leaks_on_real_data_are_caught_and_fresh_patients_pass(harness, case: str, levels: set[str]) -> None:
    cal, pops, data = harness
    synthetic = cal.synthetic_case(pops, data, cal.CASES[case], n_synthetic=1600)
    try:
        results = cal.evaluate_case(pops, data, synthetic)
    finally:
        pops.drop(synthetic)
    verdict = cal.judge(results, load_policy())
    assert verdict.risk_level in levels, verdict.reasons
    if case == "near_5":
        # the tail statistic is what catches a few near-copies: the DCR share (a mean) barely moves
        got = {r["name"]: r for r in results}
        near = got["privacy.dcr.near_copy_share"]
        assert near["ci"][0] > 0.01 and 0.02 < near["value"] < 0.08, near
        assert abs(got["privacy.dcr.share_closer_to_train"]["value"] - 0.5) < 0.05
