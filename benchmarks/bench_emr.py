"""EMR benchmark (issue 15): bring-your-own-export through the CLI, at full size, and what the release keeps.

    flock /tmp/synthmed-heavy.lock .venv/bin/python benchmarks/bench_emr.py                      # all datasets
    .venv/bin/python benchmarks/bench_emr.py --datasets hosp --generator gaussian_copula -p min_patients=5
    .venv/bin/python benchmarks/bench_emr.py --datasets synthea,synthea_builtin --generator cart

Each dataset runs the path a user takes, one ``synthmed`` process per step (timed, wall seconds):
``schemas infer`` -> ``validate`` -> ``prepare`` -> ``release`` -> ``evaluate RELEASE_ID`` (no ``--schema``:
the release carries it) -> ``report``. Then, from the evaluation and the folders:

- referential integrity (``fidelity.referential_integrity``, and per foreign key) - goal 1.0;
- rule violations (``fidelity.rule_violations``; inferred schemas declare no rules, the built-in ``synthea``
  schema does) - goal 0;
- children per parent per foreign key between patient-row tables (``fidelity.children_per_parent``:
  KS complement of the number of children per parent row, with the real and synthetic means) - goal >= 0.8;
- event gaps (``fidelity.event_gaps``: KS complement of the days between a patient's consecutive events,
  per event table) - goal >= 0.7;
- rows per patient per table, synthetic / train - goal within 0.8x-1.25x.

Datasets:
- ``synthea``: the three Synthea exports of ../shared/datasets/synthea unioned by table (columns matched by
  name: the two layouts side by side), 161 patients, 18 tables; schema inferred;
- ``synthea_builtin``: the same folder with the built-in ``synthea`` schema (its rules count);
- ``hosp``: the simulated MIMIC-IV-demo-shaped hospital export (``synth.demo_hospital``, 100 patients as the
  demo, 22 tables); schema inferred;
- ``omop``: the simulated kr_claims population converted to OMOP CDM (``--patients``); schema inferred;
- ``kr``: the simulated kr_claims population (``--patients``); schema inferred.

Results: ``benchmarks/results/emr_<generator>.json`` (everything) and ``.md`` (the summary tables).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "datasets"
SYNTHEA = SHARED / "synthea"
SECRET = "bench-emr-secret-0123456789abcdef"
METRICS = ("fidelity.referential_integrity,fidelity.rule_violations,fidelity.children_per_parent,"
           "fidelity.event_gaps,fidelity.column_shapes")
DATASETS = ("synthea", "synthea_builtin", "hosp", "omop", "kr")
SYNTHEA_REFERENCE = ("organizations", "providers", "payers")
GOALS = {"children_per_parent": 0.8, "event_gaps": 0.7, "rows_low": 0.8, "rows_high": 1.25}


STEP_TIMEOUT: float | None = None  # seconds a step may take (--step-timeout); None: no limit


def run(args: list[str], *, log: list[dict[str, Any]], step: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One ``synthmed`` process, timed; a failure (or a step past --step-timeout) stops the dataset with its message."""
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTHMED_STORE",)}
    env["SYNTHMED_SECRET"] = SECRET
    start = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "synthmed", *args], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.append({"step": step, "seconds": round(time.perf_counter() - start, 1), "rc": None})
        raise RuntimeError(f"{step} stopped after --step-timeout {STEP_TIMEOUT:.0f} s") from None
    log.append({"step": step, "seconds": round(time.perf_counter() - start, 1), "rc": result.returncode})
    print(f"  {step:<10} {log[-1]['seconds']:7.1f} s  rc {result.returncode}", flush=True)
    if result.returncode != 0:
        raise RuntimeError(f"{step} failed (rc {result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}")
    return result


# --------------------------------------------------------------------------------------------------
# datasets


