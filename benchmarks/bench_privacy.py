"""Privacy evaluator benchmark: whole processes as users run them, against scikit-learn and Anonymeter.

    flock /tmp/synthmed-heavy.lock .venv/bin/python benchmarks/bench_privacy.py --out benchmarks/results/privacy_speed.json
    .venv/bin/python benchmarks/bench_privacy.py --rows 20000 --skip-sklearn                # a quicker look

Data: the 16-column claims table of real DE-SynPUF inpatient claims joined to beneficiaries
(``../shared/bench/make-claims-table.py``): ``real/`` from samples 1-5, ``synthetic/`` from 6-10, ``holdout/``
from 12-16, ``--rows`` rows each; the copy with ``--record-id`` (one record per row) for synthmed, whose schema
is drafted with ``synthmed schemas infer``.

Each contender is a whole process, timed from its start to its exit (``/usr/bin/time``: wall seconds and
peak resident memory), which is what a user waits for: start-up, imports, reading and checking the data,
the work:

1. DCR: ``synthmed evaluate --metrics privacy.dcr --max-rows N`` (every synthetic record against every train
   and holdout record, with the near-copy share and the share's reference spread) against
   ``peer_sklearn_dcr.py`` (scikit-learn's exact ``NearestNeighbors``, synthetic to train and to holdout).
2. Anonymeter-style attacks: ``synthmed evaluate --metrics privacy.singling_out,privacy.linkability,
   privacy.attribute_inference`` (500 attacks each, the defaults) against ``peer_anonymeter.py`` (anonymeter
   1.x, 500 attacks each; it runs from ``.venv-anonymeter``, as anonymeter pins numpy < 1.27).

Both ratios are printed: whole process, and in-process (the work alone: the peers print their own timers;
ours is ``run_metrics`` timed in a child process after its imports and the loading of the data). With
``--repeat N`` every contender runs N times and the median wall time counts (the machine is shared);
``--out`` writes the figures, results and the peers' own output as JSON.

``agreement_check`` (used by ``tests/integration/test_privacy_calibration.py``) compares our three
Anonymeter-style risks with Anonymeter's on the simulated demo population, on the same frames.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ANONYMETER_VENV = REPO / ".venv-anonymeter"
SECRET = "claims.main_dx.mode"

# The Anonymeter side, run with the interpreter of .venv-anonymeter on Parquet files written here.
ANONYMETER_SCRIPT = r'''
import json, resource, sys, time, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator
work, params = sys.argv[1], json.loads(sys.argv[2])
ori, syn, ctrl = (pd.read_parquet(f"{work}/{name}.parquet") for name in ("ori", "syn", "control"))
np.random.seed(params["seed"])  # Anonymeter's linkability and inference sample targets with the global state
out, n = {}, params["n_attacks"]
def record(name, ev, t0, **kw):
    risk, res = ev.risk(**kw), ev.results(**kw)
    out[name] = {"risk": risk.value, "ci": list(risk.ci), "seconds": time.perf_counter() - t0,
                 "attack_rate": res.attack_rate.value, "baseline_rate": res.baseline_rate.value,
                 "control_rate": None if res.control_rate is None else res.control_rate.value}
if "singling_out" in params["attacks"]:
    t0 = time.perf_counter()
    ev = SinglingOutEvaluator(ori=ori, syn=syn, control=ctrl, n_attacks=n, n_cols=params["n_cols"],
                              max_attempts=params["max_attempts"], seed=params["seed"]).evaluate(mode="multivariate")
    record("singling_out", ev, t0)
if "linkability" in params["attacks"]:
    t0 = time.perf_counter()
    ev = LinkabilityEvaluator(ori=ori, syn=syn, control=ctrl, n_attacks=n, aux_cols=tuple(params["aux_cols"]),
                              n_neighbors=1).evaluate(n_jobs=params["n_jobs"])
    record("linkability", ev, t0)
if "inference" in params["attacks"]:
    t0 = time.perf_counter()
    ev = InferenceEvaluator(ori=ori, syn=syn, control=ctrl, aux_cols=params["inference_aux"], secret=params["secret"],
                            n_attacks=n).evaluate(n_jobs=params["n_jobs"])
    record("inference", ev, t0)
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["peak_rss_mb"] = _peak()
print(json.dumps(out))
'''


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (reset by exec, unlike ru_maxrss, which a child
    inherits from the process that started it), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- environments --------------------------------------------------------------------------------------------


def anonymeter_python() -> Path | None:
    """The interpreter of the Anonymeter environment, or None when it is not there."""
    exe = ANONYMETER_VENV / "bin" / "python"
    if not exe.exists():
        return None
    ok = subprocess.run([str(exe), "-c", "import anonymeter"], capture_output=True, timeout=300)
    return exe if ok.returncode == 0 else None


def ensure_anonymeter() -> Path:
    """Create ``.venv-anonymeter`` with anonymeter and numpy < 1.27 when missing; its interpreter."""
    exe = anonymeter_python()
    if exe is not None:
        return exe
    print(f"creating {ANONYMETER_VENV} (python3 -m venv; pip install anonymeter 'numpy<1.27') ...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(ANONYMETER_VENV)], check=True)
    pip = ANONYMETER_VENV / "bin" / "pip"
    got = subprocess.run([str(pip), "install", "-q", "anonymeter", "numpy<1.27"], capture_output=True, text=True)
    if got.returncode != 0:
        raise RuntimeError(f"anonymeter could not be installed:\n{got.stdout}\n{got.stderr}")
    exe = anonymeter_python()
    if exe is None:
        raise RuntimeError("anonymeter was installed but does not import")
    return exe


# -- data -----------------------------------------------------------------------------------------------------


def part(frames: dict, lo: int, hi: int) -> dict:
    """Patients lo..hi of a kr_claims population with all their rows (``synth.demo_population.patient_slice``)."""
    from synth.demo_population import patient_slice

    return patient_slice(frames, lo, hi)


def population_datasets(n: int, seed: int = 11, population: Any = None) -> dict[str, Any]:
    """train / holdout / fresh datasets of n patients each (one DuckDB connection, tables loaded as they are)."""
    from data_schemas.io import load_schema
    from data_schemas.rules import quote
    from synth.load import Dataset, connect

    schema = load_schema("kr_claims")
    if population is None:
        from synth.demo_population import simulate

        population = simulate(3 * n, seed=seed)
    con = connect()
    out = {}
    for i, ns in enumerate(("train", "holdout", "fresh")):
        con.execute(f"CREATE SCHEMA {quote(ns)}")
        for name, table in part(population, i * n, (i + 1) * n).items():
            con.register("__t", table)
            con.execute(f"CREATE TABLE {quote(ns)}.{quote(name)} AS SELECT * FROM __t")
            con.unregister("__t")
        out[ns] = Dataset(schema, con, ns, source="simulated")
    return out


def build_inputs(data: dict[str, Any], *, max_rows: int, seed: int):
    """Records and encodings: train, holdout and the fresh part (as the synthetic side), all patients."""
    from evaluate.privacy.inputs import compute_inputs

    return compute_inputs(data["train"], data["holdout"], data["fresh"], seed=seed, max_rows=max_rows)


def attack_pandas(inputs: Any, *, seed: int, copy_share: float = 0.5) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(ori, syn, control) pandas frames of the attack columns, columns renamed c0..; syn = copies + fresh rows."""
    import numpy as np
    import pandas as pd

    from evaluate.privacy.attack_data import attack_features

    feats = attack_features(inputs)
    names = {f.name: f"c{i}" for i, f in enumerate(feats)}

    def frame(records: Any) -> pd.DataFrame:
        cols = {}
        for f in feats:
            v = records.columns[f.name]
            if f.kind == "numeric":
                cols[names[f.name]] = np.where(np.isnan(v), -1.0, v)  # same sentinel for both tools
            else:
                cols[names[f.name]] = pd.array([("<NA>" if x is None else str(x)) for x in v], dtype=object)
        return pd.DataFrame(cols)

    ori, control, fresh = frame(inputs.train), frame(inputs.holdout), frame(inputs.synthetic)
    rng = np.random.default_rng(seed)
    n_copy = int(round(copy_share * len(fresh)))
    syn = pd.concat([ori.iloc[rng.choice(len(ori), n_copy, replace=False)], fresh.iloc[: len(fresh) - n_copy]],
                    ignore_index=True)
    syn = syn.iloc[rng.permutation(len(syn))].reset_index(drop=True)
    qi = [names[f.name] for f in feats if f.privacy == "quasi_identifier"]
    rest = [names[f.name] for f in feats if f.privacy not in ("quasi_identifier", "sensitive")]
    meta = {"aux_cols": [qi, rest], "inference_aux": qi, "secret": names[SECRET], "names": names}
    return ori, syn, control, meta


