"""Cohort benchmark (issue 16): our generators and the peer (MOSTLY AI's engine) on three populations, two judges.

    flock /tmp/synthmed-heavy.lock .venv/bin/python benchmarks/bench_cohorts.py                 # all three, ~1 h on 2 cores
    .venv/bin/python benchmarks/bench_cohorts.py --datasets demo --generators cart --no-peer    # one quick case

Populations (each split by patient, seed 0; every model sees the train side only and samples as many
patients as train holds, and never fewer than mostlyai-qa judges: it scores an event table only where at least
100 synthetic patients have rows in it (its ``report`` returns no metrics otherwise), so the cohort is sized
by ``sample_size`` to expect that in every event table with 15% to spare, which only Synthea's 93 training
patients need: 119 synthetic patients):

* ``demo``: the simulated kr_claims population cut to patients + claims (5,000 patients, 40% holdout:
  about 3,000 training patients, as in the issue);
* ``desynpuf``: DE-SynPUF sample 1, 2008 beneficiary summary (one row per beneficiary) + inpatient claims
  (10,000 beneficiaries, 20% holdout; the 45 HCPCS columns, empty in the inpatient files, left out);
* ``synthea``: Synthea ``ma_112p_2025`` (112 patients, 10% holdout: mostlyai-qa needs 90 training patients): patients, encounters and four event
  tables (conditions, medications, procedures, immunizations), each event carrying its encounter; the
  keys to the reference tables (providers, payers, organizations) are left out.

Generators: ours by registry name (``cart``, ``gaussian_copula``, ...), fitted and sampled as ``synthmed
release`` does it: ``fit``, ``sample_batches``, and the replicated-uniques guard (``synth.uniques.UniquesGuard``)
on every batch unless ``synth.pipeline.guard_skip_reason`` says it never runs for the generator (DP generators,
calibration baselines), so the cohort judged is the one a user releases; the guard's counts go to the JSON
(``run.replicated_uniques``). And ``peer``, judged as its users run it (no guard: the engine has none): ``mostlyai-engine`` TabularARGN in its own environment (``.venv-mostly``), a flat model for
patients and a two-table sequential model per event table with patients as context, the training time
cap (``--peer-minutes``, the issue's 6 min) split over the models. The peer's output gets ids in our
format and, on Synthea, each event's encounter key filled by date (the patient's latest encounter on
or before the event): the minimum to load it; its rule violations are left as they are, as findings.

Judges: ``synthmed evaluate`` in folder mode (every metric; the shadow-model attack is off for every
generator, since the peer cannot be refitted by our attack) and mostlyai-qa's overall accuracy (mean
over the event tables, patients as context; an event table qa declines to score, with the sizes it found, goes
to the JSON as ``qa.not_judged`` and the table says how many were scored). Times are whole processes (interpreter start, imports,
reading the train folder, fit, sample, writing), wall seconds; the machine's load average is printed.
Writes ``benchmarks/results/cohorts.json``, ``cohorts.md`` (the table) and ``cohorts.svg`` (the plot);
``--merge`` keeps the rows of the existing JSON that this run does not redo (same dataset and label), e.g. the
peer's when it runs with ``--no-peer``; every row says when it was made (``made_at``, UTC; absent on rows
from before it was recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "datasets"
PEER_PY = REPO / ".venv-mostly" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results"

DATASETS = ("demo", "desynpuf", "synthea")
QA_MIN_SYNTHETIC = 100  # mostlyai-qa's report returns no metrics with fewer synthetic patients having rows in the event table
QA_SPARE = 1.15
TARGETS = {"demo": "claims.care_type", "desynpuf": "beneficiary_summary.SP_CHF", "synthea": "encounters.ENCOUNTERCLASS"}
SYNTHEA_TABLES = ("patients", "encounters", "conditions", "medications", "procedures", "immunizations")
COLUMNS = (
    ("fidelity", "fidelity"),
    ("shapes", "fidelity.column_shapes"),
    ("pairs", "fidelity.column_pair_trends"),
    ("children/parent", "fidelity.children_per_parent"),
    ("event gaps", "fidelity.event_gaps"),
    ("detection.gbt", "fidelity.detection.gbt"),
    ("rule violations", "fidelity.rule_violations"),
    ("ref. integrity", "fidelity.referential_integrity"),
    ("TSTR ratio", "utility.ratio"),
)


# ----------------------------------------------------------------------------------------- data


def _reduced(name: str, tables: dict[str, Any] | None = None, *, drop_columns: dict[str, list[str]] | None = None,  # columns made plain ids
             drop_groups: dict[str, list[str]] | None = None, primary_keys: dict[str, Any] | None = None) -> Any:
    """A built-in schema cut down for the benchmark (tables, columns, groups), parsed like a user's YAML."""
    import yaml

    from data_schemas.io import load_schema, parse_schema, schema_to_yaml

    spec = yaml.safe_load(schema_to_yaml(load_schema(name)))
    spec["name"] = f"{name}_bench"
    if tables is not None:
        spec["tables"] = {t: spec["tables"][t] for t in tables}
    for table, cols in (drop_columns or {}).items():
        for col in cols:
            if col in spec["tables"][table]["columns"]:  # kept as a plain id (fresh values), no longer a key
                spec["tables"][table]["columns"][col] = {"type": "id"}
    for table, groups in (drop_groups or {}).items():
        for group in groups:
            spec["tables"][table].get("groups", {}).pop(group, None)
    for table, key in (primary_keys or {}).items():
        spec["tables"][table]["primary_key"] = key
    for table in spec["tables"].values():
        table.pop("files", None)
    return parse_schema(yaml.safe_dump(spec, sort_keys=False), source=f"<bench_cohorts: {name} reduced>")