def synthea_union(out: Path) -> Path:
    """The three Synthea exports as one folder: each table's files unioned by column name, as CSV.GZ."""
    folders = sorted(p for p in SYNTHEA.iterdir() if p.is_dir())
    names = sorted({f.name.split(".")[0] for d in folders for f in d.glob("*.csv.gz")})
    out.mkdir(parents=True)
    con = duckdb.connect()
    for name in names:
        files = [str(d / f"{name}.csv.gz") for d in folders if (d / f"{name}.csv.gz").is_file()]
        listed = ", ".join(f"'{f}'" for f in files)
        # the runs share payers and some organizations/providers: reference rows once per Id
        once = " QUALIFY row_number() OVER (PARTITION BY Id ORDER BY filename) = 1" if name in SYNTHEA_REFERENCE else ""
        con.execute(
            f"COPY (SELECT * EXCLUDE (filename) FROM read_csv([{listed}], header = true, all_varchar = true, "
            f"union_by_name = true, filename = true){once} ORDER BY filename) TO '{out / (name + '.csv.gz')}' "
            "(HEADER, COMPRESSION gzip)"
        )
    con.close()
    return out


def parquet_folder(frames: dict[str, Any], out: Path) -> Path:
    import pyarrow.parquet as pq

    out.mkdir(parents=True)
    for name, table in frames.items():
        pq.write_table(table, out / f"{name}.parquet")
    return out


def build(name: str, work: Path, args: argparse.Namespace) -> tuple[Path, str | None]:
    """(data folder, built-in schema name or None to infer one)."""
    folder = work / name / "export"
    if name in ("synthea", "synthea_builtin"):
        shared = work / "synthea_union"
        if not shared.is_dir():
            synthea_union(shared)
        return shared, ("synthea" if name == "synthea_builtin" else None)
    if name == "hosp":
        from synth.demo_hospital import write_hospital

        return write_hospital(folder, args.hosp_patients, seed=args.seed), None
    from synth.demo_population import simulate

    frames = simulate(args.patients, seed=args.seed)
    if name == "omop":
        from synth.omop_from_claims import claims_to_omop

        frames = claims_to_omop(frames)
    return parquet_folder(frames, folder), None


# --------------------------------------------------------------------------------------------------
# measures


def rows_per_patient(schema_path: str, train: Path, release: Path) -> list[dict[str, Any]]:
    """Rows per patient of every patient-row table: train (prepared) and synthetic (release), and the ratio."""
    from data_schemas.io import load_schema
    from synth.release import folder_schema

    schema = folder_schema(release) if schema_path == "" else load_schema(schema_path)
    con = duckdb.connect()

    def patients(folder: Path) -> int:
        key = schema.patient.column
        return int(con.execute(
            f"SELECT count(DISTINCT \"{key}\") FROM read_parquet('{folder / (schema.patient.table + '.parquet')}')"
        ).fetchall()[0][0])

    def rows(folder: Path, table: str) -> int:
        path = folder / f"{table}.parquet"
        return int(con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]) if path.is_file() else 0

    n_train, n_syn = patients(train), patients(release)
    out = []
    for t in schema.tables.values():
        if t.reference or t.name == schema.patient.table:
            continue
        real = rows(train, t.name) / max(n_train, 1)
        syn = rows(release, t.name) / max(n_syn, 1)
        out.append({"table": t.name, "train": round(real, 3), "synthetic": round(syn, 3),
                    "ratio": round(syn / real, 3) if real else None})
    con.close()
    return out


