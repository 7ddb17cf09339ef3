"""``dp_mst`` quality at one epsilon on the demo population, over several fits (issue 16 item 4).

    flock /tmp/synthmed-heavy.lock .venv/bin/python benchmarks/bench_dp_quality.py --fits 3
    .venv/bin/python benchmarks/bench_dp_quality.py --fits 3 --params '{"targets": []}'   # no workload

The population is ``bench_cohorts.py``'s ``demo``: the simulated kr_claims population cut to patients +
claims (5,000 patients, 40 % holdout by patient, seed 0: 2,965 training patients). Each fit is a fresh DP
fit (not reproducible on purpose) on train; it samples as many patients as train holds (as
``bench_cohorts.py`` does) with sampling seed ``fit``, and is judged by ``synthmed evaluate`` in folder mode
on the metrics below (utility target ``claims.care_type``). Also recorded: the sample's claims per care
type and the rows the sampler redrew or dropped for breaking a rule. The default parameters are epsilon 4
and the workload ``targets=["claims.care_type"]``. Writes ``<out>.json`` and ``<out>.md``; the measured
steps of issue 16 item 4 (before and after the rule repair, the workload's budget and its marginal) are in
``benchmarks/results/dp_quality.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

METRICS = ["fidelity.column_shapes", "fidelity.column_pair_trends", "fidelity.children_per_parent", "fidelity.event_gaps",
           "fidelity.rule_violations", "utility.tstr"]
COLUMNS = (("fidelity", "fidelity"), ("shapes", "fidelity.column_shapes"), ("pairs", "fidelity.column_pair_trends"),
           ("children/parent", "fidelity.children_per_parent"), ("event gaps", "fidelity.event_gaps"),
           ("rule violations", "fidelity.rule_violations"), ("TSTR ratio", "utility.ratio"))
DEFAULT_PARAMS = {"epsilon": 4.0, "targets": ["claims.care_type"]}


def one_fit(folder: Path, params: dict[str, Any], fit: int, work: Path) -> dict[str, Any]:
    from bench_cohorts import TARGETS
    from data_schemas.io import load_schema_file
    from evaluate.context import EvalOptions
    from synth.generators import get_generator
    from synth.load import load_dataset
    from synthmed.evaluation import evaluate_folders

    schema = load_schema_file(folder / "schema.yaml")
    train = load_dataset(schema, folder / "train", namespace="train")
    n = json.loads((folder / "info.json").read_text())["n_train"]
    generator = get_generator("dp_mst", **params)
    t = time.perf_counter()
    generator.fit(train)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    synthetic = generator.sample(n, seed=fit)
    sample_s = time.perf_counter() - t
    out = work / f"syn-{fit}"
    synthetic.write(out)
    care = dict(synthetic.con.sql(f"SELECT care_type, count(*) FROM {synthetic.sql_name('claims')} GROUP BY 1 ORDER BY 1").fetchall())
    report = generator.last_sample_report_.to_dict() if generator.last_sample_report_ else {}
    outcome = evaluate_folders(schema, folder / "train", out, folder / "holdout", metrics=METRICS,
                               options=EvalOptions(seed=0, target=TARGETS["demo"]))
    values = {r.name: r.value for r in outcome.evaluation.results}
    return {"fit": fit, "fit_s": round(fit_s, 1), "sample_s": round(sample_s, 1), "rows": synthetic.row_counts(),
            "care_type": {str(k): int(v) for k, v in care.items()}, "sample_report": report,
            "fidelity": outcome.fidelity, "metrics": values, "accounting_epsilon_spent": generator.privacy_accounting()["epsilon_spent"]}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def table(records: list[dict[str, Any]]) -> str:
    head = ["fit", *(c for c, _ in COLUMNS), "claims", "inpatient", "emergency", "claim redraws (rows x rounds)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        vals = [r["fidelity"] if k == "fidelity" else r["metrics"].get(k) for _, k in COLUMNS]
        redrawn = r["sample_report"].get("rejected_rows", {}).get("claims", 0)
        lines.append("| " + " | ".join([str(r["fit"]), *(_fmt(v) for v in vals), f"{r['rows'].get('claims', 0):,}",
                                         str(r["care_type"].get("inpatient", 0)), str(r["care_type"].get("emergency", 0)),
                                         _fmt(redrawn)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=3)
    parser.add_argument("--params", default=json.dumps(DEFAULT_PARAMS), help="dp_mst parameters (JSON)")
    parser.add_argument("--work", default="/tmp/synthmed-bench-dp-quality")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dp_quality_last"), help="results prefix (.json, .md)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from bench_cohorts import prepare

    work = Path(args.work)
    folder = work / "demo"
    if not (folder / "info.json").exists():
        prepare("demo", work)
    info = json.loads((folder / "info.json").read_text())
    params = {**DEFAULT_PARAMS, **json.loads(args.params)}
    print(f"demo: {info['n_train']:,} training patients; dp_mst {params}", flush=True)
    records = []
    for fit in range(args.fits):
        rec = one_fit(folder, params, fit, work)
        records.append(rec)
        print(table([rec]).splitlines()[-1], flush=True)
    md = f"dp_mst {json.dumps(params)} on the demo population ({info['n_train']:,} training patients)\n\n" + table(records)
    print("\n" + md)
    Path(f"{args.out}.json").write_text(json.dumps({"params": params, "n_train": info["n_train"], "fits": records}, indent=2, default=str))
    Path(f"{args.out}.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
