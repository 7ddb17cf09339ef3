"""`synthmed evaluate` and `synthmed report`: on a release (its own split) and on folders, stored once and whole."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_schemas.io import load_schema
from evaluate.context import EvalOptions
from evaluate.errors import UnknownMetricError
from synth.pipeline import release
from synth.release import Store
from synthmed.evaluation import ShadowBudget, evaluate_release
from tests.conftest import SECRET
from tests.integration.test_cli import run

SCHEMA = load_schema("kr_claims")
FAST = "fidelity.column_shapes,fidelity.column_pair_trends,fidelity.rule_violations,privacy.exact_copies,privacy.mia.distance,privacy.dcr"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A prepared small population and a store with an `independent` and a `copy` release."""
    from synth.demo_population import simulate
    from synth.load import frames_to_dataset
    from synth.prepare import prepare

    root = tmp_path_factory.mktemp("evaluate")
    dataset, report = frames_to_dataset(SCHEMA, simulate(400, seed=11), source="test")
    assert report.ok
    prepared = prepare(dataset, root / "prepared", secret=SECRET.encode(), seed=0).folder
    store = Store(root / "store")
    independent = release(SCHEMA, prepared, generator="independent", store=store, seed=1)
    copy = release(SCHEMA, prepared, generator="copy", store=store, seed=1, allow_unsafe=True)
    return {"root": root, "prepared": prepared, "store": store, "independent": independent.release_id, "copy": copy.release_id}


def _json(result) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_evaluate_release_json_and_catalog(world: dict) -> None:
    rid = world["independent"]
    data = _json(run("evaluate", rid, "--data", str(world["prepared"]), "--store", str(world["store"].root),
                     "--metrics", FAST, "--shadow-models", "0", "--json"))
    names = {r["name"] for r in data["results"]}
    assert {"fidelity.column_shapes", "fidelity.ks_complement", "privacy.mia.distance.auc", "privacy.exact_copies"} <= names
    for r in data["results"]:
        assert {"name", "family", "value", "ci", "goal", "details"} <= set(r)
        assert r["family"] == r["name"].split(".")[0]
    ks = next(r for r in data["results"] if r["name"] == "fidelity.ks_complement")
    assert ks["details"] and all({"table", "column", "value"} <= set(d) for d in ks["details"])
    assert data["risk_level"] in ("low", "medium", "high") and data["policy"]["verdicts"]
    # the independent baseline keeps marginals but copies nobody
    assert next(r for r in data["results"] if r["name"] == "privacy.exact_copies")["value"] < 0.05
    stored = world["store"].catalog.evaluations(rid)
    assert [e["evaluation_id"] for e in stored] == [data["evaluation_id"]]
    results = world["store"].catalog.metric_results(data["evaluation_id"])
    assert {r["name"] for r in results} == names
    assert stored[0]["risk_level"] == data["risk_level"] and json.loads(stored[0]["versions_json"])["duckdb"]


def test_copy_release_is_high_risk_and_report_has_plots(world: dict, tmp_path: Path) -> None:
    rid = world["copy"]
    data = _json(run("evaluate", rid, "--data", str(world["prepared"]), "--store", str(world["store"].root),
                     "--metrics", FAST, "--shadow-models", "0", "--json"))
    assert data["risk_level"] == "high"
    value = {r["name"]: r["value"] for r in data["results"]}
    assert value["privacy.exact_copies"] > 0.99 and value["privacy.mia.distance.auc"] > 0.95
    out = tmp_path / "nested" / "report.html"
    result = run("report", rid, "-o", str(out), "--store", str(world["store"].root))
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "Privacy verdict" in html and "high" in html
    # aggregates only: no pseudonymised patient key of the training data appears in the report
    train_ids = pq.read_table(world["prepared"] / "train" / "patients.parquet").column("patient_id").to_pylist()
    assert not [k for k in train_ids[:200] if str(k) in html]


