"""dp_mst against private-pgm's AIM on one table at the same epsilon (issue 16, item 4).

    flock /tmp/synthmed-heavy.lock .venv/bin/python benchmarks/bench_dp_aim.py [--epsilon 4] [--aim-iters 250]

The table: the demo population of ``bench_cohorts.py`` (5,000 simulated kr_claims patients, split by
patient with seed 0, 40 % holdout), one row per patient who has a claim: the patient's columns, one of
their claims drawn at random (seed 0, the same draw for both mechanisms) and their number of claims
(clipped at 100). One row per patient, so both mechanisms' unit is the patient. The table's rules are the
claims rules that read one row (share within cost, stay only when admitted, pharmacy at pharmacy).

* ours: ``dp_mst`` (epsilon, delta 1e-6), with and without the workload ``targets=["visits.care_type"]``;
* AIM: ``benchmarks/aim_mbi.py`` (private-pgm's AIM on ``mbi`` 2.0, in ``.venv-mbi``), workload all pairs,
  the target's pairs weighted 2; its input is the table on public grids (schema categories, decades of
  birth, log2 bins of money and counts, stay bins) and its output is decoded uniformly within each bin.

Both are judged by ``synthmed evaluate`` in folder mode (fidelity: column shapes and pair trends, rule
violations; utility: TSTR for ``visits.care_type``) on the same train and holdout. Writes
``benchmarks/results/dp_aim.json`` and ``dp_aim.md``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AIM_PY = REPO / ".venv-mbi" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results"
PATIENT_COLS = ("sex", "birth_year", "region", "insurance_type", "income_decile")
CLAIM_COLS = ("care_type", "institution_type", "length_of_stay", "total_cost", "patient_share")
RULES = ("patient_share_within_cost", "stay_only_when_admitted", "pharmacy_at_pharmacy")
LOS_EDGES = np.array([0, 1, 2, 3, 4, 6, 8, 11, 16, 22, 31, 10**6])
MAX_CLAIMS = 100
METRICS = ["fidelity.column_shapes", "fidelity.column_pair_trends", "fidelity.rule_violations", "utility.tstr"]


def visits_schema() -> Any:
    """The one-table schema: patient columns, one claim's columns, the number of claims."""
    import yaml

    from data_schemas.io import load_schema, parse_schema, schema_to_yaml

    spec = yaml.safe_load(schema_to_yaml(load_schema("kr_claims")))
    pat, cl = spec["tables"]["patients"]["columns"], spec["tables"]["claims"]
    columns = {"patient_id": pat["patient_id"], **{c: pat[c] for c in PATIENT_COLS}, **{c: cl["columns"][c] for c in CLAIM_COLS}}
    columns["n_claims"] = {"type": "numerical", "nullable": False, "minimum": 1.0, "maximum": float(MAX_CLAIMS), "integer": True}
    table = {"description": "One claim of each patient with claims", "primary_key": "patient_id", "columns": columns,
             "rules": [r for r in cl["rules"] if r["name"] in RULES]}
    out = {"name": "kr_claims_visits", "version": "1", "patient": {"table": "visits", "column": "patient_id"},
           "tables": {"visits": table}}
    return parse_schema(yaml.safe_dump(out, sort_keys=False), source="<bench_dp_aim: visits>")


def visits(folder: Path, rng: np.random.Generator) -> pd.DataFrame:
    p = pd.read_parquet(folder / "patients.parquet")
    c = pd.read_parquet(folder / "claims.parquet")
    c = c.assign(_r=rng.random(len(c))).sort_values(["patient_id", "_r"])
    n = c.groupby("patient_id").size().rename("n_claims").clip(upper=MAX_CLAIMS)
    one = c.groupby("patient_id", sort=True).first()[list(CLAIM_COLS)]
    return p[["patient_id", *PATIENT_COLS]].merge(one.join(n), left_on="patient_id", right_index=True)