def schema_of(dataset: str) -> Any:
    if dataset == "demo":
        return _reduced("kr_claims", {"patients": None, "claims": None})
    if dataset == "desynpuf":
        return _reduced("cms_desynpuf", drop_groups={"inpatient_claims": ["hcpcs_codes"]},
                        primary_keys={"beneficiary_summary": ["DESYNPUF_ID"]})
    refs = {t: ["ORGANIZATION", "PROVIDER", "PAYER"] for t in SYNTHEA_TABLES}  # keys to reference tables: plain ids
    return _reduced("synthea", {t: None for t in SYNTHEA_TABLES}, drop_columns=refs)


def prepare(dataset: str, work: Path) -> dict[str, Any]:
    """Write train/ and holdout/ of a population under ``work/<dataset>``; returns sizes."""
    import yaml  # noqa: F401

    from data_schemas.io import load_schema, schema_to_yaml
    from synth.load import connect, frames_to_dataset, load_dataset
    from synth.split import split_patients

    folder = work / dataset
    schema = schema_of(dataset)
    (folder).mkdir(parents=True, exist_ok=True)
    (folder / "schema.yaml").write_text(schema_to_yaml(schema))
    if dataset == "demo":
        from synth.demo_population import simulate

        sim = simulate(5000, seed=0)
        frames = {t: sim[t] for t in schema.tables}
        holdout = 0.4
    elif dataset == "desynpuf":
        source = SHARED / "desynpuf" / "1-sample-10000"  # read only: nothing is ever written beside the shared data
        full = load_dataset(load_schema("cms_desynpuf"), source, con=connect(read_dirs=[source]), namespace="raw")
        rel = full.relations()
        frames = {
            "beneficiary_summary": full.con.sql(f"SELECT * FROM {rel['beneficiary_summary']} WHERE BENE_YEAR = 2008").to_arrow_table(),
            "inpatient_claims": full.con.sql(f"SELECT * FROM {rel['inpatient_claims']}").to_arrow_table(),
        }
        frames = {t: f.select([c for c in f.column_names if c in schema.tables[t].columns]) for t, f in frames.items()}
        holdout = 0.2
    else:
        source = SHARED / "synthea" / "ma_112p_2025"
        full = load_dataset(schema, source, con=connect(read_dirs=[source]), namespace="raw")
        rel = full.relations()
        frames = {}
        for t in SYNTHEA_TABLES:
            keep = ", ".join(f'"{c}"' for c in schema.tables[t].columns)
            frames[t] = full.con.sql(f"SELECT {keep} FROM {rel[t]}").to_arrow_table()
        holdout = 0.1  # mostlyai-qa scores no fewer than 90 training patients
    data, report = frames_to_dataset(schema, frames, namespace="real")
    if not report.ok:
        raise SystemExit(report.render())
    train, hold, record = split_patients(data, seed=0, holdout_fraction=holdout)
    assert SHARED not in folder.parents, "the benchmark never writes into ../shared"
    train.write(folder / "train")
    hold.write(folder / "holdout")
    with_rows = _patients_with_rows(schema, folder / "train")
    info = {"n_train": record.n_train, "n_holdout": record.n_holdout, "train_rows": train.row_counts(),
            "train_patients_with_rows": with_rows, "n_sample": sample_size(record.n_train, with_rows)}
    (folder / "info.json").write_text(json.dumps(info))
    return info