def summarise(evaluation: dict[str, Any], rpp: list[dict[str, Any]]) -> dict[str, Any]:
    res = {r["name"]: r for r in evaluation["results"]}

    def value(name: str) -> float | None:
        r = res.get(name)
        return None if r is None or r["value"] is None else round(float(r["value"]), 4)

    cpp = [{"fk": f"{d['table']}.{d['column']} -> {d['parent']}", "value": round(d["value"], 3),
            "mean_real": d.get("mean_real"), "mean_synthetic": d.get("mean_synthetic")}
           for d in (res.get("fidelity.children_per_parent") or {}).get("details") or []]
    gaps = [{"table": d["table"], "value": round(d["value"], 3)}
            for d in (res.get("fidelity.event_gaps") or {}).get("details") or [] if d.get("value") is not None]
    ri = [{"fk": f"{d['table']}.{d['column']}", "value": round(d["value"], 4)}
          for d in (res.get("fidelity.referential_integrity") or {}).get("details") or [] if d.get("value") is not None]
    ratios = [r["ratio"] for r in rpp if r["ratio"] is not None]
    out = {
        "referential_integrity": value("fidelity.referential_integrity"),
        "rule_violations": value("fidelity.rule_violations"),
        "children_per_parent": value("fidelity.children_per_parent"),
        "children_per_parent_min": min((c["value"] for c in cpp), default=None),
        "event_gaps": value("fidelity.event_gaps"),
        "column_shapes": value("fidelity.column_shapes"),
        "rows_per_patient_ratio_min": min(ratios, default=None),
        "rows_per_patient_ratio_max": max(ratios, default=None),
        "per_fk_children": cpp, "per_table_gaps": gaps, "per_fk_integrity": ri, "rows_per_patient": rpp,
    }
    out["goals"] = {
        "referential_integrity_1": out["referential_integrity"] == 1.0,
        "rule_violations_0": out["rule_violations"] in (None, 0.0),
        "children_per_parent_ge_0.8_every_fk": bool(cpp) and all(c["value"] >= GOALS["children_per_parent"] for c in cpp),
        "event_gaps_ge_0.7": out["event_gaps"] is not None and out["event_gaps"] >= GOALS["event_gaps"],
        "rows_per_patient_within_0.8_1.25": bool(ratios) and all(GOALS["rows_low"] <= r <= GOALS["rows_high"] for r in ratios),
    }
    return out


