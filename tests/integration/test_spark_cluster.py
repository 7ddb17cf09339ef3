"""A real Spark cluster: a standalone master and one worker on loopback, and the CLI run against it.

``synthmed validate``, ``prepare``, ``release --generator dp_mst`` and ``evaluate`` (fidelity) run as
a user runs them, as processes with ``--engine spark`` and ``SYNTHMED_SPARK_MASTER=spark://127.0.0.1:<port>``;
the worker's folder shows that each command's executors ran there. Master and worker are stopped at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import SECRET

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: the Spark engine tests need the test extra (pip install -e '.[test]')")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java not on PATH, JAVA_HOME unset): scripts/install --test installs "
                "Debian's openjdk-17-jre-headless; the Spark cluster test needs it", allow_module_level=True)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(pyspark.__file__).resolve().parent
START_TIMEOUT_S = 120
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:CICompilerCount=1"
"""Short-lived JVMs on 2 shared cores: the quick JIT only, one compiler thread, the serial collector; what Spark
computes is unchanged. With these settings (below) the four commands took 36, 50, 67 and 112 s against 85, 87, 108
and 150 s with Spark's defaults, one run each on the same machine (/tmp/synthmed/notes/suite_time.md)."""
SPARK_DEFAULTS = {
    "spark.driver.extraJavaOptions": JVM_OPTIONS,
    "spark.executor.extraJavaOptions": JVM_OPTIONS,
    "spark.locality.wait": "0s",  # one worker: no task waits for a better-placed executor
    "spark.sql.adaptive.enabled": "false",  # 100 patients: re-planning each query costs more than it saves
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spark_env(tmp: Path) -> dict[str, str]:
    """The environment of master, worker and every command: Spark's settings in $SPARK_CONF_DIR/spark-defaults.conf,
    as a user of a cluster keeps them (spark-submit, and so each command's driver, reads that file)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTHMED_SECRET", "SYNTHMED_STORE", "SYNTHMED_SPARK_MASTER")}
    conf = tmp / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "spark-defaults.conf").write_text("".join(f"{key} {value}\n" for key, value in SPARK_DEFAULTS.items()))
    env.update({
        "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp / "logs"),
        "SPARK_WORKER_DIR": str(tmp / "work"), "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1",
        "SPARK_CONF_DIR": str(conf), "SPARK_DAEMON_JAVA_OPTS": JVM_OPTIONS,
    })
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # its own process group


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.loads(response.read()).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """``spark://127.0.0.1:<port>`` with one worker (2 cores, 1.5 GB), its work folder and the environment."""
    tmp = tmp_path_factory.mktemp("spark-cluster")
    (tmp / "logs").mkdir()
    (tmp / "work").mkdir()
    env = _spark_env(tmp)
    port, ui = _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                             "--webui-port", str(ui)], env, tmp / "master.log"))
        procs.append(_start(["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
                             "--port", str(_free_port()), "--webui-port", str(_free_port()), "--cores", "2",
                             "--memory", "1536m", "--work-dir", str(tmp / "work")], env, tmp / "worker.log"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while _alive_workers(ui) < 1:
            for proc, log in zip(procs, ("master.log", "worker.log")):
                assert proc.poll() is None, f"{log} stopped: {(tmp / log).read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no worker registered in {START_TIMEOUT_S} s: {(tmp / 'worker.log').read_text()[-3000:]}"
            time.sleep(0.5)
        yield master_url, tmp / "work", env
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _synthmed(env: dict[str, str], master: str, *args: str) -> subprocess.CompletedProcess[str]:
    run_env = {**env, "SYNTHMED_SPARK_MASTER": master, "SYNTHMED_SECRET": SECRET, "SYNTHMED_SPARK_PARTITIONS": "2"}
    result = subprocess.run([sys.executable, "-m", "synthmed", *args, "--engine", "spark"], cwd=REPO, env=run_env,
                            capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _apps(work: Path) -> set[str]:
    return {p.name for p in work.iterdir() if p.name.startswith("app-")}


def test_cli_on_a_standalone_cluster(cluster: tuple[str, Path, dict[str, str]], tmp_path: Path) -> None:
    from synth.demo_population import simulate

    master, work, env = cluster
    data = tmp_path / "kr"
    data.mkdir()
    for name, table in simulate(100, seed=3).items():
        pq.write_table(table, data / f"{name}.parquet")
    store, prepared = tmp_path / "store", tmp_path / "prepared"

    steps = [
        ("validate", ["validate", str(data), "--schema", "kr_claims", "--json"]),
        ("prepare", ["prepare", str(data), "--schema", "kr_claims", "--output", str(prepared)]),
        ("release", ["release", "--data", str(prepared), "--schema", "kr_claims", "--generator", "dp_mst",
                     "--epsilon", "4", "--store", str(store), "--quiet"]),
    ]
    out = {}
    for step, args in steps:
        before = _apps(work)
        result = _synthmed(env, master, *args)
        assert result.returncode == 0, f"{step}: {result.stdout}\n{result.stderr}"
        assert _apps(work) - before, f"{step} ran no executor on the cluster's worker"
        out[step] = result
    report = json.loads(out["validate"].stdout)
    assert report["ok"] and report["rows"]["patients"] == 100
    assert (prepared / "split.json").is_file() and (prepared / "train" / "claims.parquet").exists()

    listed = subprocess.run([sys.executable, "-m", "synthmed", "releases", "list", "--json", "--store", str(store)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    releases = json.loads(listed.stdout)
    assert len(releases) == 1 and releases[0]["generator"] == "dp_mst", releases
    release_id = releases[0]["release_id"]

    before = _apps(work)
    # the two headline fidelity metrics (the whole family, equal on both engines, is tests/integration/test_spark_engine.py's)
    evaluated = _synthmed(env, master, "evaluate", release_id, "--data", str(prepared), "--metrics",
                          "fidelity.column_shapes,fidelity.column_pair_trends", "--store", str(store), "--json", "--quiet")
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert _apps(work) - before, "evaluate ran no executor on the cluster's worker"
    outcome = json.loads(evaluated.stdout)
    assert outcome["release_id"] == release_id and outcome["evaluation_id"]
    values = {r["name"]: r["value"] for r in outcome["results"] if r["family"] == "fidelity"}
    assert values.get("fidelity.column_shapes") is not None and 0.0 <= values["fidelity.column_shapes"] <= 1.0, values
    assert outcome["fidelity"] is not None
