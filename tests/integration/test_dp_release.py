"""The DP generator end to end: the audited epsilon of a DP release and of the copy baseline, CLI releases that validate."""
from __future__ import annotations

import json
import os
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
def demo_split():
    """1,200 demo patients split half and half, so the attacks have 300 member and 300 non-member targets."""
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(KR, simulate(1200, seed=11))
    assert report.ok
    train, holdout, _ = split_patients(dataset, seed=1, holdout_fraction=0.5)
    return train, holdout


def _audit(name: str, params: dict, demo_split):
    train, holdout = demo_split
    generator = make_generator(name, params, allow_unsafe=True).fit(train)
    synthetic = generator.sample(train.row_counts()["patients"], seed=2)
    frames = {t: synthetic.con.sql(f"SELECT * FROM {synthetic.sql_name(t)}").to_arrow_table() for t in KR.tables}
    synthetic, report = frames_to_dataset(KR, frames, con=train.con, namespace=f"synthetic_{name}")
    assert report.ok
    ctx = EvalContext(KR, train.con, train, synthetic, holdout, EvalOptions(seed=0))
    results = run_metrics(ctx, ["privacy.audit"])
    return {r.name: r for r in results.results}["privacy.epsilon_lower_bound"]


def test_dp_release_at_epsilon_1_audits_at_most_1_and_copy_far_above(demo_split) -> None:
    dp = _audit("dp_mst", {"epsilon": 1.0}, demo_split)
    assert dp.value is not None and dp.ci is not None
    assert dp.value <= 1.0  # the conservative end of the CI: what the attacks prove
    assert {d["attack"] for d in dp.details} == {"distance", "domias"}  # attacks run once, their scores reused
    copy = _audit("copy", {}, demo_split)
    assert copy.value is not None and copy.value > 3.0  # as high as 300 targets per class can show
    assert copy.value >= 3 * max(dp.value, 1.0)


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
    assert gen["privacy_accounting"]["unit"] == "patient" and gen["privacy_accounting"]["epsilon_spent"] <= 1.0
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
