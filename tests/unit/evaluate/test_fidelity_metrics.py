"""Every fidelity metric on the simulated kr_claims population: ranges, metric(x, x), row order, skipped
columns with reasons, empty input, findings in synthetic data, and the headline score."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_schemas.io import load_schema
from evaluate.context import EvalContext, EvalOptions, load_context
from evaluate.errors import EmptyInputError
from evaluate.fidelity import overall_fidelity
from evaluate.fidelity.codes import level_expr
from evaluate.fidelity.columns import column_shapes
from evaluate.fidelity.pairs import column_pair_trends
from evaluate.registry import METRICS, select
from evaluate.result import EvaluationResult, MetricResult
from evaluate.runner import run_metrics
from synth.demo_population import simulate
from synth.load import connect, frames_to_dataset

SCHEMA = load_schema("kr_claims")
FAST = {
    "fidelity.detection.logistic": {"max_rows": 300, "folds": 3},
    "fidelity.detection.gbt": {"max_rows": 300, "folds": 3},
}
DETERMINISTIC = [s.name for s in select(["fidelity"]) if not s.name.startswith("fidelity.detection")]
EXPECTED = {
    "fidelity.column_shapes", "fidelity.ks_complement", "fidelity.tv_complement", "fidelity.missing_value_similarity",
    "fidelity.range_coverage", "fidelity.category_coverage", "fidelity.column_pair_trends",
    "fidelity.correlation_similarity.pearson", "fidelity.correlation_similarity.spearman", "fidelity.contingency_similarity", "fidelity.code_hierarchy.chapter",
    "fidelity.code_hierarchy.category", "fidelity.code_hierarchy.full", "fidelity.children_per_parent",
    "fidelity.referential_integrity", "fidelity.event_gaps", "fidelity.sequence_length", "fidelity.age_at_event",
    "fidelity.rule_violations", "fidelity.detection.logistic", "fidelity.detection.gbt",
}


def _shuffled(frames: dict[str, pa.Table], seed: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    return {name: t.take(pa.array(rng.permutation(t.num_rows))) for name, t in frames.items()}


@pytest.fixture(scope="module")
def kr(kr_frames: dict[str, pa.Table]):
    """One connection: train (seed 7), synthetic (another population, seed 8), and train with shuffled rows."""
    con = connect()
    out = {}
    for ns, frames in (("train", kr_frames), ("synthetic", simulate(300, seed=8)), ("shuffled", _shuffled(kr_frames, 3))):
        dataset, report = frames_to_dataset(SCHEMA, frames, con=con, namespace=ns)
        assert report.ok, report.problems
        out[ns] = dataset
    yield con, out
    con.close()


def ctx(kr, real: str = "train", synthetic: str = "synthetic", **options) -> EvalContext:
    con, ds = kr
    return EvalContext(SCHEMA, con, ds[real], ds[synthetic], None, EvalOptions(params=FAST, **options))


@pytest.fixture(scope="module")
def evaluation(kr) -> EvaluationResult:
    return run_metrics(ctx(kr), ["fidelity"])


def test_every_fidelity_result_is_produced_in_range_without_nan(evaluation: EvaluationResult) -> None:
    names = {r.name for r in evaluation.results}
    assert names == EXPECTED
    produced = {n for s in select(["fidelity"]) for n in s.produces}
    assert produced == EXPECTED
    for r in evaluation.results:
        assert r.family == "fidelity" and r.goal in ("maximize", "minimize")
        assert r.value is not None, (r.name, r.skipped)
        assert r.range[0] <= r.value <= r.range[1], r.name
        for d in r.details:
            if isinstance(d.get("value"), float):
                assert r.range[0] <= d["value"] <= r.range[1], (r.name, d)
        if r.ci is not None:
            assert r.ci.low <= r.value + 1e-12 and r.value - 1e-12 <= r.ci.high
    json.dumps(evaluation.to_dict(), allow_nan=False)  # no NaN or infinity anywhere, details included
    assert 0.5 < overall_fidelity(evaluation) < 1.0


def test_identifiers_and_ids_are_skipped_with_reasons(evaluation: EvaluationResult) -> None:
    shapes = evaluation.get("fidelity.column_shapes")
    reasons = {(s.table, s.column): s.reason for s in shapes.skipped}
    for col in ("patient_id", "name", "rrn", "phone"):
        assert reasons[("patients", col)] == "direct identifier: never scored"
    assert reasons[("claims", "claim_id")].startswith("id column")
    scored = {(d["table"], d["column"]) for d in shapes.details}
    assert not scored & set(reasons)
    everything = {(t.name, c) for t in SCHEMA.tables.values() for c in t.columns}
    assert scored | set(reasons) == everything


def test_identical_data_is_perfect(kr) -> None:
    same = ctx(kr, "train", "train")
    results = [r for spec in select(DETERMINISTIC) for r in spec.fn(same)]
    for r in results:
        if r.name == "fidelity.rule_violations":
            assert r.value == 0.0
        else:
            assert r.value == pytest.approx(1.0, abs=1e-12), r.name
    gbt = METRICS["fidelity.detection.logistic"].fn(same)[0]
    assert gbt.value > 0.8  # a classifier cannot tell a table from itself (AUC near 0.5)


def test_row_order_does_not_matter(kr) -> None:
    for name in [*DETERMINISTIC, "fidelity.detection.logistic"]:
        a = METRICS[name].fn(ctx(kr, "train", "synthetic"))
        b = METRICS[name].fn(ctx(kr, "shuffled", "synthetic"))
        for ra, rb in zip(a, b):
            assert ra.value == pytest.approx(rb.value, abs=1e-12), ra.name
            assert len(ra.details) == len(rb.details)


def test_empty_synthetic_data_raises(kr) -> None:
    con, ds = kr
    empty, report = frames_to_dataset(SCHEMA, {}, con=con, namespace="empty")
    assert not report.ok
    for spec in select(["fidelity"]):
        with pytest.raises(EmptyInputError, match="synthetic data has no rows"):
            spec.fn(EvalContext(SCHEMA, con, ds["train"], empty, None, EvalOptions(params=FAST)))
    with pytest.raises(EmptyInputError, match="real"):
        column_shapes(EvalContext(SCHEMA, con, empty, ds["synthetic"], None))


def test_all_null_columns_score_zero_or_are_skipped(kr, kr_frames) -> None:
    con, ds = kr
    frames = dict(kr_frames)
    claims = frames["claims"]
    frames["claims"] = claims.set_column(
        claims.schema.get_field_index("sub_dx"), "sub_dx", pa.nulls(claims.num_rows, pa.string())
    )
    nulled, _ = frames_to_dataset(SCHEMA, frames, con=con, namespace="nulled")
    shapes = column_shapes(EvalContext(SCHEMA, con, ds["train"], nulled, None))[0]
    row = next(d for d in shapes.details if (d["table"], d["column"]) == ("claims", "sub_dx"))
    assert row["value"] == 0.0 and any("sub_dx" in n for n in shapes.notes)
    reverse = column_shapes(EvalContext(SCHEMA, con, nulled, ds["train"], None))[0]
    assert ("claims", "sub_dx", "no non-null values in the real data") in {(s.table, s.column, s.reason) for s in reverse.skipped}
    assert not any(math.isnan(d["value"]) for d in reverse.details)


def test_findings_in_synthetic_data_are_measured_not_refused(tmp_path: Path, kr_frames) -> None:
    """load_context keeps rule violations and orphan keys of synthetic data for the metrics to measure."""
    bad = dict(kr_frames)
    claims = bad["claims"].to_pandas()
    claims.loc[claims.index[:50], "patient_share"] = claims.loc[claims.index[:50], "total_cost"] + 1
    claims.loc[claims.index[:10], "patient_id"] = "P9999999"
    bad["claims"] = pa.Table.from_pandas(claims, preserve_index=False, schema=kr_frames["claims"].schema)
    for name, frames in (("train", kr_frames), ("synthetic", bad)):
        (tmp_path / name).mkdir()
        for table, t in frames.items():
            pq.write_table(t, tmp_path / name / f"{table}.parquet")
    context = load_context(SCHEMA, tmp_path / "train", tmp_path / "synthetic")
    assert {p.kind for p in context.reports["synthetic"].problems} >= {"rule_violation", "orphan_key"}
    rules = METRICS["fidelity.rule_violations"].fn(context)[0]
    share = next(d for d in rules.details if d["rule"] == "patient_share_within_cost")
    assert share["violations"] == 50 and share["real"] == 0.0 and rules.value > 0
    integrity = METRICS["fidelity.referential_integrity"].fn(context)[0]
    claims_fk = next(d for d in integrity.details if d["table"] == "claims" and d["column"] == "patient_id")
    assert claims_fk["orphans"] == 10 and integrity.value < 1.0
    with pytest.raises(Exception, match="rule"):
        load_context(SCHEMA, tmp_path / "train", tmp_path / "synthetic", strict_synthetic=True)


def test_pair_trend_options_are_validated(kr) -> None:
    with pytest.raises(ValueError, match="'real_correlation_threshold' parameter of fidelity.column_pair_trends"):
        column_pair_trends(
            EvalContext(SCHEMA, kr[0], kr[1]["train"], kr[1]["synthetic"], None,
                        EvalOptions(params={"fidelity.column_pair_trends": {"real_correlation_threshold": 2}}))
        )


def test_detection_reports_auc_with_interval(evaluation: EvaluationResult) -> None:
    for name in ("fidelity.detection.logistic", "fidelity.detection.gbt"):
        r = evaluation.get(name)
        assert r.ci is not None and r.seed == 0 and any("seeded samples of at most 300" in n for n in r.notes)
        for d in r.details:
            assert 0.0 <= d["auc_ci"][0] <= d["auc"] <= d["auc_ci"][1] <= 1.0
            assert d["n_real"] <= 300 and len(d["roc"]["fpr"]) == 21
        assert {s.table for s in r.skipped if s.column is None} <= set(SCHEMA.tables)


@pytest.mark.parametrize("model", ["logistic", "gbt"])
def test_detection_survives_a_number_missing_in_every_fitting_row(model: str) -> None:
    """A rarely present number (a death date) can be missing in a whole fold; scikit-learn's binning failed on it."""
    from evaluate.fidelity.detection import detect_table
    from evaluate.fidelity.features import Encoder

    rng = np.random.default_rng(0)
    n = 60
    sexes = np.array(["F", "M"], dtype=object)
    real = {"age": rng.normal(50, 10, n), "death": np.full(n, np.nan), "sex": rng.choice(sexes, n)}
    synthetic = {"age": rng.normal(70, 10, n), "death": np.full(n, np.nan), "sex": rng.choice(sexes, n)}
    synthetic["death"][0] = 2020.0  # one value: the fold testing that row fits on numbers all missing
    encoder = Encoder(numeric=("age", "death"), categorical=(("sex", ("F", "M")),))
    auc, var, y, scores, _ = detect_table(real, synthetic, encoder, model, seed=0, folds=3)
    assert auc > 0.8 and var > 0 and len(scores) == 2 * n  # the ages differ by two SDs: still detected


