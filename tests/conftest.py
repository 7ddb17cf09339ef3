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


XDIST_SHARED = {
    "tests/app/": "app",  # app_store (session): built once, for every app test
    "tests/integration/test_cli.py::test_demo_end_to_end": "app",  # demo_run (session), shared with test_app_browser
    "tests/integration/test_spark_": "spark",  # JVMs using both cores: never two Spark files at once
    "tests/hardening/": "hardening",  # prepared_kr and built_store (session)
}
XDIST_FIRST = ("spark", "app")
"""The longest groups, handed out first, so that neither is left for the end of a run."""


def xdist_group(nodeid: str) -> str:
    """The unit of work of a test under pytest-xdist (opt-in: ``-n 2 --dist loadfile --no-loadscope-reorder``): tests that
    share an expensive session fixture go to one worker (so it is made once), every other file whole to one worker
    (so its module fixtures are made once)."""
    for prefix, name in XDIST_SHARED.items():
        if nodeid.startswith(prefix):
            return name
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown (and unused) without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` with ``xdist_group``'s units (xdist's own ``loadgroup`` renames node ids, which
    pytest 9.2 no longer lets it do, so its groups would be ignored)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return FileGroups(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the longest units first (with --no-loadscope-reorder, the scheduler keeps this order)."""
    if hasattr(config, "workerinput"):
        rank = {name: i for i, name in enumerate(XDIST_FIRST)}
        items.sort(key=lambda item: rank.get(xdist_group(item.nodeid), len(rank)))  # stable: files keep their order