def _patients_with_rows(schema: Any, train: Path) -> dict[str, int]:
    """How many training patients have at least one row in each event table."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = {}
    for name in schema.tables:
        key = schema.patient_column_of(name)
        if name != schema.patient.table and key is not None:
            out[name] = len(pc.unique(pq.read_table(train / f"{name}.parquet", columns=[key]).column(key).drop_null()))
    return out


def sample_size(n_train: int, patients_with_rows: dict[str, int]) -> int:
    """Patients to sample: as many as train holds, and enough that every event table, at the share of training
    patients with rows in it, is expected to reach mostlyai-qa's minimum of synthetic patients with 15% to spare."""
    import math

    shares = [k / n_train for k in patients_with_rows.values() if k > 0 and n_train > 0]
    return max(n_train, math.ceil(QA_MIN_SYNTHETIC * QA_SPARE / min(shares))) if shares else n_train


def _n_sample(folder: Path) -> int:
    info = json.loads((folder / "info.json").read_text())
    return info.get("n_sample", info["n_train"])


# ----------------------------------------------------------------------------------------- our generators


def child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one of our generators on train/ and write its sample (runs in a fresh interpreter)."""
    from data_schemas.io import load_schema_file
    from synth.generators import get_generator
    from synth.load import load_dataset
    from synth.pipeline import guard_skip_reason
    from synth.spool import write_cohort
    from synth.uniques import UniquesGuard, not_applied

    folder = Path(spec["folder"])
    schema = load_schema_file(folder / "schema.yaml")
    train = load_dataset(schema, folder / "train", namespace="train")
    n = _n_sample(folder)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    generator = get_generator(spec["generator"], **spec.get("params", {}))
    t = time.perf_counter()
    generator.fit(train, progress=say)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    # as synth.pipeline.release: the guard on every sampled batch unless it never runs for this generator
    skip = guard_skip_reason(generator)
    guard = None if skip else UniquesGuard(train, progress=say)
    batches = generator.sample_batches(n, seed=0, progress=say)
    written = write_cohort(schema, batches if guard is None else map(guard.apply, batches), Path(spec["out"]), progress=say)
    uniques = not_applied(skip) if guard is None else guard.finish()
    sample_s = time.perf_counter() - t
    report = generator.last_sample_report_.to_dict() if generator.last_sample_report_ else {}
    return {"fit_s": fit_s, "sample_s": sample_s, "rows": written.rows, "sample_report": report,
            "replicated_uniques": uniques.to_dict()}


def run_ours(folder: Path, name: str, params: dict[str, Any], out: Path, timeout: float) -> dict[str, Any]:
    spec = {"folder": str(folder), "generator": name, "params": params, "out": str(out)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    return _run(cmd, timeout)


def _run(cmd: list[str], timeout: float) -> dict[str, Any]:
    """A whole process, timed; its last JSON line, or {'error': ...}."""
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": timeout}
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-4:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}", "wall_s": wall}
    return {**json.loads(lines[-1]), "wall_s": wall}


# ----------------------------------------------------------------------------------------- the peer


def peer_spec(schema: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The patient table and the event tables as the engine (and mostlyai-qa) see them: columns a generator may see."""
    def attrs(table: str) -> list[str]:
        return [c.name for c in schema.tables[table].columns.values() if c.type != "id" and c.privacy != "direct_identifier"]

    subject = {"table": schema.patient.table, "key": schema.patient.column, "columns": attrs(schema.patient.table)}
    sequences = []
    for name in schema.topological_order():
        if name == schema.patient.table:
            continue
        key = schema.patient_column_of(name)
        if key is None:
            continue
        sequences.append({"table": name, "context_key": key, "columns": attrs(name)})
    return subject, sequences