def ours(ori: Any, syn: Any, control: Any, meta: dict[str, Any], *, n_attacks: int, seed: int,
         attacks: tuple[str, ...] = ("singling_out", "linkability", "inference")) -> dict[str, Any]:
    """Our three risks on the pandas frames (numbers numeric, the rest categorical)."""
    import numpy as np

    from evaluate.privacy.attack_data import mixed_frames
    from evaluate.privacy.inference import inference_risks
    from evaluate.privacy.linkability import linkability_risk
    from evaluate.privacy.singling_out import singling_out_risk

    numeric = [c for c in ori.columns if ori[c].dtype.kind in "fiu"]
    categorical = [c for c in ori.columns if c not in numeric]
    t0 = time.perf_counter()
    frames = mixed_frames([{c: df[c].to_numpy() for c in df.columns} for df in (ori, syn, control)], numeric, categorical)
    mo, ms, mc = frames
    prep = time.perf_counter() - t0
    out: dict[str, Any] = {"prepare_seconds": prep}
    rng = np.random.default_rng(seed)
    if "singling_out" in attacks:
        t0 = time.perf_counter()
        risk, _ = singling_out_risk(mo, ms, mc, n_attacks=n_attacks, n_cols=3, max_attempts=10_000_000, rng=rng)
        out["singling_out"] = _risk_row(risk, time.perf_counter() - t0)
    if "linkability" in attacks:
        t0 = time.perf_counter()
        risk, _ = linkability_risk(mo, ms, mc, tuple(meta["aux_cols"]), n_attacks=n_attacks, rng=rng)  # type: ignore[arg-type]
        out["linkability"] = _risk_row(risk, time.perf_counter() - t0)
    if "inference" in attacks:
        t0 = time.perf_counter()
        risk = inference_risks(mo, ms, mc, meta["inference_aux"], [meta["secret"]], n_attacks=n_attacks, rng=rng)[meta["secret"]]
        out["inference"] = _risk_row(risk, time.perf_counter() - t0)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _risk_row(risk: Any, seconds: float) -> dict[str, Any]:
    return {"risk": risk.value, "ci": [risk.ci.low, risk.ci.high], "seconds": seconds,
            "attack_rate": risk.attack.value, "baseline_rate": risk.baseline.value,
            "control_rate": None if risk.control is None else risk.control.value}