def prepare(work: Path) -> tuple[Any, Path, int]:
    import benchmarks.bench_cohorts as bc
    from data_schemas.io import schema_to_yaml
    from synth.load import frames_to_dataset

    demo = work / "demo"
    if not (demo / "info.json").exists():
        bc.prepare("demo", work)
    schema = visits_schema()
    out = work / "visits"
    rng = np.random.default_rng(0)
    for side in ("train", "holdout"):
        frame = visits(demo / side, rng)
        data, report = frames_to_dataset(schema, {"visits": frame}, namespace=side)
        if not report.ok:
            raise SystemExit(report.render())
        data.write(out / side)
    (out / "schema.yaml").write_text(schema_to_yaml(schema))
    n = len(pd.read_parquet(out / "train" / "visits.parquet"))
    return schema, out, n


# ------------------------------------------------------------------ public grids for AIM
def _cats(schema: Any, c: str) -> list[Any]:
    col = schema.tables["visits"].columns[c]
    return list(col.values) + ([None] if col.nullable else [])


def encode(schema: Any, df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    out, domain = {}, {}
    for c in df.columns:
        if c == "patient_id":
            continue
        col = schema.tables["visits"].columns[c]
        x = df[c]
        if col.type == "categorical":
            cats = _cats(schema, c)
            index = {v: i for i, v in enumerate(cats)}
            out[c] = x.map(lambda v: index[None if pd.isna(v) else v]).to_numpy()
            domain[c] = len(cats)
        elif c == "birth_year":
            out[c] = ((x.to_numpy() - 1900) // 10).clip(0, 13).astype(int)
            domain[c] = 14
        elif c == "income_decile":
            out[c] = x.to_numpy().astype(int)
            domain[c] = 11
        elif c == "length_of_stay":
            out[c] = np.searchsorted(LOS_EDGES, x.to_numpy(), side="right") - 1
            domain[c] = len(LOS_EDGES) - 1
        else:  # money and counts: floor(log2(1 + x))
            top = 31 if c != "n_claims" else 7
            out[c] = np.floor(np.log2(1 + x.to_numpy().astype(float))).clip(0, top - 1).astype(int)
            domain[c] = top
    return pd.DataFrame(out), domain


def decode(schema: Any, codes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    out: dict[str, Any] = {"patient_id": np.arange(len(codes))}
    for c in codes.columns:
        col = schema.tables["visits"].columns[c]
        k = codes[c].to_numpy().astype(int)
        if col.type == "categorical":
            out[c] = np.array(_cats(schema, c), dtype=object)[k]
        elif c == "birth_year":
            out[c] = 1900 + 10 * k + rng.integers(0, 10, len(k))
        elif c == "income_decile":
            out[c] = k
        elif c == "length_of_stay":
            lo, hi = LOS_EDGES[k], np.minimum(LOS_EDGES[k + 1], 200)
            out[c] = rng.integers(lo, np.maximum(hi, lo + 1))
        else:
            lo, hi = 2.0**k - 1, 2.0 ** (k + 1) - 1
            v = np.floor(lo + rng.random(len(k)) * (hi - lo))
            out[c] = np.clip(v, 1, MAX_CLAIMS) if c == "n_claims" else v
    return pd.DataFrame(out)


# ------------------------------------------------------------------ runs
def run_ours(schema: Any, folder: Path, n: int, epsilon: float, params: dict[str, Any], out: Path) -> dict[str, Any]:
    from synth.generators import get_generator
    from synth.load import load_dataset

    train = load_dataset(schema, folder / "train", namespace="train")
    gen = get_generator("dp_mst", epsilon=epsilon, **params)
    t = time.perf_counter()
    gen.fit(train)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    gen.sample(n, seed=0).write(out)
    return {"fit_s": fit_s, "sample_s": time.perf_counter() - t, "edges": gen.nodes_["visits"].model.edges}


def run_aim(schema: Any, folder: Path, n: int, epsilon: float, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from synth.load import frames_to_dataset

    codes, domain = encode(schema, pd.read_parquet(folder / "train" / "visits.parquet"))
    work = out.parent / "aim-input"
    work.mkdir(parents=True, exist_ok=True)
    codes.to_csv(work / "train.csv", index=False)
    (work / "domain.json").write_text(json.dumps(domain))
    cmd = [str(AIM_PY), str(REPO / "benchmarks" / "aim_mbi.py"), str(work / "train.csv"), str(work / "domain.json"),
           str(work / "synthetic.csv"), "--epsilon", str(epsilon), "--rows", str(n), "--max-iters", str(args.aim_iters),
           "--max-model-size", str(args.aim_model_size), "--target", "care_type"]
    if args.aim_rounds:
        cmd += ["--rounds", str(args.aim_rounds)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-3:], "wall_s": wall}
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    frame = decode(schema, pd.read_csv(work / "synthetic.csv"), np.random.default_rng(0))
    data, report = frames_to_dataset(schema, {"visits": frame}, namespace="aim")
    data.write(out)  # rule violations are kept: a finding, as for any tool
    return {**info, "wall_s": wall, "settings": {"max_iters": args.aim_iters, "max_model_size": args.aim_model_size,
                                                 "rounds": args.aim_rounds or "16 x attributes"}}


def judge(schema: Any, folder: Path, synthetic: Path) -> dict[str, Any]:
    from evaluate.context import EvalOptions
    from synthmed.evaluation import evaluate_folders

    options = EvalOptions(seed=0, target="visits.care_type")
    o = evaluate_folders(schema, folder / "train", synthetic, folder / "holdout", options=options, metrics=METRICS)
    values = {r.name: r.value for r in o.evaluation.results}
    return {"fidelity": o.fidelity, **values}


def table(records: list[dict[str, Any]]) -> str:
    cols = [("fit + sample s", "time"), ("fidelity", "fidelity"), ("shapes", "fidelity.column_shapes"),
            ("pairs", "fidelity.column_pair_trends"), ("rule violations", "fidelity.rule_violations"),
            ("TSTR macro-F1", "utility.tstr"), ("TRTR", "utility.trtr"), ("TSTR ratio", "utility.ratio")]
    lines = ["| mechanism | " + " | ".join(h for h, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for r in records:
        cells = []
        for _, key in cols:
            v = r.get(key)
            cells.append("" if v is None else (f"{v:.1f}" if key == "time" else f"{v:.3f}"))
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--aim-iters", type=int, default=250, help="mirror-descent iterations per AIM round (private-pgm: 1000)")
    parser.add_argument("--aim-model-size", type=float, default=80.0, help="AIM's model size cap in MB (private-pgm: 80)")
    parser.add_argument("--aim-rounds", type=int, default=None, help="AIM rounds (private-pgm: 16 x attributes)")
    parser.add_argument("--no-aim", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="fits of each dp_mst variant")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--work", default="/tmp/synthmed-bench-dp-aim")
    parser.add_argument("--out", default=str(RESULTS / "dp_aim"))
    args = parser.parse_args(argv)
    schema, folder, n = prepare(Path(args.work))
    print(f"visits: {n:,} training patients (one row each); epsilon {args.epsilon:g}", flush=True)
    records: list[dict[str, Any]] = []
    cases: list[tuple[str, dict[str, Any] | None]] = []
    for i in range(args.repeats):  # a DP fit is not reproducible: its spread is part of the answer
        cases += [(f"dp_mst (run {i + 1})", {}), (f"dp_mst, targets=[visits.care_type] (run {i + 1})", {"targets": ["visits.care_type"]})]
    if not args.no_aim:
        cases.append(("AIM (private-pgm mbi 2.0)", None))
    for label, params in cases:
        out = Path(args.work) / "syn" / f"case{len(records)}"
        run = run_aim(schema, folder, n, args.epsilon, args, out) if params is None else \
            run_ours(schema, folder, n, args.epsilon, params, out)
        rec: dict[str, Any] = {"label": label, "epsilon": args.epsilon, "run": run}
        if "error" not in run:
            rec["time"] = run.get("wall_s", run.get("fit_s", 0) + run.get("sample_s", 0))
            rec.update(judge(schema, folder, out))
        records.append(rec)
        print(table([rec]).splitlines()[-1], flush=True)
    md = table(records)
    print("\n" + md)
    Path(f"{args.out}.json").write_text(json.dumps({"n_train": n, "records": records}, indent=2, default=str))
    Path(f"{args.out}.md").write_text(f"One table, {n:,} training patients, epsilon {args.epsilon:g}, delta 1e-6 "
                                      f"(`benchmarks/bench_dp_aim.py`)\n\n{md}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
