"""Privacy-utility curve of the DP generator: fidelity, utility and attack AUC per epsilon, on two datasets.

    .venv/bin/python benchmarks/bench_dp.py                                   # 1,000 patients each (a few minutes)
    .venv/bin/python benchmarks/bench_dp.py --patients 5000 --epsilons 0.5,1,4,16,none --out /tmp/dp

Datasets: the simulated demo population (kr_claims, ``simulate(2 * n, seed)``, split half / half by
patient) and DE-SynPUF sample 1 (``../shared/datasets/desynpuf/1-sample-10000``, split by patient so that
about ``n`` patients train; skipped when the folder is absent). For every epsilon, ``dp_mst`` is fitted
on the train side and samples its own noisy estimate of the number of patients (as a release does);
``none`` is the non-DP reference, the ``gaussian_copula`` generator (one SDV Gaussian copula per table,
walked from the patient root), which samples as many patients as train holds. ``--workload`` gives
``dp_mst`` the utility target as its workload (``targets``, public: the analyst names it before the fit).

Every cohort is scored against train and holdout: overall fidelity (mean of column shapes and column
pair trends, SDMetrics' quality score), the rule-violation share, utility (TSTR / TRTR ratio for
``claims.care_type`` on kr_claims and ``beneficiary_summary.SP_DIABETES`` on DE-SynPUF), the AUC of the
distance and DOMIAS membership attacks, and the one-run canary audit (``privacy.audit``, ``--canaries``
canary patients, the generator refitted on train plus the canaries put in): the lower bound on epsilon
it shows and the largest it could show.
Writes ``dp_sweep.csv`` and ``dp_sweep.svg`` (hand-written SVG, no plotting library) under ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import html
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SYNPUF = REPO.parent / "shared" / "datasets" / "desynpuf" / "1-sample-10000"
TARGETS = {"kr_claims": "claims.care_type", "cms_desynpuf": "beneficiary_summary.SP_DIABETES"}
METRICS = ["fidelity.column_shapes", "fidelity.column_pair_trends", "fidelity.rule_violations", "utility.tstr",
           "privacy.mia.distance", "privacy.mia.domias", "privacy.audit"]
COLUMNS = ["dataset", "epsilon", "generator", "n_train", "n_released", "fit_s", "fidelity", "rule_violations", "utility_ratio",
           "mia_distance_auc", "mia_domias_auc", "epsilon_lower_bound", "audit_limit", "audit_s", "epsilon_spent"]
SERIES = [("fidelity", "fidelity", "#1f6fb4"), ("utility_ratio", "utility TSTR/TRTR", "#2e7d32"),
          ("mia_distance_auc", "MIA distance AUC", "#c62828"), ("mia_domias_auc", "MIA DOMIAS AUC", "#f28e2b")]


def datasets(n: int, seed: int) -> list[tuple[str, Any, Any]]:
    from data_schemas.io import load_schema
    from synth.demo_population import simulate
    from synth.load import frames_to_dataset, read_dataset
    from synth.split import split_patients

    out = []
    kr = load_schema("kr_claims")
    data, report = frames_to_dataset(kr, simulate(2 * n, seed=seed))
    assert report.ok
    train, holdout, _ = split_patients(data, seed=seed, holdout_fraction=0.5)
    out.append(("kr_claims", train, holdout))
    if SYNPUF.is_dir():
        schema = load_schema("cms_desynpuf")
        data, report = read_dataset(schema, SYNPUF)
        assert report.ok, report.render()
        total = int(data.con.execute(f"SELECT count(DISTINCT DESYNPUF_ID) FROM {data.sql_name('beneficiary_summary')}").fetchall()[0][0])
        train, holdout, _ = split_patients(data, seed=seed, holdout_fraction=max(0.5, 1.0 - n / total))
        out.append(("cms_desynpuf", train, holdout))
    else:
        print(f"DE-SynPUF not found at {SYNPUF}: kr_claims only", file=sys.stderr)
    return out


def on_connection(dataset: Any, con: Any) -> Any:
    """``dataset`` copied into ``con`` (namespace ``synthetic``), where the metrics' SQL can join it with train."""
    from synth.load import frames_to_dataset

    frames = {t: dataset.con.sql(f"SELECT * FROM {dataset.sql_name(t)}").to_arrow_table() for t in dataset.schema.tables}
    copied, report = frames_to_dataset(dataset.schema, frames, con=con, namespace="synthetic")
    assert report.ok, report.render()
    return copied