def run_peer(folder: Path, out: Path, minutes: float, timeout: float) -> dict[str, Any]:
    from data_schemas.io import load_schema_file

    if not PEER_PY.exists():
        return {"error": ".venv-mostly missing (scripts/install --bench makes it)"}
    schema = load_schema_file(folder / "schema.yaml")
    subject, sequences = peer_spec(schema)
    n = _n_sample(folder)
    raw = out.parent / (out.name + "-raw")
    spec = {"train_dir": str(folder / "train"), "out_dir": str(raw), "subject": subject, "sequences": sequences,
            "minutes": minutes, "n": n, "seed": 0}
    spec_path = out.parent / (out.name + "-spec.json")
    spec_path.write_text(json.dumps(spec))
    result = _run([str(PEER_PY), str(REPO / "benchmarks" / "peer_mostly.py"), str(spec_path)], timeout)
    if "error" not in result:
        t = time.perf_counter()
        _peer_to_schema(schema, raw, out)
        result["wall_s"] += time.perf_counter() - t
    return result


def _peer_to_schema(schema: Any, raw: Path, out: Path) -> None:
    """The peer's tables in our schema's shape: ids in our format, encounter keys by date, identifiers empty."""
    import numpy as np
    import pandas as pd

    from synth.load import frames_to_dataset

    frames = {t: pd.read_parquet(raw / f"{t}.parquet") for t in schema.tables}
    for name, table in schema.tables.items():
        frame = frames[name]
        for col in table.columns.values():
            if col.name in frame:
                continue
            if col.type == "id" and col.foreign_key is None:
                frame[col.name] = [f"{name[:3].upper()}{i:09d}" for i in range(len(frame))]
            else:
                frame[col.name] = None
        frames[name] = frame
    if "encounters" in frames:
        enc = frames["encounters"][["PATIENT", "Id", "START"]].copy()
        enc["d"] = pd.to_datetime(enc["START"], errors="coerce").astype("datetime64[ns]")
        enc = enc.dropna(subset=["d"]).sort_values("d")
        for name, table in schema.tables.items():
            if "ENCOUNTER" not in table.columns or name == "encounters":
                continue
            frame = frames[name]
            date = table.order_by or "START"
            left = frame.assign(d=pd.to_datetime(frame[date], errors="coerce").astype("datetime64[ns]"), i=np.arange(len(frame)))
            left = left.dropna(subset=["d"]).sort_values("d")
            matched = pd.merge_asof(left[["i", "d", "PATIENT"]], enc[["PATIENT", "Id", "d"]], on="d", by="PATIENT", direction="backward")
            fwd = pd.merge_asof(left[["i", "d", "PATIENT"]], enc[["PATIENT", "Id", "d"]], on="d", by="PATIENT", direction="forward")
            ids = matched.set_index("i")["Id"].fillna(fwd.set_index("i")["Id"])
            frame["ENCOUNTER"] = ids.reindex(np.arange(len(frame))).to_numpy()
    dataset, _report = frames_to_dataset(schema, frames, namespace="peer")  # findings stay: the judges count them
    dataset.write(out)


# ----------------------------------------------------------------------------------------- judges


def judge_synthmed(folder: Path, synthetic: Path, dataset: str) -> dict[str, Any]:
    """``synthmed evaluate`` in folder mode: every metric's value, the overall fidelity and the risk level."""
    from data_schemas.io import load_schema_file
    from evaluate.context import EvalOptions
    from synthmed.evaluation import evaluate_folders

    schema = load_schema_file(folder / "schema.yaml")
    options = EvalOptions(seed=0, target=TARGETS[dataset], params={"privacy.mia_shadow": {"n_shadow_models": 0}})
    try:
        outcome = evaluate_folders(schema, folder / "train", synthetic, folder / "holdout", options=options)
    except Exception as exc:  # noqa: BLE001  (a benchmark reports a failed evaluation and goes on)
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    values = {r.name: r.value for r in outcome.evaluation.results}
    return {"metrics": values, "fidelity": outcome.fidelity, "risk": outcome.risk_level,
            "reasons": list(outcome.verdict.reasons[:4])}