def bench(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{name}:", flush=True)
    log: list[dict[str, Any]] = []
    data, builtin = build(name, work, args)
    root = work / name
    root.mkdir(parents=True, exist_ok=True)
    if builtin is None:
        schema = str(root / "schema.yaml")
        run(["schemas", "infer", str(data), "-o", schema, "--name", name, "-q"], log=log, step="infer", cwd=root)
    else:
        schema = builtin
    run(["validate", str(data), "--schema", schema], log=log, step="validate", cwd=root)
    prepared, store = root / "prepared", root / "store"
    run(["prepare", str(data), "--schema", schema, "-o", str(prepared)], log=log, step="prepare", cwd=root)
    params = [x for p in args.param for x in ("-p", p)]
    out = run(["release", "--data", str(prepared), "--schema", schema, "--generator", args.generator, "--store",
               str(store), "--seed", str(args.seed), "-q", *params], log=log, step="release", cwd=root).stdout
    release_id = out.split("release ", 1)[1].split(":", 1)[0]
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    evaluation = json.loads(run(["evaluate", release_id, "--data", str(prepared), "--store", str(store), "--metrics",
                                 METRICS, "--shadow-models", "0", "--json", "-q"], log=log, step="evaluate", cwd=elsewhere).stdout)
    run(["report", release_id, "--store", str(store), "-o", str(root / "report.html")], log=log, step="report", cwd=elsewhere)
    release = store / "releases" / release_id
    manifest = json.loads((release / "manifest.json").read_text())
    summary = summarise(evaluation, rows_per_patient("", prepared / "train", release))
    return {"dataset": name, "schema": builtin or "inferred", "release_id": release_id, "steps": log,
            "tables": len(manifest["rows"]), "patients_synthetic": manifest["n_patients"],
            "sample_report": manifest.get("sample_report", {}), **summary}


# --------------------------------------------------------------------------------------------------
# output


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    lines = [f"# EMR benchmark: generator `{args.generator}` {' '.join(args.param)}", "",
             f"seed {args.seed}; kr/omop {args.patients} patients, hosp {args.hosp_patients}; goals: integrity 1, "
             "violations 0, children/parent >= 0.8 every FK, event gaps >= 0.7, rows/patient 0.8x-1.25x", "",
             "| dataset | schema | tables | ref. integrity | rule viol. | children/parent (mean, min FK) | event gaps "
             "| rows/patient ratio (min-max) | shapes | goals met | seconds (infer/prepare/release/evaluate) |",
             "|---|---|---:|---:|---:|---|---:|---|---:|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['dataset']} | | | | | | | | | error: {r['error'][:120]} | |")
            continue
        t = {s["step"]: s["seconds"] for s in r["steps"]}
        met = sum(r["goals"].values())
        lines.append(
            f"| {r['dataset']} | {r['schema']} | {r['tables']} | {f(r['referential_integrity'])} | {f(r['rule_violations'])} "
            f"| {f(r['children_per_parent'])}, {f(r['children_per_parent_min'])} | {f(r['event_gaps'])} "
            f"| {f(r['rows_per_patient_ratio_min'])}-{f(r['rows_per_patient_ratio_max'])} | {f(r['column_shapes'])} "
            f"| {met}/{len(r['goals'])} | {t.get('infer', '-')}/{t.get('prepare')}/{t.get('release')}/{t.get('evaluate')} |")
    for r in results:
        if "error" in r:
            continue
        lines += ["", f"## {r['dataset']} ({r['schema']} schema)", "",
                  "| foreign key | children/parent | mean real | mean synthetic |", "|---|---:|---:|---:|"]
        lines += [f"| {c['fk']} | {c['value']:.3f} | {f(c['mean_real'])} | {f(c['mean_synthetic'])} |" for c in r["per_fk_children"]]
        lines += ["", "| table | rows/patient train | synthetic | ratio | event gaps |", "|---|---:|---:|---:|---:|"]
        gaps = {g["table"]: g["value"] for g in r["per_table_gaps"]}
        lines += [f"| {x['table']} | {x['train']} | {x['synthetic']} | {f(x['ratio'])} | {f(gaps.get(x['table']))} |"
                  for x in r["rows_per_patient"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {', '.join(DATASETS)}")
    parser.add_argument("--generator", default="gaussian_copula")
    parser.add_argument("-p", "--param", action="append", default=[], help="generator parameter KEY=VALUE (repeatable)")
    parser.add_argument("--patients", type=int, default=1000, help="patients of the simulated kr/omop populations")
    parser.add_argument("--hosp-patients", type=int, default=100, help="patients of the simulated hospital export")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep the folders here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--step-timeout", type=float, default=None, help="seconds one CLI step may take (default: no limit)")
    parser.add_argument("--suffix", default="", help="appended to the results' file names (emr_<generator><suffix>)")
    args = parser.parse_args(argv)
    global STEP_TIMEOUT
    STEP_TIMEOUT = args.step_timeout
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    if any(n.startswith("synthea") for n in names) and not SYNTHEA.is_dir():
        parser.error(f"the Synthea exports are not at {SYNTHEA} (../shared/datasets beside the repo)")
    results: list[dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"emr_{args.generator}{args.suffix}"

    def write() -> str:  # after every dataset, so a run stopped midway keeps what it measured
        stem.with_name(stem.name + ".json").write_text(json.dumps(
            {"generator": args.generator, "params": args.param, "seed": args.seed, "results": results}, indent=1, default=str))
        text = markdown(results, args)
        stem.with_name(stem.name + ".md").write_text(text)
        return text

    with tempfile.TemporaryDirectory(prefix="bench-emr-") as tmp:
        work = args.work or Path(tmp)
        for name in names:
            try:
                results.append(bench(name, work, args))
            except RuntimeError as exc:
                print(f"  {exc}", flush=True)
                results.append({"dataset": name, "error": str(exc)})
            write()
    print(write())


if __name__ == "__main__":
    main()
