"""The app's data layer (no Streamlit): frames from stored aggregates and filters (decision rules: test_app_decisions)."""
from __future__ import annotations


import pandas as pd
import pytest

from synth.release import Store
from synthmed.review_app import data
from tests.app.conftest import AppStore


def _evaluation(results: list[dict], policy: dict | None = None) -> data.StoredEvaluation:
    return data.StoredEvaluation("r1", "e1", None, 0.8, "low", policy, {r["name"]: r for r in results}, {})


def test_marginal_frame_reads_categories_and_bins() -> None:
    ev = _evaluation([{
        "name": "fidelity.column_shapes", "value": 0.9, "details": [
            {"table": "t", "column": "sex", "metric": "tv_complement", "value": 0.9,
             "frequencies": {"categories": ["F", "M"], "real": [0.5, 0.5], "synthetic": [0.6, 0.4]}},
            {"table": "t", "column": "age", "metric": "ks_complement", "value": 0.8,
             "bins": {"edges": [0.0, 50.0, 100.0], "real": [0.3, 0.7], "synthetic": [0.4, 0.6]}},
        ]}])
    sex = data.marginal_frame(ev, "t", "sex")
    assert sex is not None and list(sex["label"]) == ["F", "M", "F", "M"]
    assert list(sex["side"]) == ["real", "real", "synthetic", "synthetic"] and sex["frequency"].sum() == pytest.approx(2.0)
    age = data.marginal_frame(ev, "t", "age")
    assert age is not None and list(age["label"][:2]) == ["0 – 50", "50 – 100"]
    assert data.marginal_frame(ev, "t", "nope") is None
    scores = data.column_scores({"r1": ev})
    assert set(scores["column"]) == {"sex", "age"} and set(scores["metric"]) == {"tv_complement", "ks_complement"}


def test_privacy_frames_from_stored_details() -> None:
    ev = _evaluation([
        {"name": "privacy.mia.distance.auc", "value": 0.6, "ci": [0.5, 0.7], "skipped": [],
         "details": [{"kind": "rates"}, {"kind": "roc", "fpr": 0.0, "tpr": 0.0}, {"kind": "roc", "fpr": 1.0, "tpr": 1.0}]},
        {"name": "privacy.mia.distance.tpr_at_fpr_1pct", "value": None, "ci": None, "details": [],
         "skipped": [{"reason": "needs 100 non-members", "table": None, "column": None}]},
        {"name": "privacy.dcr.share_closer_to_train", "value": 0.5, "ci": [0.4, 0.6], "skipped": [], "details": [
            {"kind": "rates", "median_dcr_train": 1.0, "median_dcr_holdout": 1.1},
            {"kind": "dcr_histogram", "low": 0.0, "high": 1.0, "synthetic_to_train": 3, "synthetic_to_holdout": 1},
            {"kind": "dcr_histogram", "low": 1.0, "high": 2.0, "synthetic_to_train": 1, "synthetic_to_holdout": 3}]},
        {"name": "privacy.linkability.risk", "value": 0.1, "ci": [0.0, 0.2], "skipped": [], "details": [
            {"kind": "rates", "attack_rate": 0.2, "baseline_rate": 0.1, "control_rate": 0.11, "better_than_baseline": True}]},
        {"name": "privacy.audit.epsilon_lower_bound", "value": 1.5, "ci": [0.9, 2.0], "skipped": [], "details": []},
    ])
    evs = {"r1": ev}
    roc = data.roc_frame(evs)
    assert list(roc["attack"].unique()) == ["distance"] and len(roc) == 2 and roc["auc"].iloc[0] == 0.6
    mia = data.mia_table(evs).iloc[0]
    assert mia["auc"] == "0.600 [0.500, 0.700]" and mia["tpr_at_fpr_1pct"].startswith("skipped: needs 100")
    hist = data.dcr_histogram_frame(evs)
    assert hist.groupby("to")["share"].sum().to_dict() == {"holdout": 1.0, "train": 1.0}
    risks = data.anonymeter_frame(evs)
    assert list(risks["risk"]) == ["linkability"] and risks["baseline_rate"].iloc[0] == 0.1
    assert [e["name"] for e in data.empirical_epsilons(ev)] == ["privacy.audit.epsilon_lower_bound"]
    head = data.headline(ev)
    assert head["mia_auc"] == 0.6 and head["mia_attack"] == "distance" and head["dcr_share"] == 0.5
    matrix = data.results_matrix(evs)
    assert matrix.loc["privacy.mia.distance.tpr_at_fpr_1pct", "r1"].startswith("skipped")


def test_policy_frame_puts_failures_first() -> None:
    verdicts = [
        {"metric": m, "status": s, "statistic": "value", "observed": 0.5, "threshold": t, "comparison": c, "reason": m}
        for m, s, t, c in (("a", "pass", None, None), ("b", "fail", 0.4, "above"), ("c", "warn", 0.45, "above"))
    ]
    frame = data.policy_frame(_evaluation([], {"verdicts": verdicts, "counts": {"fail": 1, "warn": 1, "pass": 1}}))
    assert list(frame["status"]) == ["fail", "warn", "pass"] and list(frame["crossed"][:2]) == ["above", "above"]
    assert data.verdict_text({"counts": {"fail": 1, "warn": 1, "pass": 1, "skipped": 2}}) == "1 fail · 1 warn · 1 pass"
    assert data.verdict_text(None) == "not evaluated"


def test_filter_releases_rejects_an_unknown_sort_column() -> None:
    frame = pd.DataFrame({"release_id": ["a"], "generator": ["g"], "schema": ["s"]})
    with pytest.raises(ValueError, match="The 'sort_by' parameter must be one of"):
        data.filter_releases(frame, sort_by="nope")


def test_tradeoff_frame_has_every_evaluated_release(app_store: AppStore) -> None:
    frame = data.tradeoff_frame(Store(app_store.root))
    assert set(frame["release_id"]) == set(app_store.evaluated)
    copy = frame.set_index("release_id").loc[app_store.copy]
    assert copy["mia_auc"] > 0.6 and copy["attack"] in ("distance", "domias") and copy["risk_level"] == "high"
