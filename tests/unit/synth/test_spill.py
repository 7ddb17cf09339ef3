"""DuckDB's memory budget (SYNTHMED_MEMORY_LIMIT) holds: past it the data spills to a private folder under
SYNTHMED_TEMP_DIR, removed when the process exits; bad settings are clear errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synth import spill
from synth.errors import SpillConfigError
from synth.load import connect

REPO = Path(__file__).resolve().parents[3]
SCRIPT = """
import os
from synth.load import connect
con = connect()
con.execute("CREATE TABLE t AS SELECT i, md5(i::varchar) AS h FROM range(5000000) r(i)")
assert con.execute("SELECT count(DISTINCT h) FROM t").fetchall()[0][0] == 5000000
spilled = sum(len(files) for _, _, files in os.walk(os.environ["SYNTHMED_TEMP_DIR"]))
# VmHWM: this process image's peak (ru_maxrss would carry the parent's peak over the fork)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(spilled, peak // 1024)
"""


def _run(tmp_path: Path, limit: str) -> tuple[int, int]:
    env = {**os.environ, "SYNTHMED_MEMORY_LIMIT": limit, "SYNTHMED_TEMP_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    spilled, peak_mb = map(int, done.stdout.split())
    return spilled, peak_mb


def test_past_the_budget_duckdb_spills_instead_of_growing(tmp_path: Path) -> None:
    spilled, capped = _run(tmp_path, "64MB")  # a table of ~5M md5 strings and a distinct count over it
    assert spilled > 0
    assert list(tmp_path.iterdir()) == []  # the process's spill folder went with it
    spilled_free, free = _run(tmp_path, "4GB")
    assert spilled_free == 0 and capped < 0.6 * free, (capped, free)  # the same work held in memory without the budget


def test_each_connection_spills_into_a_private_folder_of_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHMED_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(spill, "_root", None)
    folders = [Path(connect().execute("SELECT current_setting('temp_directory')").fetchall()[0][0]) for _ in range(2)]
    assert folders[0] != folders[1] and folders[0].parent == folders[1].parent
    assert folders[0].parent.parent == tmp_path and oct(folders[0].parent.stat().st_mode & 0o777) == "0o700"
    monkeypatch.setattr(spill, "_root", None)  # the next test's connections get a fresh folder


@pytest.mark.parametrize("name,value,message", [
    ("SYNTHMED_MEMORY_LIMIT", "lots", "must be a size such as 8GB"),
    ("SYNTHMED_TEMP_DIR", "/no/such/folder", "must name an existing folder"),
])
def test_bad_settings_are_named(name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(spill, "_root", None)
    with pytest.raises(SpillConfigError, match=message) as caught:
        connect()
    assert name in str(caught.value) and value in str(caught.value)
    monkeypatch.delenv(name)
    monkeypatch.setattr(spill, "_root", None)


def test_the_cli_names_a_bad_budget(tmp_path: Path) -> None:
    env = {**os.environ, "SYNTHMED_MEMORY_LIMIT": "half"}
    done = subprocess.run([sys.executable, "-m", "synthmed", "validate", str(tmp_path), "--schema", "kr_claims"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0 and "SYNTHMED_MEMORY_LIMIT" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("value,expected", [("8GB", 8 * 10**9), ("500 MB", 500 * 10**6), ("1.5GiB", 3 * 2**29), ("300kib", 300 * 2**10)])
def test_the_budget_in_bytes_reads_units_as_duckdb_does(value: str, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHMED_MEMORY_LIMIT", value)
    assert spill.memory_limit_bytes() == expected
    monkeypatch.delenv("SYNTHMED_MEMORY_LIMIT")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert total // 2 - 2**20 < spill.memory_limit_bytes() <= total // 2  # default: half the machine, to the MiB
    budget = connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]  # as DuckDB holds it, e.g. 11.7 GiB
    number, unit = budget.split()
    assert abs(float(number) * {"MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit] - spill.memory_limit_bytes()) < 0.01 * total


def test_a_killed_process_leaves_its_spill_folder_to_the_next_one(tmp_path: Path) -> None:
    """SIGKILL skips the exit hook that removes a process's spill folder (spilled real rows); the next synthmed
    process removes the folders of processes that are gone, and leaves a running process's and unknown ones."""
    env = {**os.environ, "SYNTHMED_TEMP_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    killed = ("import os, signal\nfrom synth.load import connect\ncon = connect()\n"
              "con.execute('SELECT 1')\nos.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", killed], env=env, cwd=REPO, timeout=120)
    assert done.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith("synthmed-duckdb-")  # what the hook would have removed
    running = tmp_path / f"synthmed-duckdb-{os.getpid()}-abc123"  # this test's own process: alive
    legacy = tmp_path / "synthmed-duckdb-k3j2h1"  # no process id in the name
    running.mkdir()
    legacy.mkdir()
    nxt = "from synth.load import connect\nconnect().execute('SELECT 1')"
    subprocess.run([sys.executable, "-c", nxt], env=env, cwd=REPO, timeout=120, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, legacy.name])