def judge_qa(folder: Path, synthetic: Path, timeout: float) -> dict[str, Any]:
    from data_schemas.io import load_schema_file

    if not PEER_PY.exists():
        return {"error": ".venv-mostly missing (scripts/install --bench makes it)"}
    schema = load_schema_file(folder / "schema.yaml")
    subject, sequences = peer_spec(schema)
    spec = {"train_dir": str(folder / "train"), "holdout_dir": str(folder / "holdout"), "synthetic_dir": str(synthetic),
            "key": subject["key"], "context_table": subject["table"], "context_columns": subject["columns"],
            "targets": sequences}
    spec_path = synthetic.parent / (synthetic.name + "-qa.json")
    spec_path.write_text(json.dumps(spec))
    return _run([str(PEER_PY), str(REPO / "benchmarks" / "peer_qa.py"), str(spec_path)], timeout)


# ----------------------------------------------------------------------------------------- report


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:,.{digits}f}" if isinstance(v, float) else str(v)


def table(records: list[dict[str, Any]]) -> str:
    header = ["dataset", "generator", "fit + sample (s)", *(c[0] for c in COLUMNS), "mostlyai-qa accuracy", "risk"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rec in records:
        ev = rec.get("synthmed", {})
        metrics = {**ev.get("metrics", {}), "fidelity": ev.get("fidelity")}
        cells = [rec["dataset"], rec["label"], _fmt(rec["run"].get("wall_s"), 0)]
        cells += [_fmt(metrics.get(key)) for _, key in COLUMNS]
        cells += [qa_cell(rec.get("qa", {})), ev.get("risk", "-")]
        if "error" in rec["run"]:
            cells[2] = "failed: " + rec["run"]["error"][:80]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def qa_cell(qa: dict[str, Any]) -> str:
    """The mean accuracy over the event tables qa scored, with how many it scored where it declined some."""
    if "error" in qa:
        return "failed"
    scored, declined = len(qa.get("accuracy", {})), len(qa.get("not_judged", {}))
    if not scored:
        return "not judged" if declined else "-"
    return _fmt(qa.get("mean")) + (f" ({scored} of {scored + declined} tables)" if declined else "")


PLOT_KEYS = (("fidelity", "fidelity"), ("detection.gbt", "fidelity.detection.gbt"), ("event gaps", "fidelity.event_gaps"),
             ("children/parent", "fidelity.children_per_parent"), ("qa accuracy", None))
COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")


def svg(records: list[dict[str, Any]]) -> str:
    """Fidelity, detection, event gaps, children per parent and qa accuracy per dataset and generator (hand-written SVG)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    w, h, top = 420, 220, 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w * len(datasets)}' height='{h + 130}' font-family='sans-serif' font-size='11'>"]
    for d, ds in enumerate(datasets):
        x0 = d * w + 40
        recs = [r for r in records if r["dataset"] == ds]
        parts.append(f"<text x='{x0}' y='18' font-weight='bold'>{ds}</text>")
        parts.append(f"<line x1='{x0}' y1='{top + h}' x2='{x0 + w - 60}' y2='{top + h}' stroke='black'/>")
        for tick in (0.0, 0.5, 1.0):
            y = top + h - tick * h
            parts.append(f"<text x='{x0 - 28}' y='{y + 4}'>{tick:.1f}</text>")
        group = (w - 60) / len(PLOT_KEYS)
        bar = (group - 8) / max(len(recs), 1)
        for i, (label, key) in enumerate(PLOT_KEYS):
            gx = x0 + i * group
            parts.append(f"<text x='{gx + 2}' y='{top + h + 14}' font-size='9'>{label}</text>")
            for j, rec in enumerate(recs):
                ev = rec.get("synthmed", {})
                metrics = {**ev.get("metrics", {}), "fidelity": ev.get("fidelity")}
                v = rec.get("qa", {}).get("mean") if key is None else metrics.get(key)
                v = 0.0 if v is None or v != v else max(0.0, min(1.0, float(v)))
                parts.append(f"<rect x='{gx + j * bar:.1f}' y='{top + h - v * h:.1f}' width='{bar - 1:.1f}' height='{v * h:.1f}' "
                             f"fill='{COLOURS[j % len(COLOURS)]}'/>")
        for j, rec in enumerate(recs):
            y = top + h + 32 + j * 14
            wall = _fmt(rec["run"].get("wall_s"), 0)
            parts.append(f"<rect x='{x0}' y='{y - 9}' width='10' height='10' fill='{COLOURS[j % len(COLOURS)]}'/>")
            parts.append(f"<text x='{x0 + 14}' y='{y}'>{rec['label']} ({wall} s)</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def generator_specs(text: str) -> list[str]:
    """``name[:json]`` specs split on the commas outside the JSON (``cart,cart:{"min_patients":5,"rare_values":"resample"}``)."""
    specs, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            specs.append(text[start:i].strip())
            start = i + 1
    return [s for s in specs if s]


def merged(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old``'s rows in their order, each replaced by the ``new`` row of the same dataset and label; new ones appended."""
    fresh = {(r["dataset"], r["label"]): r for r in new}
    out = [fresh.pop((r["dataset"], r["label"]), r) for r in old]
    return out + list(fresh.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--generators", default="cart,gaussian_copula",
                        help='our registered generators, comma-separated, each with optional JSON parameters: cart:{"min_patients":5}')
    parser.add_argument("--no-peer", action="store_true", help="leave the peer out")
    parser.add_argument("--peer-minutes", type=float, default=6.0, help="the peer's total training time cap (minutes)")
    parser.add_argument("--no-qa", action="store_true", help="leave the mostlyai-qa judge out")
    parser.add_argument("--work", default="/tmp/synthmed-bench-cohorts", help="where data and samples are written")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--out", default=str(RESULTS / "cohorts"), help="results prefix (.json, .md, .svg)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of the existing <out>.json that this run does not redo (same dataset and label)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_ours(json.loads(args.child))))
        return 0
    work = Path(args.work)
    print(f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}", flush=True)
    records: list[dict[str, Any]] = []
    for ds in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if ds != "demo" and not SHARED.is_dir():
            print(f"skipping {ds}: {SHARED} not found", flush=True)
            continue
        info = prepare(ds, work)
        print(f"[{ds}] {info['n_train']:,} training patients, {info['n_holdout']:,} holdout, {info['n_sample']:,} sampled; "
              f"rows {info['train_rows']}", flush=True)
        cases: list[tuple[str, str, dict[str, Any]]] = []
        for spec in generator_specs(args.generators):
            name, _, raw = spec.partition(":")
            cases.append((spec, name, json.loads(raw) if raw else {}))
        if not args.no_peer:
            cases.append(("peer", "peer", {}))
        for label, name, params in cases:
            out = work / ds / f"syn-{label.replace(':', '_').replace('/', '_')[:40]}"
            print(f"[{ds}] {label}: fit + sample ...", flush=True)
            if name == "peer":
                run = run_peer(work / ds, out, args.peer_minutes, args.timeout)
                label = f"MOSTLY AI engine ({args.peer_minutes:g} min cap)"
            else:
                run = run_ours(work / ds, name, params, out, args.timeout)
            made = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            rec: dict[str, Any] = {"dataset": ds, "label": label, "made_at": made, "run": run}
            if "error" not in run:
                print(f"[{ds}] {label}: {run['wall_s']:.0f} s; judging ...", flush=True)
                rec["synthmed"] = judge_synthmed(work / ds, out, ds)
                if not args.no_qa:
                    rec["qa"] = judge_qa(work / ds, out, args.timeout)
            else:
                print(f"[{ds}] {label}: {run['error']}", flush=True)
            records.append(rec)
            print(table([rec]).splitlines()[-1], flush=True)
    prefix = Path(args.out)
    if args.merge and Path(f"{prefix}.json").is_file():
        records = merged(json.loads(Path(f"{prefix}.json").read_text()), records)
    md = table(records)
    print("\n" + md)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.json").write_text(json.dumps(records, indent=2, default=str))
    Path(f"{prefix}.md").write_text(md + "\n")
    Path(f"{prefix}.svg").write_text(svg(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
