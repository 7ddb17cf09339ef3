"""Fidelity benchmark: our Column Shapes + Column Pair Trends against SDMetrics' QualityReport, and the whole
fidelity suite on a large Parquet dataset with its peak memory.

    .venv/bin/python benchmarks/bench_fidelity.py                 # quick: 200k rows, SDMetrics at 200k
    .venv/bin/python benchmarks/bench_fidelity.py --rows 1000000 --sdmetrics-rows 1000000 --suite-rows 10000000

Data: a claims-shaped table of 16 columns (2 ids, 1 date, 6 numbers, 4 categories, 3 high-cardinality
codes) drawn in DuckDB from a counter-based hash (deterministic for a seed, any thread count), "real"
and "synthetic" drawn from slightly different distributions, plus a patients table for the suite.

1. Column Shapes + Column Pair Trends, ours (DuckDB SQL on all rows) and SDMetrics' QualityReport on the
   same pandas frames in this process. SDMetrics can be timed at a smaller size than ours
   (``--sdmetrics-rows``); the ratio is always computed on the same data, at the SDMetrics size.
2. The whole fidelity suite (``evaluate.fidelity``) on ``--suite-rows`` claims read from Parquet, in a
   fresh subprocess that reports its own peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402

from data_schemas.model import Schema  # noqa: E402
from data_schemas.rules import quote  # noqa: E402
from synth.load import Dataset, connect  # noqa: E402

SCHEMA = Schema.model_validate(
    {
        "name": "bench_claims",
        "patient": {"table": "patients", "column": "patient_id"},
        "tables": {
            "patients": {
                "primary_key": "patient_id",
                "columns": {
                    "patient_id": {"type": "id", "privacy": "direct_identifier"},
                    "sex": {"type": "categorical", "values": ["M", "F"]},
                    "birth_year": {"type": "numerical", "integer": True},
                    "region": {"type": "categorical"},
                },
            },
            "claims": {
                "primary_key": "claim_id",
                "order_by": "visit_date",
                "columns": {
                    "claim_id": {"type": "id"},
                    "patient_id": {"type": "id", "references": "patients.patient_id", "privacy": "direct_identifier"},
                    "visit_date": {"type": "datetime", "unit": "date"},
                    "care_type": {"type": "categorical"},
                    "institution_type": {"type": "categorical"},
                    "department": {"type": "categorical"},
                    "main_dx": {"type": "code", "vocabulary": "ICD10"},
                    "sub_dx": {"type": "code", "vocabulary": "ICD10"},
                    "atc_code": {"type": "code", "vocabulary": "ATC"},
                    "is_emergency": {"type": "boolean"},
                    "length_of_stay": {"type": "numerical", "integer": True},
                    "total_cost": {"type": "numerical", "integer": True},
                    "patient_share": {"type": "numerical", "integer": True},
                    "quantity": {"type": "numerical"},
                    "age": {"type": "numerical", "integer": True},
                    "days_supplied": {"type": "numerical", "integer": True},
                },
                "rules": [
                    {"name": "share_within_cost", "check": "patient_share <= total_cost"},
                    {"name": "stay_only_inpatient", "check": "care_type = 'inpatient' OR length_of_stay = 0"},
                ],
            },
        },
    }
)

SDV_META = {
    "tables": {
        "claims": {
            "columns": {
                "claim_id": {"sdtype": "id"},
                "patient_id": {"sdtype": "id"},
                "visit_date": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"},
                **{c: {"sdtype": "categorical"} for c in ("care_type", "institution_type", "department", "main_dx", "sub_dx", "atc_code")},
                "is_emergency": {"sdtype": "boolean"},
                **{
                    c: {"sdtype": "numerical"}
                    for c in ("length_of_stay", "total_cost", "patient_share", "quantity", "age", "days_supplied")
                },
            }
        }
    }
}


def _u(k: int, seed: int) -> str:
    """A uniform [0, 1) draw per row: hash of (row, seed, k), independent of threads and order."""
    return f"(CAST(hash(i * 1024 + {k} + {seed} * 1099511627776) >> 11 AS DOUBLE) / 9007199254740992.0)"


def _normal(k: int, seed: int) -> str:
    return f"(sqrt(-2 * ln(1 - {_u(k, seed)})) * cos(2 * pi() * {_u(k + 100, seed)}))"


def claims_sql(n: int, seed: int, shift: float) -> str:
    """SQL drawing ``n`` claims; ``shift`` moves the synthetic side's distributions a little."""
    n_pat = max(n // 10, 1)
    return f"""
    SELECT 'C' || i AS claim_id,
           'P' || CAST(floor({_u(1, seed)} * {n_pat}) AS BIGINT) AS patient_id,
           DATE '2020-01-01' + CAST(floor(pow({_u(2, seed)}, 1 + {shift}) * 1461) AS INTEGER) AS visit_date,
           care_type, institution_type,
           ['internal', 'surgery', 'pediatrics', 'obgyn', 'ent', 'ophthalmology', 'dermatology', 'psychiatry',
            'orthopedics', 'family'][1 + CAST(floor(pow({_u(5, seed)}, 1.3) * 10) AS INTEGER)] AS department,
           chr(65 + CAST(floor(pow({_u(6, seed)}, 2) * 20) AS INTEGER)) || lpad(CAST(CAST(floor(pow({_u(7, seed)}, 2 + {shift}) * 100) AS INTEGER) AS VARCHAR), 2, '0')
               || '.' || CAST(CAST(floor({_u(8, seed)} * 10) AS INTEGER) AS VARCHAR) AS main_dx,
           CASE WHEN {_u(9, seed)} < 0.4 THEN NULL ELSE
               chr(65 + CAST(floor(pow({_u(10, seed)}, 1.5) * 20) AS INTEGER)) || lpad(CAST(CAST(floor(pow({_u(11, seed)}, 2) * 100) AS INTEGER) AS VARCHAR), 2, '0') END AS sub_dx,
           chr(65 + CAST(floor({_u(12, seed)} * 14) AS INTEGER)) || lpad(CAST(CAST(floor(pow({_u(13, seed)}, 2) * 99) AS INTEGER) AS VARCHAR), 2, '0')
               || chr(65 + CAST(floor({_u(14, seed)} * 4) AS INTEGER)) || chr(65 + CAST(floor({_u(15, seed)} * 3) AS INTEGER)) AS atc_code,
           care_type = 'emergency' OR {_u(16, seed)} < 0.02 AS is_emergency,
           CASE WHEN care_type = 'inpatient' THEN 1 + CAST(floor(exp(1.5 + 0.8 * {_normal(17, seed)})) AS BIGINT) ELSE 0 END AS length_of_stay,
           total_cost,
           CAST(floor(total_cost * (0.1 + 0.3 * {_u(19, seed)} + {shift} * 0.05)) AS BIGINT) AS patient_share,
           round(exp(0.5 * {_normal(20, seed)}) * (1 + {shift}), 3) AS quantity,
           CAST(floor(pow({_u(22, seed)}, 0.8 - {shift} * 0.1) * 100) AS BIGINT) AS age,
           CASE WHEN {_u(23, seed)} < 0.3 THEN NULL ELSE 1 + CAST(floor(pow({_u(24, seed)}, 2) * 90) AS BIGINT) END AS days_supplied
    FROM (
        SELECT i, care_type,
               CASE care_type WHEN 'pharmacy' THEN 'pharmacy'
                    WHEN 'inpatient' THEN ['tertiary_hospital', 'general_hospital', 'hospital'][1 + CAST(floor({_u(4, seed)} * 3) AS INTEGER)]
                    ELSE ['general_hospital', 'hospital', 'clinic', 'clinic', 'clinic', 'public_health_center'][1 + CAST(floor({_u(4, seed)} * 6) AS INTEGER)] END
                   AS institution_type,
               CAST(floor(exp(9 + 1.2 * {_normal(18, seed)} + CASE care_type WHEN 'inpatient' THEN 2.5 ELSE 0 END + {shift} * 0.2)) AS BIGINT) AS total_cost
        FROM (SELECT i, CASE WHEN {_u(3, seed)} < 0.55 THEN 'outpatient' WHEN {_u(3, seed)} < 0.85 + {shift} * 0.05 THEN 'pharmacy'
                             WHEN {_u(3, seed)} < 0.95 THEN 'inpatient' ELSE 'emergency' END AS care_type
              FROM range({n}) r(i)))
    """


def patients_sql(n_claims: int, seed: int, shift: float) -> str:
    n_pat = max(n_claims // 10, 1)
    return f"""
    SELECT 'P' || i AS patient_id, CASE WHEN {_u(30, seed)} < 0.49 + {shift} * 0.02 THEN 'M' ELSE 'F' END AS sex,
           1920 + CAST(floor(pow({_u(31, seed)}, 0.9) * 100) AS BIGINT) AS birth_year,
           'r' || CAST(floor(pow({_u(32, seed)}, 1.5) * 17) AS INTEGER) AS region
    FROM range({n_pat}) r(i)
    """


def write_parquet(folder: Path, n: int, seed: int, shift: float) -> None:
    """One Parquet file per table, written by DuckDB without holding the rows in Python."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET memory_limit = '2GB'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"COPY ({claims_sql(n, seed, shift)}) TO '{folder / 'claims.parquet'}' (FORMAT PARQUET)")
    con.execute(f"COPY ({patients_sql(n, seed, shift)}) TO '{folder / 'patients.parquet'}' (FORMAT PARQUET)")
    con.close()


def parquet_dataset(con: duckdb.DuckDBPyConnection, namespace: str, folder: Path) -> Dataset:
    """A Dataset whose views read the Parquet files directly (the files were written by us, already typed)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    for table in SCHEMA.tables:
        cols = ", ".join(quote(c) for c in SCHEMA.tables[table].columns)
        con.execute(
            f"CREATE OR REPLACE VIEW {quote(namespace)}.{quote(table)} AS SELECT {cols} FROM read_parquet('{folder / (table + '.parquet')}')"
        )
    return Dataset(SCHEMA, con, namespace, str(folder))


def memory_dataset(con: duckdb.DuckDBPyConnection, namespace: str, n: int, seed: int, shift: float) -> Dataset:
    """A Dataset held in DuckDB tables (what ``load_context`` builds), drawn directly in SQL."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    con.execute(f"CREATE OR REPLACE TABLE {quote(namespace)}.claims AS {claims_sql(n, seed, shift)}")
    con.execute(f"CREATE OR REPLACE TABLE {quote(namespace)}.patients AS {patients_sql(n, seed, shift)}")
    return Dataset(SCHEMA, con, namespace, "<memory>")


def claims_only_schema() -> Schema:
    data = SCHEMA.model_dump(mode="python")
    data["tables"] = {"claims": data["tables"]["claims"]}
    data["patient"] = {"table": "claims", "column": "claim_id"}
    return Schema.model_validate(data)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _contexts(n: int, threads: int | None) -> tuple[Any, duckdb.DuckDBPyConnection]:
    from evaluate.context import EvalContext, EvalOptions

    schema = claims_only_schema()
    con = connect(threads=threads)
    real = memory_dataset(con, "train", n, seed=1, shift=0.0)
    syn = memory_dataset(con, "synthetic", n, seed=2, shift=0.1)
    real.schema = syn.schema = schema
    return EvalContext(schema, con, real, syn, None, EvalOptions()), con


def time_ours(n: int, threads: int | None) -> dict[str, float]:
    """Wall and CPU seconds of our Column Shapes + Column Pair Trends on n real vs n synthetic claims."""
    from evaluate.fidelity.columns import column_shapes
    from evaluate.fidelity.pairs import column_pair_trends

    ctx, con = _contexts(n, threads)
    t0, c0 = time.perf_counter(), _cpu()
    shapes = column_shapes(ctx)[0]
    pairs = column_pair_trends(ctx)[0]
    out = {"wall": time.perf_counter() - t0, "cpu": _cpu() - c0, "shapes": shapes.value or 0.0, "pairs": pairs.value or 0.0}
    con.close()
    return out


def time_sdmetrics(n: int, threads: int | None) -> dict[str, float]:
    """SDMetrics' QualityReport and ours on the same n rows: wall and CPU seconds, both property scores.

    Both start from the same DuckDB tables; SDMetrics gets them as pandas frames (conversion not timed).
    """
    from sdmetrics.reports import QualityReport

    from evaluate.fidelity.columns import column_shapes
    from evaluate.fidelity.pairs import column_pair_trends

    ctx, con = _contexts(n, threads)
    frames = {}
    for side, ds in (("real", ctx.train), ("synthetic", ctx.synthetic)):
        df = con.execute(f"SELECT * FROM {ds.sql_name('claims')}").df()
        df["visit_date"] = df["visit_date"].astype("datetime64[ns]")
        df["days_supplied"] = df["days_supplied"].astype("float64")
        frames[side] = df
    t0, c0 = time.perf_counter(), _cpu()
    ours_shapes = column_shapes(ctx)[0].value
    ours_pairs = column_pair_trends(ctx)[0].value
    ours_wall, ours_cpu = time.perf_counter() - t0, _cpu() - c0
    report = QualityReport()
    t0, c0 = time.perf_counter(), _cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({"claims": frames["real"]}, {"claims": frames["synthetic"]}, SDV_META, verbose=False)
    theirs_wall, theirs_cpu = time.perf_counter() - t0, _cpu() - c0
    props = report.get_properties().set_index("Property")["Score"]
    con.close()
    return {
        "theirs_wall": theirs_wall, "theirs_cpu": theirs_cpu, "ours_wall": ours_wall, "ours_cpu": ours_cpu,
        "theirs_shapes": float(props["Column Shapes"]), "ours_shapes": float(ours_shapes or 0.0),
        "theirs_pairs": float(props["Column Pair Trends"]), "ours_pairs": float(ours_pairs or 0.0),
    }


SUITE_CHILD = r"""
import json, resource, sys, time, warnings
sys.path.insert(0, {repo!r})
from bench_fidelity import SCHEMA, parquet_dataset
from synth.load import connect
from evaluate.context import EvalContext, EvalOptions
from evaluate.registry import select
import evaluate.metrics  # noqa: F401
con = connect(threads={threads}, read_dirs=[{real!r}, {syn!r}],
              config={{"memory_limit": '{memory_limit}', "temp_directory": '{tmp}', "preserve_insertion_order": False}})
real = parquet_dataset(con, "train", __import__("pathlib").Path({real!r}))
syn = parquet_dataset(con, "synthetic", __import__("pathlib").Path({syn!r}))
ctx = EvalContext(SCHEMA, con, real, syn, None, EvalOptions(seed=0, max_rows={max_rows}))
times = {{}}
values = {{}}
peaks = {{}}
t_all = time.perf_counter()
for spec in select(["fidelity"]):
    t0 = time.perf_counter()
    for r in spec.fn(ctx):
        values[r.name] = r.value
    times[spec.name] = round(time.perf_counter() - t0, 2)
    peaks[spec.name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
total = time.perf_counter() - t_all
peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) * 1024
print(json.dumps({{"total_s": total, "times": times, "values": values, "peak_bytes": peak, "peaks_after": peaks}}))
"""


def run_suite(n: int, threads: int | None, memory_limit: str, max_rows: int) -> dict[str, Any]:
    """Write n real and n synthetic claims to Parquet, run every fidelity metric in a child process."""
    with tempfile.TemporaryDirectory(prefix="synthmed-bench-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        write_parquet(tmpdir / "real", n, seed=1, shift=0.0)
        write_parquet(tmpdir / "synthetic", n, seed=2, shift=0.1)
        gen = time.perf_counter() - t0
        code = SUITE_CHILD.format(
            repo=str(REPO),
            threads=threads or "None",
            memory_limit=memory_limit,
            tmp=str(tmpdir / "spill"),
            real=str(tmpdir / "real"),
            syn=str(tmpdir / "synthetic"),
            max_rows=max_rows,
        )
        env = dict(os.environ, PYTHONPATH=f"{REPO / 'benchmarks'}{os.pathsep}{REPO}")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            raise SystemExit(f"suite child failed:\n{out.stderr}")
        try:
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise SystemExit(f"suite child printed no result:\nstdout: {out.stdout[-2000:]}\nstderr: {out.stderr[-2000:]}") from None
        result["generate_s"] = gen
        result["parquet_bytes"] = sum(p.stat().st_size for p in tmpdir.rglob("*.parquet"))
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per side for our timing (default 200,000)")
    parser.add_argument("--sdmetrics-rows", type=int, default=None, help="rows per side for the SDMetrics timing (default: --rows)")
    parser.add_argument("--agreement-rows", type=int, default=40_000, help="rows per side of the value check (<= 50,000; 0 to skip)")
    parser.add_argument("--suite-rows", type=int, default=None, help="rows per side for the whole-suite memory run (default: --rows)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--memory-limit", default="1500MB", help="DuckDB memory_limit in the suite run (default 1500MB)")
    parser.add_argument("--max-rows", type=int, default=20_000, help="sample bound of the detection metrics (default 20,000)")
    parser.add_argument("--skip-sdmetrics", action="store_true")
    parser.add_argument("--skip-suite", action="store_true")
    args = parser.parse_args(argv)
    sd_rows = args.sdmetrics_rows or args.rows
    suite_rows = args.suite_rows or args.rows
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores (load average {load}), duckdb {duckdb.__version__}, threads={args.threads or 'all'}")
    print("times: wall seconds, and process CPU seconds (user + system, all threads) which shared machines distort less")

    ours = time_ours(args.rows, args.threads)
    print(f"ours  Column Shapes + Column Pair Trends, {args.rows:,} vs {args.rows:,} rows, 16 columns: "
          f"{ours['wall']:.2f} s wall, {ours['cpu']:.2f} s CPU (shapes {ours['shapes']:.4f}, pair trends {ours['pairs']:.4f})")
    if not args.skip_sdmetrics:
        if args.agreement_rows:
            small = time_sdmetrics(args.agreement_rows, args.threads)
            print(f"values at {args.agreement_rows:,} rows (below SDMetrics' 50,000-row sampling, so both use all rows):")
            print(f"  Column Shapes      SDMetrics {small['theirs_shapes']:.8f}  ours {small['ours_shapes']:.8f}  "
                  f"(diff {abs(small['theirs_shapes'] - small['ours_shapes']):.1e})")
            print(f"  Column Pair Trends SDMetrics {small['theirs_pairs']:.8f}  ours {small['ours_pairs']:.8f}  "
                  f"(diff {abs(small['theirs_pairs'] - small['ours_pairs']):.1e})")
            print(f"  time: SDMetrics {small['theirs_wall']:.2f} s, ours {small['ours_wall']:.2f} s "
                  f"-> {small['theirs_wall'] / small['ours_wall']:.1f}x wall, {small['theirs_cpu'] / small['ours_cpu']:.1f}x CPU")
        res = time_sdmetrics(sd_rows, args.threads)
        print(f"SDMetrics QualityReport (Column Shapes + Column Pair Trends), {sd_rows:,} vs {sd_rows:,} rows: "
              f"{res['theirs_wall']:.2f} s wall, {res['theirs_cpu']:.2f} s CPU")
        print(f"ours on the same {sd_rows:,}-row data: {res['ours_wall']:.2f} s wall, {res['ours_cpu']:.2f} s CPU  ->  "
              f"speed-up {res['theirs_wall'] / res['ours_wall']:.1f}x wall, {res['theirs_cpu'] / res['ours_cpu']:.1f}x CPU")
        print(f"  Column Shapes      SDMetrics {res['theirs_shapes']:.6f}  ours {res['ours_shapes']:.6f}  "
              f"(diff {abs(res['theirs_shapes'] - res['ours_shapes']):.1e})")
        print(f"  Column Pair Trends SDMetrics {res['theirs_pairs']:.6f}  ours {res['ours_pairs']:.6f}  "
              f"(diff {abs(res['theirs_pairs'] - res['ours_pairs']):.1e})")
        if sd_rows > 50_000:
            print("  note: above 50,000 rows SDMetrics computes each contingency table, and the Cramér's V that decides which")
            print("        pairs count, on an unseeded 50,000-row sample; with high-cardinality codes V is inflated on the sample,")
            print("        so other pairs count and the pair-trend values differ. Ours uses all rows (exact).")
    if not args.skip_suite:
        res = run_suite(suite_rows, args.threads, args.memory_limit, args.max_rows)
        peak = res["peak_bytes"]
        print(
            f"whole fidelity suite, {suite_rows:,} vs {suite_rows:,} claims (+ {suite_rows // 10:,} patients per side) from Parquet "
            f"({res['parquet_bytes'] / 2**20:.0f} MiB): {res['total_s']:.1f} s, peak RSS {peak / 2**30:.2f} GiB "
            f"(DuckDB memory_limit {args.memory_limit}; data generation {res['generate_s']:.1f} s, not counted)"
        )
        print("  metric (in run order)                    time     peak RSS so far")
        for name, t in res["times"].items():
            print(f"  {name:40s} {t:7.2f} s  {res['peaks_after'][name] / 2**30:6.2f} GiB")
        print("  values: " + ", ".join(f"{k}={v:.4f}" for k, v in res["values"].items() if v is not None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
