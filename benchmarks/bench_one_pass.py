"""One pass over the data: ``synthmed evaluate --metrics fidelity.column_shapes,fidelity.column_pair_trends``
against SDMetrics' QualityReport, as users run them (whole processes), on 1M-row claims tables.

    .venv/bin/python benchmarks/bench_one_pass.py                  # 1,000,000 rows, real SynPUF + generated
    .venv/bin/python benchmarks/bench_one_pass.py --rows 200000 --runs 3 --skip-generated

Data:
* **real SynPUF-derived**: ``../shared/bench/make-claims-table.py N`` (16 columns of DE-SynPUF inpatient claims
  joined to beneficiaries; real/ and synthetic/ are disjoint populations), with ``--record-id`` for synthmed
  (one record per row, its schema drafted by ``synthmed schemas infer``) and without for the peer;
* **generated**: the 16-column claims table of ``bench_fidelity.py`` (counter-based hash draws in DuckDB),
  written once to Parquet; the peer reads the same files.

Each tool runs in its own process under ``/usr/bin/time`` (wall seconds, peak RSS), ``--runs`` times (the
median is reported), one at a time; the ratio is the peer's over ours. Also printed: our time inside the
process (reading, validating and both metrics, without the interpreter start and imports) and both tools'
scores (equal up to SDMetrics' 50,000-row sample of contingency pairs; ``--no-subsample`` makes the peer
use every row, and then the values agree to 1e-9).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
METRICS = "fidelity.column_shapes,fidelity.column_pair_trends"
PY = str(REPO / ".venv" / "bin" / "python")
SYNTHMED = str(REPO / ".venv" / "bin" / "synthmed")


def timed(cmd: list[str], *, cwd: Path | None = None) -> dict[str, Any]:
    """Run a command under /usr/bin/time; wall seconds, peak RSS (bytes) and its stdout."""
    out = subprocess.run(["/usr/bin/time", "-f", "__time__ %e %M", *cmd], capture_output=True, text=True, cwd=cwd, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    match = re.search(r"__time__ ([0-9.]+) ([0-9]+)", out.stderr)
    assert match is not None, out.stderr
    return {"wall": float(match.group(1)), "rss": int(match.group(2)) * 1024, "stdout": out.stdout}


def median_run(cmd: list[str], runs: int) -> dict[str, Any]:
    results = [timed(cmd) for _ in range(runs)]
    best = sorted(results, key=lambda r: r["wall"])[len(results) // 2]
    return {**best, "walls": [r["wall"] for r in results]}


def synpuf_tables(rows: int, work: Path) -> tuple[Path, Path, Path]:
    """The SynPUF-derived tables (ours with record ids, the peer's without) and synthmed's drafted schema."""
    script = SHARED / "bench" / "make-claims-table.py"
    if not script.exists():
        raise SystemExit(f"{script} is missing: the SynPUF-derived table needs ../shared (skip it with --skip-synpuf)")
    ours, peers = work / f"synpuf{rows}-rid", work / f"synpuf{rows}"
    for folder, extra in ((ours, ["--record-id"]), (peers, [])):
        if not (folder / "synthetic" / "claims.parquet").exists():
            subprocess.run([PY, str(script), str(rows), str(folder), *extra], check=True, capture_output=True)
    schema = work / f"synpuf{rows}_schema.yaml"
    if not schema.exists():
        got = subprocess.run([SYNTHMED, "schemas", "infer", str(ours / "real"), "-q"], capture_output=True, text=True, check=True)
        schema.write_text(got.stdout)
    return ours, peers, schema


GENERATED_SCHEMA = """name: bench_claims
patient: {table: claims, column: claim_id}
tables:
  claims:
    primary_key: claim_id
    columns:
      claim_id: {type: id, privacy: direct_identifier}
      patient_id: {type: id}
      visit_date: {type: datetime, unit: date}
      care_type: categorical
      institution_type: categorical
      department: categorical
      main_dx: {type: code, vocabulary: ICD10}
      sub_dx: {type: code, vocabulary: ICD10}
      atc_code: {type: code, vocabulary: ATC}
      is_emergency: boolean
      length_of_stay: {type: numerical, integer: true}
      total_cost: {type: numerical, integer: true}
      patient_share: {type: numerical, integer: true}
      quantity: numerical
      age: {type: numerical, integer: true}
      days_supplied: {type: numerical, integer: true}
"""


def generated_tables(rows: int, work: Path) -> tuple[Path, Path, Path]:
    """bench_fidelity's generated claims (16 columns besides the id) as Parquet; the peer reads the same
    files with the id column dropped and the patient id kept as a category-free id."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO))
    import duckdb

    from bench_fidelity import claims_sql  # type: ignore[import-not-found]

    folder = work / f"generated{rows}"
    for side, seed, shift in (("real", 1, 0.0), ("synthetic", 2, 0.1)):
        path = folder / side / "claims.parquet"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY ({claims_sql(rows, seed, shift)}) TO '{path}' (FORMAT PARQUET)")
        con.close()
    schema = work / "generated_schema.yaml"
    schema.write_text(GENERATED_SCHEMA)
    return folder, folder, schema


GENERATED_PEER = r"""
import sys, time, warnings
import pandas as pd
from sdmetrics.reports.single_table import QualityReport
d = sys.argv[1]
def load(k):
    df = pd.read_parquet(f"{d}/{k}/claims.parquet").drop(columns=["claim_id", "patient_id"])
    for c in df.select_dtypes("string").columns:
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["visit_date"] = pd.to_datetime(df["visit_date"])
    return df
real, syn = load("real"), load("synthetic")
cats = ["care_type", "institution_type", "department", "main_dx", "sub_dx", "atc_code"]
md = {"columns": {**{c: {"sdtype": "categorical"} for c in cats}, "is_emergency": {"sdtype": "boolean"},
      "visit_date": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"},
      **{c: {"sdtype": "numerical"} for c in ["length_of_stay", "total_cost", "patient_share", "quantity", "age", "days_supplied"]}}}
t = time.perf_counter()
rep = QualityReport()
if "--no-subsample" in sys.argv:
    rep.num_rows_subsample = None
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    rep.generate(real, syn, md, verbose=False)
s = rep.get_properties().set_index("Property")["Score"]
print(f"sdmetrics_quality rows={len(real)} seconds={time.perf_counter()-t:.2f} score={rep.get_score():.6f} "
      f"shapes={s['Column Shapes']:.6f} trends={s['Column Pair Trends']:.6f}")
"""

IN_PROCESS = r"""
import json, sys, time
t0 = time.perf_counter()
from data_schemas.io import load_schema
from evaluate.context import load_context
from evaluate.fidelity.columns import column_shapes
from evaluate.fidelity.pairs import column_pair_trends
t1 = time.perf_counter()
ctx = load_context(load_schema(sys.argv[1]), sys.argv[2], sys.argv[3])
t2 = time.perf_counter()
column_shapes(ctx); column_pair_trends(ctx)
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "read_validate": t2 - t1, "metrics": t3 - t2}))
"""


def ours_scores(stdout: str) -> dict[str, float]:
    data = json.loads(stdout)
    return {r["name"]: r["value"] for r in data["results"]}


def compare(label: str, ours_dir: Path, peer_dir: Path, schema: Path, peer_cmd: list[str], runs: int) -> dict[str, Any]:
    mine = median_run([SYNTHMED, "evaluate", "--schema", str(schema), "--real", str(ours_dir / "real"),
                       "--synthetic", str(ours_dir / "synthetic"), "--metrics", METRICS, "--json", "-q"], runs)
    inner = [json.loads(timed([PY, "-c", IN_PROCESS, str(schema), str(ours_dir / "real"), str(ours_dir / "synthetic")],
                              cwd=REPO)["stdout"]) for _ in range(runs)]
    inner_mid = sorted(inner, key=lambda r: r["read_validate"] + r["metrics"])[len(inner) // 2]
    peer = median_run(peer_cmd, runs)
    peer_line = peer["stdout"].strip().splitlines()[-1]
    peer_inner = float(re.search(r"seconds=([0-9.]+)", peer_line).group(1))  # type: ignore[union-attr]
    scores = ours_scores(mine["stdout"])
    ours_work = inner_mid["read_validate"] + inner_mid["metrics"]
    print(f"\n== {label} ==")
    print(f"synthmed evaluate (whole process): {mine['wall']:.2f} s, {mine['rss'] / 2**30:.2f} GiB peak  (runs {mine['walls']})")
    print(f"  inside: imports {inner_mid['imports']:.2f} s, read + validate {inner_mid['read_validate']:.2f} s, "
          f"metrics {inner_mid['metrics']:.2f} s")
    print(f"SDMetrics QualityReport (whole process): {peer['wall']:.2f} s, {peer['rss'] / 2**30:.2f} GiB peak  (runs {peer['walls']})")
    print(f"  inside: report {peer_inner:.2f} s (after reading the Parquet into pandas)")
    print(f"ratio whole process: {peer['wall'] / mine['wall']:.1f}x faster, {peer['rss'] / mine['rss']:.1f}x less memory")
    print(f"ratio in process (our read + validate + metrics vs their report alone): {peer_inner / ours_work:.1f}x")
    print(f"scores: ours shapes {scores['fidelity.column_shapes']:.6f} trends {scores['fidelity.column_pair_trends']:.6f}; "
          f"SDMetrics {peer_line.split('score=')[1]}")
    return {"label": label, "ours": {k: v for k, v in mine.items() if k != "stdout"},
            "peer": {k: v for k, v in peer.items() if k != "stdout"}, "inner": inner_mid, "peer_inner": peer_inner,
            "ratio_whole": peer["wall"] / mine["wall"], "ratio_memory": peer["rss"] / mine["rss"],
            "scores": {"ours": scores, "peer": peer_line}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1, help="runs of each command; the median is reported")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "synthmed-bench-one-pass",
                        help="where the tables are written once and reused")
    parser.add_argument("--skip-synpuf", action="store_true")
    parser.add_argument("--skip-generated", action="store_true")
    parser.add_argument("--no-subsample", action="store_true", help="SDMetrics scores every row of every pair")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}; {args.rows:,} rows a side; {METRICS}")
    extra = ["--no-subsample"] if args.no_subsample else []
    t = time.perf_counter()
    runs: list[dict[str, Any]] = []
    if not args.skip_synpuf:
        ours, peers, schema = synpuf_tables(args.rows, args.work)
        runs.append(compare("DE-SynPUF inpatient claims x beneficiaries (real data), 16 columns",
                ours, peers, schema, [PY, str(SHARED / "bench" / "peer_sdmetrics.py"), str(peers), *extra], args.runs))
    if not args.skip_generated:
        ours, peers, schema = generated_tables(args.rows, args.work)
        runs.append(compare("generated claims (bench_fidelity's simulator), 16 columns",
                            ours, peers, schema, [PY, "-c", GENERATED_PEER, str(peers), *extra], args.runs))
    print(f"\n(benchmark wall time {time.perf_counter() - t:.0f} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": {"cores": os.cpu_count(), "load": load}, "rows": args.rows,
                                        "metrics": METRICS, "runs": runs}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
