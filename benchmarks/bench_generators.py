"""Generator benchmark: fit + sample time and peak memory of our generators on the simulated demo population,
beside SDV driven directly on the same tables, and the hierarchical generator beside SDV's HMASynthesizer.

    .venv/bin/python benchmarks/bench_generators.py                          # quick: 1k patients (a few minutes)
    .venv/bin/python benchmarks/bench_generators.py --sizes 1000,10000
    .venv/bin/python benchmarks/bench_generators.py --sizes 100000 --generators gaussian_copula --no-hma
    .venv/bin/python benchmarks/bench_generators.py --overhead-schema kr_claims   # all five tables, not one
    .venv/bin/python benchmarks/bench_generators.py --generators ctgan,tvae --sizes 1000   # neural: slow on CPU

Data: ``simulate(size, seed)`` (kr_claims: patients, claims, claim_details, diagnoses, prescriptions), loaded
and checked against the schema, split 80 / 20 by patient; every model sees the train side only and samples
as many patients as train holds.

1. Overhead over SDV, by default on one table (``patients`` of kr_claims, ``--overhead-schema single``):
   what wrapping an SDV synthesizer costs, the < 10% target. ``--overhead-schema kr_claims`` runs the
   five tables instead, where ours also links the tables and SDV alone does not (not a like-for-like
   ratio). ``ours``: ``get_generator(name).fit(train).sample(n_train, seed=0)``, the whole path
   a release takes (training frames from DuckDB, one engine model per table with child counts and parent
   context, reject sampling and repair of rule violations, synthetic ids, validation of the cohort).
   ``SDV``: the same engine (``GaussianCopulaSynthesizer``, ``CTGANSynthesizer``, ``TVAESynthesizer``, with
   our engine defaults) fitted directly on each table's training frame (the same columns: direct
   identifiers out, ids as integers) and sampling the same number of rows per table as ours produced.
   SDV alone gives no links between tables and no rule guarantees, so the ratio is the price of those.
   On tables with dates SDV's own fit is dominated by its per-value check of datetime columns
   (``Metadata.validate_data``), which ours skips by giving the engine day numbers; the like-for-like
   measure of what our wrapper adds is "beyond engine" in the breakdown (everything but the SDV calls
   inside our run, and its share of them).
   ``independent`` and ``copy`` have no SDV counterpart. Our time is also split by where it goes
   (monkeypatched timers, this process only): training frames, engine fit, engine sample (rows drawn
   against rows returned), rule checks, validation and the rest of our code.
2. Multi-table. On kr_claims reduced to patients and claims (single-column keys, two levels, built with
   ``parse_schema``; SDV 2's HMA refuses a depth over 2, so claims' children are left out): our ``gaussian_copula`` (hierarchical) beside SDV's ``HMASynthesizer`` on the same
   training frames: time, peak memory and, when the ``evaluate`` package runs, fidelity metrics of both
   samples against train (``evaluate.runner.run_metrics``; HMA's sample is loaded as it comes, its rule
   violations count as findings), then the ratios hierarchical / HMA (time, memory) and the differences
   hierarchical - HMA (fidelity).

Times are wall-clock seconds; ``CPU ours / SDV`` is the same ratio in CPU seconds of the child process (all
threads), which another process on a shared machine disturbs far less. ``--repeat N`` runs every overhead
case N times, ours and SDV alternating, and shows the fastest run of each.

Every case runs in a fresh subprocess (heavy imports done before the clock starts); its peak resident
memory is the child's ``getrusage(RUSAGE_SELF).ru_maxrss`` when it finishes sampling, which is what the
parent would read as ``RUSAGE_CHILDREN`` for that child alone. ``data MB`` is the peak before fitting
(interpreter, libraries, simulated data in DuckDB), so ``peak - data`` is what fitting and sampling add.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SIZES = "1000"
DEFAULT_GENERATORS = "gaussian_copula,independent,copy"
DEFAULT_HMA_SIZES = "500"
SDV_CLASSES = {"gaussian_copula": "GaussianCopulaSynthesizer", "ctgan": "CTGANSynthesizer", "tvae": "TVAESynthesizer"}
# SDV 2's HMASynthesizer refuses more than 5 tables or a depth over 2 ("Please use SDV Enterprise"), so
# patients -> claims -> prescriptions is out of its reach: the comparison runs on patients -> claims.
HMA_TABLES = ("patients", "claims")
FIDELITY = (
    "fidelity.column_shapes",
    "fidelity.column_pair_trends",
    "fidelity.children_per_parent",
    "fidelity.event_gaps",
    "fidelity.referential_integrity",
    "fidelity.rule_violations",
)
FIDELITY_LABELS = ("shapes", "pair trends", "children/parent", "event gaps", "ref. integrity", "rule violations")
SINGLE_TABLES = ("patients",)
OVERHEAD_SCHEMAS = ("single", "kr_claims")
HOLDOUT = 0.2
ROOT_TABLE = "patients"


def _maxrss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Clock:
    """Accumulates wall-clock and CPU seconds (``time.process_time``: every thread of this process) per phase.

    CPU seconds are reported beside wall seconds because the benchmark machine may be shared: another
    process's load stretches wall time far more than the CPU time this process needs.
    """

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)

    def phase(self, name: str) -> Any:
        clock = self

        class _Phase:
            def __enter__(self) -> None:
                self.wall, self.cpu = time.perf_counter(), time.process_time()

            def __exit__(self, *exc: object) -> None:
                clock.times[f"{name}_s"] += time.perf_counter() - self.wall
                clock.times[f"{name}_cpu_s"] += time.process_time() - self.cpu

        return _Phase()


# ----------------------------------------------------------------------------------------- child side


def reduced_schema(tables: tuple[str, ...] = HMA_TABLES, name: str = "kr_claims_hma") -> Any:
    """kr_claims with only some tables (patients and claims: two levels, single-column keys, within HMA's limits)."""
    import yaml

    from data_schemas.io import load_schema, parse_schema, schema_to_yaml

    spec = yaml.safe_load(schema_to_yaml(load_schema("kr_claims")))
    spec["name"] = name
    spec["tables"] = {t: spec["tables"][t] for t in tables}
    return parse_schema(yaml.safe_dump(spec, sort_keys=False), source="<bench_generators: kr_claims reduced>")


def bench_schema(kind: str) -> Any:
    """The schema of a case: ``hma`` (patients + claims), ``single`` (patients) or the whole ``kr_claims``."""
    from data_schemas.io import load_schema

    if kind == "hma":
        return reduced_schema()
    if kind == "single":
        return reduced_schema(SINGLE_TABLES, "kr_claims_single")
    return load_schema("kr_claims")


class Timers:
    """Seconds (and rows returned) accumulated by wrapped functions, to show where our time goes.

    ``table`` is the table whose pool is being drawn (set around ``HierarchicalGenerator._valid_pool``), so
    engine rows are also counted per table; rows drawn outside a pool are the root table's.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self.rows_by_table: dict[str, int] = defaultdict(int)
        self.table: str | None = None

    def wrap(self, owner: Any, attr: str, label: str, *, count_rows: bool = False) -> None:
        fn = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
            if count_rows:
                self.rows[label] += len(out)
                self.rows_by_table[self.table or "(root)"] += len(out)
            return out

        setattr(owner, attr, timed)

    def track_table(self, owner: Any, attr: str) -> None:
        fn = getattr(owner, attr)

        def tracked(generator: Any, node: Any, *args: Any, **kwargs: Any) -> Any:
            self.table = node.name
            try:
                return fn(generator, node, *args, **kwargs)
            finally:
                self.table = None

        setattr(owner, attr, tracked)


def _install_timers() -> Timers:
    import synth.generators.base as base
    import synth.generators.hierarchical as hierarchical
    from synth.generators.engines import TableModel

    timers = Timers()
    timers.wrap(base, "training_data", "training frames")
    timers.wrap(TableModel, "fit", "engine fit")
    timers.wrap(TableModel, "sample", "engine sample", count_rows=True)
    timers.wrap(hierarchical, "local_rule_mask", "rule checks")
    timers.wrap(base, "_violations", "rule checks")
    timers.wrap(base, "frames_to_dataset", "validation")
    timers.track_table(hierarchical.HierarchicalGenerator, "_valid_pool")
    return timers


def _sdv_frame_metadata(schema: Any, table: str) -> Any:
    """SDV metadata of one table as it is in the training frames (pandas datetimes, integer ids)."""
    from sdv.metadata import Metadata

    from data_schemas.sdv_metadata import to_sdv_dict

    spec = to_sdv_dict(schema, tables=[table])
    for col in spec["tables"][table]["columns"].values():
        col.pop("datetime_format", None)
    return Metadata.load_from_dict(spec)


def _nanosecond_dates(frames: dict[str, Any]) -> dict[str, Any]:
    """Training frames with datetime64[ns] columns: DuckDB hands out datetime64[us], which SDV 2 / RDT 2 read as
    nanoseconds (every sampled date lands in January 1970); our engine sees day offsets and is unaffected."""
    out = {}
    for name, frame in frames.items():
        dates = frame.select_dtypes("datetime").columns
        out[name] = frame.astype({c: "datetime64[ns]" for c in dates}) if len(dates) else frame
    return out


def _sdv_single(schema: Any, train: Any, engine: str, rows: dict[str, int]) -> dict[str, Any]:
    """SDV's single-table synthesizer fitted on each training frame; the same rows per table as ours made."""
    import sdv.single_table

    from synth.generators.base import training_data
    from synth.generators.engines import ENGINE_DEFAULTS, _quiet

    frames = _nanosecond_dates(training_data(train).frames)  # outside the clock: ours times it
    cls = getattr(sdv.single_table, SDV_CLASSES[engine])
    clock = Clock()
    made: dict[str, int] = {}
    for table in schema.tables:
        synthesizer = cls(_sdv_frame_metadata(schema, table), **ENGINE_DEFAULTS[engine])
        with clock.phase("fit"), _quiet():
            synthesizer.fit({table: frames[table]})  # SDV 2 takes {table name: frame}, as our engine passes it
        with clock.phase("sample"), _quiet():
            sample = synthesizer.sample(num_rows=max(rows.get(table, 0), 1))
        if isinstance(sample, dict):
            sample = next(iter(sample.values()))
        made[table] = len(sample)
    return {**clock.times, "rows": made}


def _sdv_hma(schema: Any, train: Any, n_patients: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """SDV's HMASynthesizer on the whole (reduced) schema; returns timings and the sampled frames."""
    from sdv.metadata import Metadata
    from sdv.multi_table import HMASynthesizer

    from data_schemas.sdv_metadata import to_sdv_dict
    from synth.generators.base import training_data
    from synth.generators.engines import ENGINE_DEFAULTS, _quiet

    frames = _nanosecond_dates(training_data(train).frames)
    spec = to_sdv_dict(schema)
    for table in spec["tables"].values():
        for col in table["columns"].values():
            col.pop("datetime_format", None)
    synthesizer = HMASynthesizer(Metadata.load_from_dict(spec), verbose=False)
    for table in spec["tables"]:
        synthesizer.set_table_parameters(table, dict(ENGINE_DEFAULTS["gaussian_copula"]))
    clock = Clock()
    with clock.phase("fit"), _quiet():
        synthesizer.fit({t: frames[t] for t in spec["tables"]})
    synthesizer._numpy_seed = 0  # HMA's own seeded numpy state, as synth.generators.hma seeds it
    for i, table_synth in enumerate(synthesizer._table_synthesizers.values()):
        table_synth._set_random_state(i)
    with clock.phase("sample"), _quiet():
        sampled = synthesizer.sample(num_rows=n_patients, main_table_name=schema.patient.table)
    return {**clock.times, "rows": {t: len(f) for t, f in sampled.items()}}, sampled


def _fidelity(schema: Any, train: Any, holdout: Any, synthetic_frames: dict[str, Any]) -> dict[str, Any]:
    """Fidelity metrics of a sample against train (evaluate.runner), or the error that stopped them."""
    try:
        from evaluate.context import EvalContext, EvalOptions
        from evaluate.runner import run_metrics
        from synth.load import frames_to_dataset

        synthetic, report = frames_to_dataset(schema, synthetic_frames, con=train.con, namespace="synthetic")
        ctx = EvalContext(schema, train.con, train, synthetic, holdout, options=EvalOptions(seed=0))
        results = run_metrics(ctx, list(FIDELITY))
        values = {r.name: r.value for r in results.results}
        return {"metrics": values, "load_problems": sorted({p.kind for p in report.problems})}
    except Exception as exc:  # noqa: BLE001  (a benchmark reports any failure of a package being written)
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One case, in this fresh process: load data, fit, sample; returns timings, rows and peak memory."""
    warnings.simplefilter("ignore")
    import sdv.multi_table  # noqa: F401  (heavy imports outside the clock, for ours and SDV alike)
    import sdv.single_table  # noqa: F401

    from synth.demo_population import simulate
    from synth.load import frames_to_dataset
    from synth.split import split_patients

    schema = bench_schema(spec["schema"])
    simulated = simulate(spec["size"], seed=spec["seed"])
    dataset, report = frames_to_dataset(schema, {t: simulated[t] for t in schema.tables}, namespace="real")
    if not report.ok:
        raise SystemExit(report.render())
    del simulated
    train, holdout, record = split_patients(dataset, seed=0, holdout_fraction=HOLDOUT)
    out: dict[str, Any] = {"n_train": record.n_train, "train_rows": train.row_counts(), "data_mb": _maxrss_mb()}
    kind = spec["kind"]
    sampled: dict[str, Any] | None = None
    if kind == "ours":
        from synth.generators import get_generator

        generator = get_generator(spec["generator"], **spec.get("params", {}))
        timers = _install_timers()
        profiler = None
        if spec.get("profile"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        clock = Clock()
        with clock.phase("fit"):
            generator.fit(train)
        with clock.phase("sample"):
            synthetic = generator.sample(record.n_train, seed=0)
        out.update(clock.times)
        if profiler is not None:
            profiler.disable()
            _print_profile(profiler, spec["profile"])
        out["rows"] = synthetic.row_counts()
        out["breakdown"] = dict(timers.seconds)
        out["engine_rows_drawn"] = timers.rows.get("engine sample", 0)
        out["engine_rows_by_table"] = dict(timers.rows_by_table)
        if generator.last_sample_report_ is not None:
            out["sample_report"] = generator.last_sample_report_.to_dict()
        if spec.get("fidelity"):
            sampled = {t: synthetic.to_arrow(t) for t in schema.tables}
    elif kind == "sdv":
        out.update(_sdv_single(schema, train, spec["generator"], spec["rows"]))
    elif kind == "hma":
        result, sampled = _sdv_hma(schema, train, record.n_train)
        out.update(result)
    else:
        raise ValueError(f"unknown case kind {kind!r}")
    out["peak_mb"] = _maxrss_mb()
    if sampled is not None:
        out["fidelity"] = _fidelity(schema, train, holdout, sampled)
    return out


def _print_profile(profiler: Any, path: str) -> None:
    import pstats

    with open(path, "w") as fh:
        stats = pstats.Stats(profiler, stream=fh)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)


# ----------------------------------------------------------------------------------------- parent side


def run_case(spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its result, or {'error': ...} when it failed or timed out."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _total(result: dict[str, Any] | None, *, cpu: bool = False) -> float | None:
    if not result or "error" in result:
        return None
    suffix = "_cpu_s" if cpu else "_s"
    return result["fit" + suffix] + result["sample" + suffix]


def _ratio(ours: float | None, sdv: float | None) -> str:
    if ours is None or not sdv:
        return "-"
    r = ours / sdv
    return f"{r:.2f}x ({(r - 1) * 100:+.0f}%)"


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Of repeated runs of one case, the fastest (by wall-clock total); an error if every run failed."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return results[-1]
    best = dict(min(ok, key=lambda r: r["fit_s"] + r["sample_s"]))
    for key in ("fit_cpu_s", "sample_cpu_s"):
        best[key] = min(r[key] for r in ok)
    best["repeats"] = len(ok)
    return best


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def overhead(sizes: list[int], generators: list[str], *, seed: int, timeout: float, repeat: int,
             profile: str | None, schema: str = "single") -> list[dict[str, Any]]:
    """Ours beside SDV single-table for every size and generator; ours and SDV alternate over repeats."""
    records = []
    for size in sizes:
        for name in generators:
            spec = {"kind": "ours", "schema": schema, "size": size, "seed": seed, "generator": name}
            ours_runs: list[dict[str, Any]] = []
            sdv_runs: list[dict[str, Any]] = []
            for i in range(repeat):
                print(f"[{size:,} patients] {name}: ours (run {i + 1}/{repeat}) ...", file=sys.stderr, flush=True)
                ours_runs.append(run_case(spec, timeout=timeout))
                if name in SDV_CLASSES and "error" not in ours_runs[-1]:
                    print(f"[{size:,} patients] {name}: SDV {SDV_CLASSES[name]} per table (run {i + 1}/{repeat}) ...",
                          file=sys.stderr, flush=True)
                    sdv_runs.append(run_case({"kind": "sdv", "schema": schema, "size": size, "seed": seed,
                                              "generator": name, "rows": ours_runs[-1]["rows"]}, timeout=timeout))
            if profile and name == "gaussian_copula" and size == sizes[0]:
                print(f"[{size:,} patients] {name}: ours under cProfile -> {profile} ...", file=sys.stderr, flush=True)
                run_case({**spec, "profile": profile}, timeout=timeout)
            records.append({"size": size, "generator": name, "ours": _best(ours_runs),
                            "sdv": _best(sdv_runs) if sdv_runs else None})
    rows = []
    for rec in records:
        ours, sdv = rec["ours"], rec["sdv"]
        rows.append([
            f"{rec['size']:,}", rec["generator"],
            _fmt(ours.get("fit_s")), _fmt(ours.get("sample_s")), _fmt(_total(ours)),
            _fmt(sdv.get("fit_s")) if sdv else "-", _fmt(sdv.get("sample_s")) if sdv else "-", _fmt(_total(sdv)),
            _ratio(_total(ours), _total(sdv)), _ratio(_total(ours, cpu=True), _total(sdv, cpu=True)),
            _fmt(ours.get("peak_mb"), 0), _fmt(ours.get("data_mb"), 0), _fmt(sdv.get("peak_mb"), 0) if sdv else "-",
            ours.get("error", "") or (sdv or {}).get("error", ""),
        ])
    where = "one table (patients)" if schema == "single" else "the five kr_claims tables (ours links them, SDV does not)"
    print(f"\n## Fit + sample on {where}: ours vs SDV single-table (wall seconds, best of the repeats; MiB)")
    _print_table(["patients", "generator", "fit", "sample", "total", "SDV fit", "SDV sample", "SDV total",
                  "ours / SDV", "CPU ours / SDV", "peak MB", "data MB", "SDV peak MB", "error"], rows)
    breakdown_rows = []
    for rec in records:
        ours = rec["ours"]
        if "error" in ours or rec["generator"] not in SDV_CLASSES:
            continue
        parts = ours["breakdown"]
        total = ours["fit_s"] + ours["sample_s"]
        produced = sum(ours["rows"].values())
        engine = parts.get("engine fit", 0.0) + parts.get("engine sample", 0.0)
        breakdown_rows.append([
            f"{rec['size']:,}", rec["generator"],
            *(_fmt(parts.get(k, 0.0)) for k in ("training frames", "engine fit", "engine sample", "rule checks", "validation")),
            _fmt(total - sum(parts.values())),
            f"{total - engine:,.1f} ({(total - engine) / engine:.0%})" if engine else "-",
            f"{ours['engine_rows_drawn']:,} / {produced:,}",
        ])
    if breakdown_rows:
        print("\n## Where our time goes (wall seconds of the run above; 'beyond engine': everything but SDV's own"
              " fit and sample calls, and its share of them; engine rows drawn / rows in the cohort)")
        _print_table(["patients", "generator", "train frames", "engine fit", "engine sample", "rule checks",
                      "validation", "other", "beyond engine", "rows drawn / kept"], breakdown_rows)
        for rec in records:
            ours = rec["ours"]
            if "error" in ours or rec["generator"] not in SDV_CLASSES:
                continue
            drawn = dict(ours["engine_rows_by_table"])
            root = drawn.pop("(root)", 0)
            drawn = {ROOT_TABLE: drawn.get(ROOT_TABLE, 0) + root, **{t: n for t, n in drawn.items() if t != ROOT_TABLE}}
            per_table = ", ".join(f"{t} {n:,}/{ours['rows'].get(t, 0):,}" for t, n in drawn.items())
            print(f"  {rec['size']:,} {rec['generator']}: drawn/kept by table: {per_table}")
    return records


def hma_comparison(sizes: list[int], *, seed: int, timeout: float, par_epochs: int = 0) -> list[dict[str, Any]]:
    records = []
    for size in sizes:
        print(f"[{size:,} patients] hierarchical vs SDV HMA ...", file=sys.stderr, flush=True)
        ours = run_case({"kind": "ours", "schema": "hma", "size": size, "seed": seed, "generator": "gaussian_copula",
                         "fidelity": True}, timeout=timeout)
        hma = run_case({"kind": "hma", "schema": "hma", "size": size, "seed": seed, "fidelity": True}, timeout=timeout)
        record = {"size": size, "ours": ours, "hma": hma}
        if par_epochs:
            print(f"[{size:,} patients] par ({par_epochs} epochs) on the same tables ...", file=sys.stderr, flush=True)
            record["par"] = run_case({"kind": "ours", "schema": "hma", "size": size, "seed": seed, "generator": "par",
                                      "params": {"epochs": par_epochs}, "fidelity": True}, timeout=timeout)
        records.append(record)
    rows = []
    notes = set()
    for rec in records:
        models = [("hierarchical (gaussian_copula)", rec["ours"]), ("SDV HMASynthesizer", rec["hma"])]
        if "par" in rec:
            models.append(("par (claims as sequences)", rec["par"]))
        for label, res in models:
            fid = res.get("fidelity", {})
            metrics = fid.get("metrics", {})
            if "error" in fid:
                notes.add(f"fidelity not measured ({fid['error']}): time only")
            rows.append([
                f"{rec['size']:,}", label, _fmt(res.get("fit_s")), _fmt(res.get("sample_s")), _fmt(_total(res)),
                _fmt(res.get("peak_mb"), 0),
                *(_fmt(metrics.get(m), 3) for m in FIDELITY),
                res.get("error", ""),
            ])
        ours, hma = rec["ours"], rec["hma"]
        mo, mh = ours.get("fidelity", {}).get("metrics", {}), hma.get("fidelity", {}).get("metrics", {})
        rows.append([
            f"{rec['size']:,}", "hierarchical / HMA",
            _times(ours.get("fit_s"), hma.get("fit_s")), _times(ours.get("sample_s"), hma.get("sample_s")),
            _times(_total(ours), _total(hma)), _times(ours.get("peak_mb"), hma.get("peak_mb")),
            *(_diff(mo.get(m), mh.get(m)) for m in FIDELITY),
            "",
        ])
    print("\n## Multi-table: patients + claims (seconds, MiB; fidelity against train, higher is better"
          " except rule_violations; last row: time and memory as ratios, fidelity as differences)")
    _print_table(["patients", "model", "fit", "sample", "total", "peak MB", *FIDELITY_LABELS, "error"], rows)
    for note in sorted(notes):
        print(f"note: {note}")
    return records


def _times(ours: float | None, other: float | None) -> str:
    return "-" if ours is None or not other else f"{ours / other:.2f}x"


def _diff(ours: float | None, other: float | None) -> str:
    if ours is None or other is None or ours != ours or other != other:  # None or NaN
        return "-"
    return f"{ours - other:+.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"patients simulated, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument("--generators", default=DEFAULT_GENERATORS, help=f"registered generators (default {DEFAULT_GENERATORS})")
    parser.add_argument("--hma-sizes", default=DEFAULT_HMA_SIZES,
                        help=f"patients for the HMA comparison, comma-separated (default {DEFAULT_HMA_SIZES}: HMA is slow)")
    parser.add_argument("--no-hma", action="store_true", help="skip the HMA comparison")
    parser.add_argument("--par-epochs", type=int, default=0,
                        help="also run 'par' with this many epochs in the multi-table comparison (default 0: no)")
    parser.add_argument("--overhead-schema", choices=OVERHEAD_SCHEMAS, default="single",
                        help="tables of the overhead comparison: 'single' (patients, the like-for-like case; default) "
                        "or 'kr_claims' (all five)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated population")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per case")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each overhead case; the fastest is shown")
    parser.add_argument("--profile", metavar="FILE", help="cProfile ours (gaussian_copula, first size) into FILE")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    bad = [s for s in sizes if s < 20]
    if bad:
        parser.error(f"--sizes must be at least 20 patients each; got {bad}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, seed {args.seed}, holdout {HOLDOUT:.0%}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    report: dict[str, Any] = {"cores": os.cpu_count(), "load_start": os.getloadavg()[0]}
    report["overhead"] = overhead(sizes, generators, seed=args.seed, timeout=args.timeout, repeat=args.repeat,
                                  profile=args.profile, schema=args.overhead_schema)
    if not args.no_hma:
        hma_sizes = [int(s) for s in args.hma_sizes.split(",") if s.strip()]
        report["hma"] = hma_comparison(hma_sizes, seed=args.seed, timeout=args.timeout, par_epochs=args.par_epochs)
    print(f"\nwall time {time.perf_counter() - started:,.0f} s, load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