def test_shadow_attack_refits_the_release_generator(world: dict) -> None:
    outcome = evaluate_release(
        world["store"], world["independent"], world["prepared"], options=EvalOptions(seed=2),
        metrics=["privacy.mia.shadow"], shadow=ShadowBudget(models=2, targets=10),
    )
    auc = outcome.evaluation.get("privacy.mia.shadow.auc")
    assert auc is not None and auc.value is not None and 0.0 <= auc.value <= 1.0
    assert any("2 shadow models" in n for n in auc.notes)


def test_evaluation_lands_whole_or_not_at_all(world: dict) -> None:
    store, rid = world["store"], world["independent"]
    before = len(store.catalog.evaluations(rid))
    with pytest.raises(UnknownMetricError):
        evaluate_release(store, rid, world["prepared"], metrics=["fidelity.column_shapes", "no.such.metric"])
    result = run("evaluate", rid, "--data", str(world["prepared"]), "--store", str(store.root), "--metrics",
                 "utility.tstr", "--target", "claims.no_such_column")
    assert result.returncode != 0 and "no_such_column" in result.stderr
    # before the metrics, progress named each folder read (train, holdout, the release's files) and each table checked
    for folder in (world["prepared"] / "train", world["prepared"] / "holdout", store.release_dir(rid)):
        assert f"{folder / 'claims.parquet'} (" in result.stderr, result.stderr
    assert "checking the values and keys of table claims (" in result.stderr, result.stderr
    assert len(store.catalog.evaluations(rid)) == before


def test_wrong_data_and_missing_evaluation_are_clear_errors(world: dict, tmp_path: Path) -> None:
    from synth.demo_population import simulate
    from synth.load import frames_to_dataset
    from synth.prepare import prepare

    other, _ = frames_to_dataset(SCHEMA, simulate(100, seed=99), source="other")
    other_dir = prepare(other, tmp_path / "other", secret=SECRET.encode(), seed=0).folder
    result = run("evaluate", world["independent"], "--data", str(other_dir), "--store", str(world["store"].root))
    assert result.returncode != 0 and "is not the data release" in result.stderr and str(other_dir) in result.stderr
    result = run("evaluate", "no-such-release", "--data", str(world["prepared"]), "--store", str(world["store"].root))
    assert result.returncode != 0 and "no-such-release" in result.stderr
    fresh = release(SCHEMA, world["prepared"], generator="independent", store=world["store"], seed=5, n_patients=20)
    result = run("report", fresh.release_id, "-o", str(tmp_path / "r.html"), "--store", str(world["store"].root))
    assert result.returncode != 0 and "has no evaluation yet" in result.stderr
    result = run("evaluate", "--schema", "kr_claims", "--real", str(world["prepared"] / "train"))
    assert result.returncode == 2 and "--synthetic" in result.stderr
    # usage errors raised by typer's own copy of click are usage errors too, not internal errors
    result = run("release", "--schema", "kr_claims")
    assert result.returncode == 2 and "Missing option '--data'" in result.stderr


def test_evaluate_folders_made_by_other_tools(world: dict) -> None:
    syn = world["store"].release_dir(world["independent"])
    common = ["evaluate", "--schema", "kr_claims", "--real", str(world["prepared"] / "train"), "--synthetic", str(syn),
              "--metrics", "fidelity.column_shapes,privacy.mia.distance,privacy.exact_copies", "--json"]
    with_holdout = _json(run(*common, "--holdout", str(world["prepared"] / "holdout")))
    assert with_holdout["evaluation_id"] is None
    assert next(r for r in with_holdout["results"] if r["name"] == "privacy.mia.distance.auc")["value"] is not None
    without = _json(run(*common))
    mia = next(r for r in without["results"] if r["name"] == "privacy.mia.distance.auc")
    assert mia["value"] is None and "holdout" in mia["skipped"][0]["reason"]
