"""Fidelity metrics on real public data: two disjoint DE-SynPUF samples (cms_desynpuf schema), one as "real",
one as "synthetic". Skips with a reason when ../shared/datasets is absent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluate.fidelity  # noqa: F401  (registers the fidelity metrics)
from data_schemas.io import load_schema
from evaluate.context import EvalContext, EvalOptions, load_context
from evaluate.registry import select
from evaluate.result import EvaluationResult

pytestmark = pytest.mark.shared_data

SCHEMA = load_schema("cms_desynpuf")
SHARED = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "desynpuf"


@pytest.fixture(scope="module")
def context() -> EvalContext:
    if not SHARED.is_dir():
        pytest.skip(f"DE-SynPUF samples not found at {SHARED}: real-data tests need ../shared/datasets beside the repo")
    return load_context(SCHEMA, SHARED / "1-sample-10000", SHARED / "2-sample-10000", options=EvalOptions(seed=1))


@pytest.fixture(scope="module")
def evaluation(context: EvalContext) -> EvaluationResult:
    specs = [s for s in select(["fidelity"]) if not s.name.startswith("fidelity.detection")]
    return EvaluationResult(tuple(r for s in specs for r in s.fn(context)), seed=1)


def test_values_in_range_and_plain_json(evaluation: EvaluationResult) -> None:
    for r in evaluation.results:
        assert r.value is not None and r.range[0] <= r.value <= r.range[1], r.name
    json.dumps(evaluation.to_dict(), allow_nan=False)
    assert evaluation.get("fidelity.referential_integrity").value == 1.0
    assert evaluation.get("fidelity.rule_violations").value == 0.0  # both samples passed validation
    assert evaluation.get("fidelity.column_shapes").value > 0.8  # disjoint samples of one population


def test_repeated_code_groups(evaluation: EvaluationResult) -> None:
    full = evaluation.get("fidelity.code_hierarchy.full")
    scored = {d["column"] for d in full.details}
    assert {"diagnosis_codes", "procedure_codes", "ADMTNG_ICD9_DGNS_CD", "CLM_DRG_CD"} <= scored
    assert ("hcpcs_codes", "no codes in the real data") in {(s.column, s.reason) for s in full.skipped}
    chapters = evaluation.get("fidelity.code_hierarchy.chapter")
    assert any(d["column"] == "diagnosis_codes" for d in chapters.details)
    pairs = evaluation.get("fidelity.column_pair_trends")
    slot = {s.column: s.reason for s in pairs.skipped if s.table == "inpatient_claims"}
    assert slot["ICD9_DGNS_CD_1"].startswith("slot of the repeated column group 'diagnosis_codes'")
    shapes = evaluation.get("fidelity.column_shapes")
    assert ("inpatient_claims", "HCPCS_CD_1", "no non-null values in the real data") in {(s.table, s.column, s.reason) for s in shapes.skipped}


def test_multi_table_and_temporal(evaluation: EvaluationResult) -> None:
    children = evaluation.get("fidelity.children_per_parent").details
    assert [(d["table"], d["parent"]) for d in children] == [("inpatient_claims", "beneficiary_summary.DESYNPUF_ID")]
    age = evaluation.get("fidelity.age_at_event")
    assert "BENE_BIRTH_DT" in age.notes[0] and 60 < age.details[0]["median_real"] < 90
    assert evaluation.get("fidelity.event_gaps").details[0]["table"] == "inpatient_claims"


def test_column_values_match_sdmetrics(context: EvalContext, evaluation: EvaluationResult) -> None:
    from sdmetrics.single_column import KSComplement, TVComplement

    shapes = {(d["table"], d["column"]): d["value"] for d in evaluation.get("fidelity.column_shapes").details}
    for table, column, metric in (
        ("beneficiary_summary", "BENE_BIRTH_DT", KSComplement),
        ("beneficiary_summary", "MEDREIMB_IP", KSComplement),
        ("beneficiary_summary", "SP_STATE_CODE", TVComplement),
        ("inpatient_claims", "CLM_PMT_AMT", KSComplement),
        ("inpatient_claims", "ICD9_DGNS_CD_1", TVComplement),
    ):
        real = context.con.execute(f"SELECT {column} FROM {context.train.sql_name(table)}").df()[column]
        syn = context.con.execute(f"SELECT {column} FROM {context.synthetic.sql_name(table)}").df()[column]
        if metric is KSComplement and str(real.dtype).startswith("datetime"):
            real, syn = real.astype("datetime64[ns]"), syn.astype("datetime64[ns]")
        assert shapes[(table, column)] == pytest.approx(metric.compute(real, syn), abs=1e-6), column