def run_point(name: str, train: Any, holdout: Any, epsilon: float | None, seed: int, canaries: int, workload: bool = False) -> dict[str, Any]:
    from evaluate.context import EvalContext, EvalOptions
    from evaluate.fidelity.summary import overall_fidelity
    from evaluate.privacy.mia_shadow import generator_factory
    from evaluate.runner import run_metrics

    dp_params: dict[str, Any] = {"epsilon": epsilon, "targets": [TARGETS[name]] if workload else []}
    gen_name, gen_params = ("gaussian_copula", {}) if epsilon is None else ("dp_mst", dp_params)
    factory = generator_factory(gen_name, **gen_params)
    generator = factory()
    n_train = int(train.con.execute(
        f'SELECT count(DISTINCT "{train.schema.patient.column}") FROM {train.sql_name(train.schema.patient.table)}'
    ).fetchall()[0][0])
    start = time.perf_counter()
    generator.fit(train)
    n_released = generator.release_size(n_train) or n_train
    synthetic = generator.sample(n_released, seed=seed)
    fit_s = time.perf_counter() - start
    synthetic = on_connection(synthetic, train.con)
    audit = {"generator_factory": factory, "n_canaries": canaries, "delta": generator.delta or 0.0} if canaries else {}
    ctx = EvalContext(train.schema, train.con, train, synthetic, holdout,
                      EvalOptions(seed=seed, target=TARGETS[name], max_rows=4000, params={"privacy.audit": audit}))
    starts: list[tuple[str, float]] = []  # (metric, when it started), in the runner's order
    evaluation = run_metrics(ctx, METRICS, progress=lambda spec, i, n: starts.append((spec.name, time.perf_counter())))
    starts.append(("end", time.perf_counter()))
    audit_s = next((starts[i + 1][1] - t for i, (m, t) in enumerate(starts[:-1]) if m == "privacy.audit"), None) if canaries else None
    bound = evaluation.get("privacy.epsilon_lower_bound")

    def value(result: str) -> float | None:
        r = evaluation.get(result)
        return None if r is None or r.value is None else round(float(r.value), 4)

    accounting = generator.privacy_accounting()
    return {
        "dataset": name, "epsilon": "none" if epsilon is None else epsilon, "generator": generator.name, "n_train": n_train, "n_released": n_released,
        "fit_s": round(fit_s, 1), "fidelity": None if (f := overall_fidelity(evaluation)) is None else round(f, 4),
        "rule_violations": value("fidelity.rule_violations"), "utility_ratio": value("utility.ratio"),
        "mia_distance_auc": value("privacy.mia.distance.auc"), "mia_domias_auc": value("privacy.mia.domias.auc"),
        "epsilon_lower_bound": value("privacy.epsilon_lower_bound"),
        "audit_limit": None if bound is None or bound.value is None else round(bound.range[1], 2),
        "audit_s": None if audit_s is None else round(audit_s, 1),
        "epsilon_spent": None if accounting is None else round(accounting["epsilon_spent"], 4),
    }


def svg(rows: list[dict[str, Any]], epsilons: list[float | None]) -> str:
    """One panel per dataset: each series against epsilon (log scale), the non-DP reference at the right."""
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    w, h, left, top, pw, ph = 420, 300, 50, 40, 320, 200
    xs = {e: i for i, e in enumerate(epsilons)}
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w * len(names)}' height='{h + 60}' font-family='sans-serif' font-size='11'>"]
    for k, name in enumerate(names):
        ox = k * w
        parts.append(f"<text x='{ox + left}' y='20' font-size='13' font-weight='bold'>{html.escape(name)}</text>")
        parts.append(f"<rect x='{ox + left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>")
        for v in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = top + ph - v * ph
            parts.append(f"<line x1='{ox + left}' x2='{ox + left + pw}' y1='{y}' y2='{y}' stroke='#eee'/>")
            parts.append(f"<text x='{ox + left - 6}' y='{y + 4}' text-anchor='end'>{v:.2f}</text>")

        def px(e: float | None) -> float:
            return ox + left + 10 + xs[e] * (pw - 20) / max(1, len(epsilons) - 1)

        for e in epsilons:
            parts.append(f"<text x='{px(e)}' y='{top + ph + 16}' text-anchor='middle'>{'no DP' if e is None else f'{e:g}'}</text>")
        parts.append(f"<text x='{ox + left + pw / 2}' y='{top + ph + 32}' text-anchor='middle'>epsilon (per patient)</text>")
        mine = {r["epsilon"] if r["epsilon"] != "none" else None: r for r in rows if r["dataset"] == name}
        for key, _label, color in SERIES:
            pts = [(px(e), top + ph - min(1.0, max(0.0, float(mine[e][key]))) * ph) for e in epsilons
                   if e in mine and mine[e][key] is not None]
            if pts:
                parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in pts)}'/>")
                parts.extend(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{color}'/>" for x, y in pts)
    for i, (_key, label, color) in enumerate(SERIES):
        x = left + i * 170
        parts.append(f"<rect x='{x}' y='{h + 30}' width='10' height='10' fill='{color}'/><text x='{x + 14}' y='{h + 39}'>{html.escape(label)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1000, help="training patients per dataset (about)")
    parser.add_argument("--epsilons", default="0.5,1,4,16,none", help="comma-separated; 'none' = non-DP reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--canaries", type=int, default=100, help="canary patients of the epsilon audit (0 skips it)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--workload", action="store_true", help="fit dp_mst with the utility target as its workload (targets)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    epsilons: list[float | None] = [None if e.strip() == "none" else float(e) for e in args.epsilons.split(",")]
    rows: list[dict[str, Any]] = []
    for name, train, holdout in datasets(args.patients, args.seed):
        for eps in epsilons:
            row = run_point(name, train, holdout, eps, args.seed, args.canaries, workload=args.workload)
            rows.append(row)
            print("  ".join(f"{k}={row[k]}" for k in COLUMNS), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "dp_sweep.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "dp_sweep.svg").write_text(svg(rows, epsilons))
    print(f"wrote {args.out / 'dp_sweep.csv'} and {args.out / 'dp_sweep.svg'}")
    if any(r["epsilon_lower_bound"] is not None and isinstance(r["epsilon"], float) and r["epsilon_lower_bound"] > r["epsilon"]
           for r in rows):
        print("WARNING: an audited lower bound exceeds its theoretical epsilon", file=sys.stderr)


if __name__ == "__main__":
    main()
