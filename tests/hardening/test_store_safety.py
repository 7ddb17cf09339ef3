"""The store never loses a release: a missing catalog, foreign folders, a held lock, and kill -9 at random moments.

Each case ends with a clear error or a finished command, every release folder still there (or moved to
quarantine and reported), and ``synthmed audit verify`` clean afterwards.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from synth.release import Store

REPO = Path(__file__).resolve().parents[2]


def _release_args(prepared: Path, store: Path, *extra: str) -> list[str]:
    return ["release", "--schema", "kr_claims", "--data", str(prepared), "-g", "independent", "-n", "20",
            "--store", str(store), "-q", *extra]


def _folders(store: Store) -> set[str]:
    return {p.name for p in store.releases_dir.iterdir()} if store.releases_dir.is_dir() else set()


def test_a_missing_catalog_stops_before_the_fit_and_deletes_nothing(store_copy: Store, built_store, cli) -> None:
    store_copy.catalog.path.rename(store_copy.root / "moved-away.duckdb")
    before = _folders(store_copy)
    start = time.perf_counter()
    code, _, err = cli(*_release_args(built_store.prepared, store_copy.root))
    assert code == 2 and "no catalog" in err and "synthmed audit rebuild --store" in err
    assert time.perf_counter() - start < 20  # refused before fitting anything
    assert _folders(store_copy) == before
    code, _, err = cli("releases", "list", "--store", store_copy.root)
    assert code == 2 and "synthmed audit rebuild" in err
    code, _, err = cli("audit", "verify", "--store", store_copy.root)
    assert code == 1 and "no catalog" in err
    code, out, err = cli("audit", "rebuild", "--store", store_copy.root)
    assert code == 0 and "registered 1 release(s)" in out, err
    assert store_copy.catalog.release_ids() == before
    code, _, err = cli("audit", "verify", "--store", store_copy.root)
    assert code == 0, err


def test_a_copied_store_shows_where_its_releases_are(tmp_path: Path, built_store, cli) -> None:
    """A store copied to the review server: ``releases show`` names the copy's folder, not the original's."""
    import shutil

    moved = tmp_path / "review-server" / "store"
    shutil.copytree(built_store.root, moved)
    code, out, err = cli("releases", "show", built_store.release_id, "--store", moved)
    text = out.replace("\n", "")
    assert code == 0, err
    assert str(moved / "releases" / built_store.release_id) in text and str(built_store.root) not in text


def test_a_rebuild_is_refused_on_an_intact_catalog(store_copy: Store, cli) -> None:
    code, _, err = cli("audit", "rebuild", "--store", store_copy.root)
    assert code == 2 and "nothing to rebuild" in err


def test_foreign_folders_are_quarantined_and_reported(store_copy: Store, built_store, cli) -> None:
    stray = store_copy.releases_dir / "someone-elses-release"
    stray.mkdir()
    (stray / "precious.parquet").write_bytes(b"not ours")
    code, _, err = cli("audit", "verify", "--store", store_copy.root)
    assert code == 1 and "someone-elses-release has no catalog row" in err
    code, _, err = cli(*_release_args(built_store.prepared, store_copy.root))
    assert code == 0, err
    assert "moved to" in err and "someone-elses-release" in err
    kept = list((store_copy.root / "quarantine").iterdir())
    assert len(kept) == 1 and (kept[0] / "precious.parquet").read_bytes() == b"not ours"
    code, out, err = cli("audit", "verify", "--store", store_copy.root)
    assert code == 0 and "quarantined" in out, err


HOLD_UNTIL_TOLD = """
import duckdb, select, sys
con = duckdb.connect(sys.argv[1])
print('held', flush=True)
select.select([sys.stdin], [], [], 120)  # until the test closes stdin (the release said it waits), at most 120 s
"""


def test_registration_waits_for_a_held_catalog_lock(store_copy: Store, built_store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the catalog while this one fits: it waits, says so, and registers the work."""
    # holds the lock until the release says it is waiting (when it tidies the store or when it registers), however
    # long the release takes to get there on a busy machine; at most 120 s
    holder = subprocess.Popen([sys.executable, "-c", HOLD_UNTIL_TOLD, str(store_copy.catalog.path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {**os.environ, "SYNTHMED_CATALOG_WAIT": "120"}
        release = subprocess.Popen([sys.executable, "-m", "synthmed", *_release_args(built_store.prepared, store_copy.root)],
                                   cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert release.stderr is not None
        err = ""
        for line in release.stderr:  # until the release says it waits (or ends without saying so)
            err += line
            if "waiting for the catalog" in err:
                break
        assert holder.stdin is not None
        holder.stdin.close()  # let go of the lock
        err += release.communicate(timeout=600)[1]
    finally:
        holder.wait(timeout=150)
        holder.stdout.close()
    assert release.returncode == 0, err
    assert "waiting for the catalog" in err
    assert len(store_copy.catalog.release_ids()) == 2


def test_a_lock_held_too_long_is_a_clear_error(store_copy: Store, built_store, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHMED_CATALOG_WAIT", "1")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(store_copy.catalog.path)], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, _, err = cli("audit", "rebuild", "--store", store_copy.root)  # needs the catalog: reads it first
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert code == 2 and "in use by another synthmed process" in err
    assert store_copy.catalog.path.exists()


def _consistent(store: Store, cli) -> None:
    code, out, err = cli("audit", "verify", "--store", store.root)
    assert code == 0, err
    for release_id in store.catalog.release_ids():
        assert (store.release_dir(release_id) / "manifest.json").is_file()


def _kill_after(cmd: list[str], delay: float, env: dict[str, str]) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "synthmed", *cmd], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_of_release_and_evaluation(seed: int, store_copy: Store, built_store, cli) -> None:
    """kill -9 a release and an evaluation at seeded random moments; the store stays whole and usable."""
    rng = random.Random(seed)
    env = {k: v for k, v in os.environ.items() if k != "SYNTHMED_STORE"}
    before = store_copy.catalog.release_ids()
    evaluations = len(store_copy.catalog.evaluations(built_store.release_id))
    # the command takes a few seconds (imports, fit, sample, write): kill somewhere inside it
    _kill_after(_release_args(built_store.prepared, store_copy.root), rng.uniform(2.0, 12.0), env)
    _kill_after(["evaluate", built_store.release_id, "--data", str(built_store.prepared), "-m", "fidelity.column_shapes",
                 "--shadow-models", "0", "--store", str(store_copy.root), "-q"], rng.uniform(2.0, 12.0), env)
    # whatever happened, what is registered is whole, and a following write tidies and succeeds
    assert store_copy.catalog.chain_state().ok
    assert before <= store_copy.catalog.release_ids()
    assert len(store_copy.catalog.evaluations(built_store.release_id)) in (evaluations, evaluations + 1)
    code, _, err = cli(*_release_args(built_store.prepared, store_copy.root))
    assert code == 0, err
    assert not (store_copy.root / "quarantine").exists()  # our own unfinished folders are removed, not quarantined
    assert _folders(store_copy) == store_copy.catalog.release_ids()
    _consistent(store_copy, cli)


@pytest.mark.parametrize("point", ["before_rename:kill", "after_rename:kill", "before_head:kill"])
def test_kill_9_inside_registration(point: str, store_copy: Store, built_store, cli) -> None:
    """Killed with the folder in place but not committed, or committed but the signed head not yet written."""
    env = {**{k: v for k, v in os.environ.items() if k != "SYNTHMED_STORE"}, "SYNTHMED_FAIL_AT": point}
    killed = subprocess.run([sys.executable, "-m", "synthmed", *_release_args(built_store.prepared, store_copy.root)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == 97, killed.stderr
    assert store_copy.catalog.chain_state().ok  # a head one write behind is not tampering
    code, _, err = cli(*_release_args(built_store.prepared, store_copy.root))
    assert code == 0, err
    assert not (store_copy.root / "quarantine").exists()
    assert _folders(store_copy) == store_copy.catalog.release_ids()
    assert len(store_copy.catalog.release_ids()) == (3 if point == "before_head:kill" else 2)
    _consistent(store_copy, cli)


def test_nothing_is_written_outside_the_store(store_copy: Store, built_store, tmp_path: Path, cli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    prepared_before = sorted(str(p.relative_to(built_store.prepared)) for p in built_store.prepared.rglob("*"))
    code, _, err = cli(*_release_args(built_store.prepared, store_copy.root))
    assert code == 0, err
    assert list(work.iterdir()) == []
    assert sorted(str(p.relative_to(built_store.prepared)) for p in built_store.prepared.rglob("*")) == prepared_before
    con = duckdb.connect(str(store_copy.catalog.path), read_only=True)
    try:
        paths = [r[0] for r in con.execute("SELECT path FROM releases WHERE release_id <> ?", [built_store.release_id]).fetchall()]
    finally:
        con.close()
    assert len(paths) == 1 and Path(paths[0]).resolve().parent == store_copy.releases_dir.resolve()
