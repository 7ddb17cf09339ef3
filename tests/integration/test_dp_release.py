"""The DP generator end to end: the canary audit tells DP from non-DP, CLI releases that validate and publish no private size."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_schemas.io import load_schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.runner import run_metrics
from synth.load import frames_to_dataset
from synth.pipeline import make_generator
from synth.split import split_patients
from tests.conftest import SECRET

REPO = Path(__file__).resolve().parents[2]
KR = load_schema("kr_claims")


@pytest.fixture(scope="module")
def demo_train():
    """The training side of 300 demo patients (about 240), into which the audit inserts its canaries."""
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(KR, simulate(300, seed=11))
    assert report.ok
    train, holdout, _ = split_patients(dataset, seed=1)
    return train, holdout


def _audit(name: str, params: dict, demo_train, *, delta: float = 0.0, canaries: int = 100):
    from evaluate.privacy.mia_shadow import generator_factory

    train, holdout = demo_train
    opts = EvalOptions(seed=0, params={"privacy.audit": {"generator_factory": generator_factory(name, **params),
                                                         "n_canaries": canaries, "delta": delta}})
    ctx = EvalContext(KR, train.con, train, train, holdout, opts)
    results = run_metrics(ctx, ["privacy.audit"])
    return {r.name: r for r in results.results}["privacy.epsilon_lower_bound"]


def test_the_canary_audit_tells_dp_from_non_dp(demo_train) -> None:
    """On the demo population: copy and the non-DP gaussian_copula audit clearly above 1, dp_mst at epsilon 1 at or below 1."""
    dp = _audit("dp_mst", {"epsilon": 1.0}, demo_train, delta=1e-6)
    copy = _audit("copy", {}, demo_train)
    copula = _audit("gaussian_copula", {}, demo_train)
    for r in (dp, copy, copula):
        (row,) = r.details
        assert row["method"] == "canaries" and row["canaries"] == 100 and row["guesses"] == 100
        assert r.range == (0.0, row["max_certifiable"]) and 3.4 < row["max_certifiable"] < 3.6
        assert any("the audit cannot show more than" in n for n in r.notes)
    assert dp.value is not None and dp.value <= 1.0 and dp.details[0]["delta"] == 1e-6
    assert dp.details[0]["included_with_trace"] == 0  # no canary's made-up value survives the private selection
    assert copy.value > 3.0 and copula.value > 2.0  # at (or near) the 3.49 that 100 canaries can show
    assert copy.details[0]["excluded_with_trace"] == 0 and copula.details[0]["excluded_with_trace"] == 0


def test_the_audit_without_a_generator_says_how_to_run_it(demo_train) -> None:
    train, holdout = demo_train
    results = run_metrics(EvalContext(KR, train.con, train, train, holdout, EvalOptions(seed=0)), ["privacy.audit"])
    (bound,) = results.results
    assert bound.value is None and "--audit canaries" in bound.skipped[0].reason


def test_evaluate_with_the_canary_audit_lands_in_the_catalog_and_the_report(kr_dir: Path, tmp_path: Path) -> None:
    """`synthmed evaluate ID --data DIR --audit canaries` end to end through the CLI, then `synthmed report`."""
    from typer.testing import CliRunner

    from synth.pipeline import release
    from synth.release import Store
    from synthmed.cli import app

    store = Store(tmp_path / "store")
    info = release(KR, kr_dir, generator="dp_mst", store=store, secret=SECRET.encode(), epsilon=1.0)
    runner = CliRunner(env={"SYNTHMED_SECRET": SECRET})
    done = runner.invoke(app, ["evaluate", info.release_id, "--data", str(kr_dir), "--audit", "canaries", "--canaries", "30",
                               "--metrics", "privacy.exact_copies", "--shadow-models", "0", "--store", str(store.root), "--quiet"])
    assert done.exit_code == 0, done.output
    assert re.search(r"empirical epsilon lower bound .* the audit cannot show more than \d+\.\d\d", done.stdout), done.stdout
    (evaluation,) = store.catalog.evaluations(info.release_id)
    stored = {r["name"]: r for r in store.catalog.metric_results(evaluation["evaluation_id"])}
    bound = stored["privacy.epsilon_lower_bound"]
    assert bound["details"][0]["method"] == "canaries" and bound["details"][0]["canaries"] + bound["details"][0]["canaries_left_out"] == 30
    assert bound["details"][0]["delta"] == 1e-6  # the release's delta, passed to the bound
    report = runner.invoke(app, ["report", info.release_id, "-o", str(tmp_path / "report.html"), "--store", str(store.root)])
    assert report.exit_code == 0, report.output
    html = (tmp_path / "report.html").read_text()
    assert "the audit cannot show more than" in html and "not covered by it" in html
    wrong = runner.invoke(app, ["evaluate", info.release_id, "--data", str(kr_dir), "--audit", "shadow", "--store", str(store.root)])
    assert wrong.exit_code != 0 and "the only audit is 'canaries'" in wrong.output


def _release(schema: str, data: Path, store: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTHMED_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "synthmed", "release", "--schema", schema, "--data", str(data), "--generator", "dp_mst",
         "--store", str(store), "--quiet", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


def _check_release(schema: str, store: Path, result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    release_id = result.stdout.split()[1].rstrip(":")
    folder = store / "releases" / release_id
    check = subprocess.run([sys.executable, "-m", "synthmed", "validate", "--schema", schema, str(folder)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout
    manifest = json.loads((folder / "manifest.json").read_text())
    gen = manifest["generator"]
    assert gen["differentially_private"] is True and gen["epsilon"] == 1.0 and gen["delta"] == 1e-6
    assert gen["privacy_accounting"]["unit"] == "patient"
    assert gen["privacy_accounting"]["neighbouring"] == "add or remove one patient with all of their rows"
    assert set(manifest["source"]) == {"split", "prepared"} and set(manifest["source"]["split"]) == {"seed", "holdout_fraction", "method"}
    listed = subprocess.run([sys.executable, "-m", "synthmed", "releases", "list", "--json", "--store", str(store)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    row = json.loads(listed.stdout)[0]
    assert row["differentially_private"] is True and row["epsilon"] == 1.0 and row["delta"] == 1e-6
    return manifest


def test_release_cli_with_epsilon_on_kr_claims(kr_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    manifest = _check_release("kr_claims", store, _release("kr_claims", kr_dir, store, "--epsilon", "1", "--patients", "80"))
    assert manifest["n_patients"] == 80
    from synth.errors import GeneratorError

    with pytest.raises(GeneratorError, match="apply to differentially private generators \\(dp_mst\\); 'independent' is not"):
        make_generator("independent", {}, epsilon=1.0)


def test_release_cli_with_epsilon_on_desynpuf(synpuf_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    manifest = _check_release("cms_desynpuf", store, _release("cms_desynpuf", synpuf_dir, store, "--epsilon", "1", "--delta", "1e-6",
                                                              "--patients", "150"))
    assert manifest["generator"]["privacy_accounting"]["rows_per_patient_cap"]["beneficiary_summary"] == 3