def run_anonymeter(exe: Path, workdir: Path, ori: Any, syn: Any, control: Any, meta: dict[str, Any], *,
                   n_attacks: int, seed: int, attacks: tuple[str, ...] = ("singling_out", "linkability", "inference"),
                   timeout: int = 3600) -> dict[str, Any]:
    """Anonymeter's three risks on the same frames, in its own environment (a subprocess)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, df in (("ori", ori), ("syn", syn), ("control", control)):
        df.to_parquet(workdir / f"{name}.parquet", index=False)
    script = workdir / "run_anonymeter.py"
    script.write_text(ANONYMETER_SCRIPT)
    params = {"n_attacks": n_attacks, "seed": seed, "n_cols": 3, "max_attempts": 10_000_000, "n_jobs": -2,
              "aux_cols": meta["aux_cols"], "inference_aux": meta["inference_aux"], "secret": meta["secret"],
              "attacks": list(attacks)}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    got = subprocess.run([str(exe), str(script), str(workdir), json.dumps(params)], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if got.returncode != 0:
        raise RuntimeError(f"anonymeter failed:\n{got.stderr[-4000:]}")
    return json.loads(got.stdout.strip().splitlines()[-1])


def agreement_check(*, population: Any = None, n_rows: int = 2000, n_attacks: int = 500, workdir: Path, seed: int = 0,
                    ours_attacks_factor: int = 4) -> dict[str, dict[str, Any]]:
    """Our risks against Anonymeter's CIs on the same frames (ours with more attacks, so that our estimate is sharp)."""
    exe = anonymeter_python()
    if exe is None:
        raise RuntimeError(f"no anonymeter environment at {ANONYMETER_VENV}")
    data = population_datasets(n_rows, population=population)
    inputs = build_inputs(data, max_rows=n_rows, seed=seed)
    ori, syn, control, meta = attack_pandas(inputs, seed=seed)
    theirs = run_anonymeter(exe, workdir, ori, syn, control, meta, n_attacks=n_attacks, seed=seed)
    mine = ours(ori, syn, control, meta, n_attacks=n_attacks * ours_attacks_factor, seed=seed)
    return {a: {"ours": mine[a]["risk"], "ours_ci": mine[a]["ci"], "anonymeter": theirs[a]["risk"],
                "anonymeter_ci": theirs[a]["ci"]} for a in ("singling_out", "linkability", "inference")}