@pytest.mark.parametrize(
    ("vocabulary", "code", "chapter", "category"),
    [
        ("KCD", "A09", "I", "A09"), ("ICD10", "C50.9", "II", "C50"), ("ICD10", "D48", "II", "D48"),
        ("ICD10", "D50", "III", "D50"), ("ICD10", "H60.1", "VIII", "H60"), ("ICD10", "T98", "XIX", "T98"),
        ("ICD10", "U07.1", "XXII", "U07"), ("ICD10", "Y98", "XX", "Y98"), ("ICD10", "Z00", "XXI", "Z00"),
        ("ICD9CM", "0389", "1", "038"), ("ICD9CM", "25000", "3", "250"), ("ICD9CM", "V4581", "V", "V45"),
        ("ICD9CM", "E8889", "E", "E888"), ("ATC", "C09CA01", "C", "C09"), ("ICD9PCS", "3961", "35-39", "39"),
    ],
)
def test_code_levels(vocabulary: str, code: str, chapter: str, category: str) -> None:
    con = connect()
    got = con.execute(
        f"SELECT {level_expr(vocabulary, 'chapter', 'v')}, {level_expr(vocabulary, 'category', 'v')} FROM (SELECT ? AS v)",
        [code],
    ).fetchall()[0]
    assert got == (chapter, category)
    con.close()


def test_overall_fidelity_ignores_skipped_parts() -> None:
    shapes = MetricResult("fidelity.column_shapes", "fidelity", 0.8, "maximize")
    pairs = MetricResult("fidelity.column_pair_trends", "fidelity", None, "maximize")
    assert overall_fidelity(EvaluationResult((shapes, pairs), seed=0)) == 0.8
    assert overall_fidelity(EvaluationResult((), seed=0)) is None
