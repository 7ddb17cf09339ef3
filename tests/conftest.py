"""Shared fixtures: paths to ../shared/datasets (skipping clearly when absent) and small demo data."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """../shared/datasets, or a skip saying why the test cannot run here."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"../shared/datasets not found at {SHARED_DATASETS}: real-data tests need the shared folder beside the repo")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def synpuf_dir(shared_datasets: Path) -> Path:
    return shared_datasets / "desynpuf" / "1-sample-10000"


@pytest.fixture(scope="session")
def kr_frames() -> dict:
    """A small simulated kr_claims population (arrow tables), shared by the session."""
    from synth.demo_population import simulate

    return simulate(300, seed=7)


@pytest.fixture()
def kr_dir(tmp_path: Path, kr_frames: dict) -> Path:
    """The small population written as one Parquet file per table."""
    import pyarrow.parquet as pq

    folder = tmp_path / "kr"
    folder.mkdir()
    for name, table in kr_frames.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


@pytest.fixture()
def secret_env(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("SYNTHMED_SECRET", SECRET)
    return SECRET.encode()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """`synthmed demo` run once per session on 200 patients: (store folder, the finished process).

    Shared by the CLI's end-to-end test and the review app's browser test, so the slow demo runs once.
    """
    import os
    import subprocess
    import sys

    store = tmp_path_factory.mktemp("demo") / "store"
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTHMED_SECRET", "SYNTHMED_STORE")}
    result = subprocess.run(
        [sys.executable, "-m", "synthmed", "demo", "--patients", "200", "--seed", "3", "--store", str(store)],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=1200,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return store, result