# -- whole processes -------------------------------------------------------------------------------------------

SHARED_BENCH = REPO.parent / "shared" / "bench"
DCR = "privacy.dcr"
ATTACKS = "privacy.singling_out,privacy.linkability,privacy.attribute_inference"


def timed(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` under ``/usr/bin/time``: wall seconds, peak resident memory (MB) and stdout."""
    got = subprocess.run(["/usr/bin/time", "-f", "__time__ %e %M", *cmd], capture_output=True, text=True, cwd=cwd, env=env)
    if got.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{got.stderr[-4000:]}")
    line = next(x for x in got.stderr.splitlines()[::-1] if x.startswith("__time__"))
    _, wall, kb = line.split()
    return {"seconds": float(wall), "peak_rss_mb": int(kb) / 1024, "stdout": got.stdout}


def make_tables(rows: int, work: Path) -> tuple[Path, Path, Path]:
    """The claims table for synthmed (``--record-id``) and for the peers, and synthmed's drafted schema."""
    ours, peers = work / f"claims{rows}_ours", work / f"claims{rows}_peers"
    script = SHARED_BENCH / "make-claims-table.py"
    for out, extra in ((ours, ["--record-id"]), (peers, [])):
        if not (out / "real" / "claims.parquet").exists():
            subprocess.run([sys.executable, str(script), str(rows), str(out), *extra], check=True, capture_output=True)
    schema = work / f"claims{rows}_schema.yaml"
    if not schema.exists():
        got = subprocess.run([str(REPO / ".venv" / "bin" / "synthmed"), "schemas", "infer", str(ours / "real")],
                             capture_output=True, text=True, check=True)
        schema.write_text(got.stdout)
    return ours, peers, schema


def synthmed_cmd(metrics: str, tables: Path, schema: Path, rows: int) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "synthmed"), "evaluate", "--schema", str(schema), "--real", str(tables / "real"),
            "--synthetic", str(tables / "synthetic"), "--holdout", str(tables / "holdout"), "--metrics", metrics,
            "--max-rows", str(rows), "--json", "-q"]


def in_process(metrics: str, tables: Path, schema: Path, rows: int) -> dict[str, Any]:
    """Our work alone: a child process that imports, reads the folders, then times ``run_metrics``."""
    code = (
        "import json, sys, time\n"
        "from data_schemas.io import load_schema\n"
        "from evaluate.context import EvalOptions, load_context\n"
        "from evaluate.registry import load_families\n"
        "from evaluate.runner import run_metrics\n"
        f"metrics = {metrics.split(',')!r}\n"
        "load_families(metrics)\n"
        "t0 = time.perf_counter()\n"
        f"ctx = load_context(load_schema({str(schema)!r}), {str(tables / 'real')!r}, {str(tables / 'synthetic')!r}, "
        f"{str(tables / 'holdout')!r}, options=EvalOptions(max_rows={rows}))\n"
        "t1 = time.perf_counter()\n"
        "ev = run_metrics(ctx, metrics)\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'load_seconds': t1 - t0, 'seconds': t2 - t1, "
        "'results': {r.name: [r.value, None if r.ci is None else [r.ci.low, r.ci.high]] for r in ev.results}}))\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if got.returncode != 0:
        raise RuntimeError(got.stderr[-4000:])
    return json.loads(got.stdout.strip().splitlines()[-1])


def _peer_seconds(stdout: str) -> float:
    return sum(float(part.split("=")[1]) for line in stdout.splitlines() for part in line.split() if part.startswith("seconds="))


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (a shared machine's load moves single timings)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def _note(result: dict[str, Any], word: str) -> str:
    return next((n for n in result.get("notes", []) if word in n), "")


def compare(label: str, metrics: str, peer_cmd: list[str] | None, *, ours_dir: Path, schema: Path, rows: int,
            repeat: int, target: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Our whole process (median of ``repeat``), our in-process work, and the peer's whole process and work."""
    mine = _median_run([timed(synthmed_cmd(metrics, ours_dir, schema, rows), cwd=REPO) for _ in range(repeat)])
    inner = _median_run([in_process(metrics, ours_dir, schema, rows) for _ in range(repeat)])
    results = {r["name"]: r for r in json.loads(mine["stdout"])["results"]}
    row: dict[str, Any] = {
        "label": label, "metrics": metrics, "rows": rows, "repeat": repeat,
        "ours": {"seconds": mine["seconds"], "peak_rss_mb": mine["peak_rss_mb"], "work_seconds": inner["seconds"],
                 "load_seconds": inner["load_seconds"],
                 "results": {n: {"value": r["value"], "ci": r["ci"]} for n, r in results.items()}},
    }
    print(f"synthmed evaluate --metrics {metrics}: {mine['seconds']:.1f} s whole process (work {inner['seconds']:.1f} s, "
          f"reading {inner['load_seconds']:.1f} s; median of {repeat}), peak {mine['peak_rss_mb']:.0f} MB", flush=True)
    for name, r in results.items():
        ci = "" if r["ci"] is None else f" [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]"
        print(f"  {name} {r['value'] if r['value'] is None else round(r['value'], 4)}{ci}")
    search = _note(results.get("privacy.dcr.share_closer_to_train", {}), "nearest neighbours")
    if search:
        print(f"  {search}")
    if peer_cmd is None:
        return row
    peer = _median_run([timed(peer_cmd, env=env) for _ in range(repeat)])
    peer_work = _peer_seconds(peer["stdout"])
    whole, in_proc = peer["seconds"] / mine["seconds"], peer_work / inner["seconds"]
    row["peer"] = {"command": f"{Path(peer_cmd[1]).name} DIR",
                   "seconds": peer["seconds"], "peak_rss_mb": peer["peak_rss_mb"], "work_seconds": peer_work,
                   "stdout": peer["stdout"].strip()}
    row["speedup_whole_process"], row["speedup_in_process"], row["target"] = whole, in_proc, target
    print(f"{Path(peer_cmd[1]).name}: {peer['seconds']:.1f} s whole process (work {peer_work:.1f} s), "
          f"peak {peer['peak_rss_mb']:.0f} MB")
    print("  " + peer["stdout"].strip().replace("\n", "\n  "))
    print(f"speed-up: {whole:.1f}x whole process ({'meets' if whole >= target else 'BELOW'} the {target:g}x target), "
          f"{in_proc:.1f}x in-process", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each of real, synthetic and holdout")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "synthmed_bench_privacy",
                        help="where the tables are written (kept for reruns)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender; the median wall time is kept")
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--skip-anonymeter", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    opts = parser.parse_args(argv)
    opts.work.mkdir(parents=True, exist_ok=True)
    ours_dir, peers_dir, schema = make_tables(opts.rows, opts.work)
    print(f"claims table: {opts.rows:,} rows a side in {ours_dir} (synthmed) and {peers_dir} (peers); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []

    print("\n== DCR: every synthetic record against every train and holdout record ==", flush=True)
    peer = None if opts.skip_sklearn else [sys.executable, str(SHARED_BENCH / "peer_sklearn_dcr.py"), str(peers_dir)]
    rows.append(compare("DCR", DCR, peer, ours_dir=ours_dir, schema=schema, rows=opts.rows, repeat=opts.repeat, target=20))

    print("\n== singling out, linkability, attribute inference: 500 attacks each ==", flush=True)
    peer, env = None, None
    if not opts.skip_anonymeter:
        exe = ensure_anonymeter()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        peer = [str(exe), str(SHARED_BENCH / "peer_anonymeter.py"), str(peers_dir)]
    rows.append(compare("Anonymeter-style attacks", ATTACKS, peer, ours_dir=ours_dir, schema=schema, rows=opts.rows,
                        repeat=opts.repeat, target=5, env=env))
    if opts.out is not None:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps({"rows": opts.rows, "cpus": os.cpu_count(), "results": rows}, indent=2) + "\n")
        print(f"\nwrote {opts.out}")


if __name__ == "__main__":
    main()
