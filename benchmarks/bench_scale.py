"""Scale: ``synthmed validate``, ``prepare``, ``release -g dp_mst`` and ``evaluate --metrics fidelity`` as whole
processes on the demo claims population at 1M-100M claim rows, DuckDB against Spark (local mode).

    .venv/bin/python benchmarks/bench_scale.py --rows 1000000 10000000 --engines duckdb spark
    .venv/bin/python benchmarks/bench_scale.py --rows 2000 --work /tmp/s --out-dir /tmp/s   # smoke
    .venv/bin/python benchmarks/bench_scale.py --rows 1000000 --engines spark --stages evaluate  # rerun one stage
    .venv/bin/python benchmarks/bench_scale.py --rows 100000000 --engines duckdb --stages release evaluate \
        --fit-patients 100000 --release-patients 100000   # dp_mst fitted on a Poisson sample, a cohort of 100,000

Data: ``synth.demo_population.simulate`` (kr_claims: patients, claims, claim_details, diagnoses, prescriptions),
drawn in chunks of patients (each chunk its own seed, its ids suffixed by the chunk number) and appended to one
Parquet file per table, so no more than one chunk is ever in memory; ``--rows`` counts rows of ``claims`` (about
14 per patient; the other tables add about 5 rows per claim). Written once under ``--work`` and reused.

Each stage runs in its own process group with a timeout; wall seconds and the peak resident memory of the whole
process tree (Python and, on Spark, its JVM; /proc sampled every 0.25 s) are recorded. A stage that times out or
fails is reported as such, and the stages after it on that engine and size are reported as not run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SYNTHMED = [sys.executable, "-m", "synthmed"]
CLAIMS_PER_PATIENT = 14.1  # measured on simulate(20_000)
CHUNK_PATIENTS = 50_000
STAGES = ("validate", "prepare", "release", "evaluate")
ID_COLUMNS = ("patient_id", "claim_id", "detail_id", "diagnosis_id", "prescription_id")
SECRET = "bench-scale-secret-0123456789abcdef"


def generate(rows: int, folder: Path, *, chunk_patients: int = CHUNK_PATIENTS) -> dict[str, int]:
    """The demo population with about ``rows`` claims as one Parquet file per table (cached); rows per table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO))
    from synth.demo_population import simulate

    done = folder / "rows.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    patients = max(1, round(rows / CLAIMS_PER_PATIENT))
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}
    for chunk, lo in enumerate(range(0, patients, chunk_patients)):
        frames = simulate(min(chunk_patients, patients - lo), seed=chunk)
        for name, table in frames.items():
            for col in ID_COLUMNS:
                if col in table.column_names:
                    tagged = pc.binary_join_element_wise(table[col], pa.scalar(f"-{chunk}"), "")
                    table = table.set_column(table.schema.get_field_index(col), col, tagged)
            if name not in writers:
                writers[name] = pq.ParquetWriter(folder / f"{name}.parquet", table.schema)
            writers[name].write_table(table, row_group_size=1_000_000)
            counts[name] = counts.get(name, 0) + table.num_rows
    for writer in writers.values():
        writer.close()
    done.write_text(json.dumps(counts))
    return counts


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().rsplit(b")", 1)[1].split()
            parents.setdefault(int(stat[1]), []).append(int(entry.name))
        except (OSError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(parents.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError):
            continue
    return total


def run_stage(cmd: list[str], env: dict[str, str], timeout: float, log: Path | None = None) -> dict[str, Any]:
    """Run one ``synthmed`` process (own process group); status, wall seconds, peak tree RSS, stdout.

    The whole stderr is written to ``log`` when given (a failure's cause can be far above its last lines)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        status = f"timed out ({timeout:.0f} s)"
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(err)
    return {"status": status, "wall": round(wall, 2), "peak_rss": peak[0], "stdout": out, "stderr": err[-3000:]}


def run_engine(engine: str, data: Path, work: Path, timeout: float, env: dict[str, str],
               stages: tuple[str, ...] = STAGES, release_args: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The stages on one engine; a stage after a failure is recorded as not run. A stage left out of ``stages`` is not
    run: the later ones use what an earlier run of it left under ``work`` (the prepared folder, the store)."""
    prepared, store = work / f"prepared-{engine}", work / f"store-{engine}"
    if "prepare" in stages:
        subprocess.run(["rm", "-rf", str(prepared)], check=True)
    if "release" in stages:
        subprocess.run(["rm", "-rf", str(store)], check=True)
    for stage, needs in (("release", prepared), ("evaluate", store)):
        if stage in stages and not needs.exists() and STAGES[STAGES.index(stage) - 1] not in stages:
            raise SystemExit(f"--stages {stage} needs {needs} from an earlier run of the stage before it")
    common = ["--schema", "kr_claims", "--engine", engine]
    results: dict[str, dict[str, Any]] = {}
    commands = {
        "validate": ["validate", str(data), *common, "--json"],
        "prepare": ["prepare", str(data), *common, "--output", str(prepared)],
        "release": ["release", "--data", str(prepared), *common, "--generator", "dp_mst", "--epsilon", "4",
                    "--store", str(store), "--quiet", *release_args],
    }
    for stage in (s for s in STAGES if s in stages):
        if any(r["status"] != "ok" for r in results.values()):
            results[stage] = {"status": "not run (an earlier stage did not finish)", "wall": None, "peak_rss": None}
            continue
        if stage == "evaluate":
            listed = subprocess.run([*SYNTHMED, "releases", "list", "--json", "--store", str(store)], cwd=REPO,
                                    env=env, capture_output=True, text=True, check=True)
            release_id = json.loads(listed.stdout)[0]["release_id"]
            cmd = ["evaluate", release_id, "--data", str(prepared), "--metrics", "fidelity", "--store", str(store),
                   "--engine", engine, "--json", "--quiet"]
        else:
            cmd = commands[stage]
        log = work / "logs" / f"{engine}-{stage}.stderr"
        got = run_stage([*SYNTHMED, *cmd], env, timeout, log=log)
        print(f"  {engine:6s} {stage:8s} {got['status']:>10s} {got['wall']:9.1f} s {got['peak_rss'] / 2**30:6.2f} GiB",
              flush=True)
        if got["status"] != "ok":
            print(got["stderr"][-1500:], file=sys.stderr)
        results[stage] = {k: v for k, v in got.items() if k not in ("stdout", "stderr")}
        if got["status"] != "ok":
            results[stage]["error_tail"] = got["stderr"][-800:]
            results[stage]["stderr_log"] = str(log)
    return results


def table_md(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (one line per size, engine and stage)."""
    lines = ["| claim rows | all rows | engine | stage | status | wall s | peak RSS GiB |", "|---:|---:|---|---|---|---:|---:|"]
    for r in rows:
        wall = "" if r["wall"] is None else f"{r['wall']:.1f}"
        rss = "" if r["peak_rss"] is None else f"{r['peak_rss'] / 2**30:.2f}"
        lines.append(f"| {r['claims']:,} | {r['all_rows']:,} | {r['engine']} | {r['stage']} | {r['status']} | {wall} | {rss} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=["duckdb", "spark"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/synthmed-scale"))
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per stage (default 1500)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                        help="stages to run (default all); a later stage alone reuses the earlier stages' outputs under --work")
    parser.add_argument("--fit-patients", type=int, default=None,
                        help="dp_mst's fit_patients: fit on a Poisson sample of about this many training patients")
    parser.add_argument("--release-patients", type=int, default=None, help="patients in the release (default: dp_mst's estimate)")
    args = parser.parse_args(argv)
    release_args = ((*(["--param", f"fit_patients={args.fit_patients}"] if args.fit_patients else []),
                     *(["--patients", str(args.release_patients)] if args.release_patients else [])))

    env = {**os.environ, "SYNTHMED_SECRET": SECRET, "SYNTHMED_SPARK_MASTER": os.environ.get("SYNTHMED_SPARK_MASTER", "local[2]")}
    sys.path.insert(0, str(REPO))
    from synth.engine.spark import driver_memory  # synthmed's own default unless SYNTHMED_SPARK_DRIVER_MEMORY is set
    env.pop("SYNTHMED_STORE", None)
    rows_out: list[dict[str, Any]] = []
    for rows in args.rows:
        data = args.work / f"claims{rows}"
        t = time.perf_counter()
        counts = generate(rows, data / "data")
        print(f"{rows:,} claim rows: {counts} (data ready in {time.perf_counter() - t:.1f} s)", flush=True)
        if args.generate_only:
            continue
        for engine in args.engines:
            for stage, got in run_engine(engine, data / "data", data, args.timeout, env, tuple(args.stages), release_args).items():
                rows_out.append({"claims": counts["claims"], "all_rows": sum(counts.values()), "engine": engine,
                                 "stage": stage, **got})
    if args.generate_only:
        return 0
    setup = {"cores": os.cpu_count(), "spark_master": env["SYNTHMED_SPARK_MASTER"],
             "spark_driver_memory": driver_memory(env["SYNTHMED_SPARK_MASTER"]), "timeout_s": args.timeout,
             "duckdb_memory_limit": env.get("SYNTHMED_MEMORY_LIMIT", "half of RAM (synth.spill)"),
             "release_args": list(release_args)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "scale.json").write_text(json.dumps({"setup": setup, "results": rows_out}, indent=1))
    md = table_md(rows_out)
    (args.out_dir / "scale.md").write_text(f"# Scale (benchmarks/bench_scale.py)\n\nSetup: {json.dumps(setup)}\n\n{md}")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
