"""Fixtures of the hardening suite: a small prepared kr_claims folder and an evaluated, reviewed store.

Both are built once per session; a test that changes a store works on its own copy (``store_copy``).
``cli`` runs ``synthmed`` in this process through its real entry point (``synthmed.cli.main``), so every
failure goes through the same boundary a user hits, and returns (exit code, stdout, stderr).
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from synth.release import Store

SECRET = b"test-secret-key-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuiltStore:
    """A store with one release, one evaluation of it (column shapes only) and one review."""

    root: Path
    prepared: Path
    release_id: str
    evaluation_id: str
    review_id: str


@pytest.fixture(scope="session")
def prepared_kr(tmp_path_factory: pytest.TempPathFactory, kr_frames: dict) -> Path:
    import pyarrow.parquet as pq

    from data_schemas.io import load_schema
    from synth.load import load_dataset
    from synth.prepare import prepare

    base = tmp_path_factory.mktemp("hardening")
    raw = base / "raw"
    raw.mkdir()
    for name, table in kr_frames.items():
        pq.write_table(table, raw / f"{name}.parquet")
    prepare(load_dataset(load_schema("kr_claims"), raw), base / "prepared", secret=SECRET, seed=0)
    return base / "prepared"


@pytest.fixture(scope="session")
def built_store(tmp_path_factory: pytest.TempPathFactory, prepared_kr: Path) -> BuiltStore:
    from data_schemas.io import load_schema
    from synth.pipeline import release
    from synthmed.evaluation import ShadowBudget, evaluate_release

    store = Store(tmp_path_factory.mktemp("store") / "store")
    info = release(load_schema("kr_claims"), prepared_kr, generator="independent", store=store, n_patients=40, seed=1)
    outcome = evaluate_release(store, info.release_id, prepared_kr, metrics=["fidelity.column_shapes"],
                               shadow=ShadowBudget(0, 10))
    review_id = store.catalog.add_review(
        info.release_id, decision="reject", comment="too close to the real data", manifest_hash=info.manifest_hash,
        issuer="https://idp.hospital.example", subject="officer-1", email="officer@hospital.example",
        display_name="Privacy Officer", role="privacy_officer", evaluation_id=outcome.evaluation_id,
        risk_level=outcome.risk_level,
    )
    assert store.catalog.chain_state().ok
    return BuiltStore(store.root, prepared_kr, info.release_id, str(outcome.evaluation_id), review_id)


@pytest.fixture()
def store_copy(built_store: BuiltStore, tmp_path: Path) -> Store:
    """A private copy of the built store (files, catalog, key and head), for tests that change it."""
    target = tmp_path / "store"
    shutil.copytree(built_store.root, target, symlinks=True)
    return Store(target)


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``synthmed ARGS`` in-process; returns (exit code, stdout, stderr). Fails on a traceback or exit 3."""
    from synthmed.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        code = int(exited.value.code or 0)
        assert "Traceback" not in out + err, out + err
        assert code != 3, f"internal error (exit 3): {err}"
        return code, out, err

    return run
