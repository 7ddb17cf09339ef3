"""Privacy evaluator benchmark: speed against scikit-learn and Anonymeter, and agreement with Anonymeter.

Run once (it takes a while, mostly for the reference tools)::

    .venv/bin/python benchmarks/bench_privacy.py            # 100k patients per dataset
    .venv/bin/python benchmarks/bench_privacy.py --n 20000  # a quicker look

Data: the simulated demo population (``synth.demo_population``, kr_claims schema), 3n patients cut in
three disjoint parts: train, holdout and "synthetic" (half of it copies of training patients, half
fresh patients, so that risks are neither 0 nor 1). Patient records and their encoding are built
once (``evaluate.privacy.records``); every contender then works on the same arrays.

1. DCR / NNDR: nearest and second-nearest neighbours of n synthetic records among n train and n
   holdout records, ours (``nearest_neighbours_many``: IVF with exact re-ranking beyond 6e8 pairs)
   against ``sklearn.neighbors.NearestNeighbors`` (exact) on the same float32 encoding. Recall@1/@2
   of ours against sklearn's exact neighbours is printed, as are both DCR shares.
2. Singling out, linkability and attribute inference at n rows with 500 attacks: ours against
   ``anonymeter`` 1.x (same frames, same parameters), and whether our risks lie within Anonymeter's
   confidence intervals.

Each contender runs in its own process, so its peak resident memory is its own (printed). Anonymeter
pins numpy < 1.27, so it runs in a separate virtual environment, ``.venv-anonymeter`` (git-ignored),
created on first use with ``python3 -m venv`` and ``pip install anonymeter "numpy<1.27"``.
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


# -- child processes for the timed runs ------------------------------------------------------------------------


def _child(kind: str, workdir: Path, args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    t = np.load(workdir / "train.npy")
    h = np.load(workdir / "holdout.npy")
    s = np.load(workdir / "synthetic.npy")
    # imports before the clock starts: both sides are timed on the search alone
    from sklearn.neighbors import NearestNeighbors

    from evaluate.privacy.distances import nearest_neighbours_many

    base = peak_rss_mb()
    t0 = time.perf_counter()
    if kind == "nn-ours":
        a, b = nearest_neighbours_many(s, [t, h], k=2, rng=np.random.default_rng(0))
        seconds = time.perf_counter() - t0
        np.save(workdir / "ours_dt.npy", a.distances)
        np.save(workdir / "ours_dh.npy", b.distances)
        extra = {"method": a.method, "recall_sampled": [a.recall, b.recall]}
    else:
        dt, _ = NearestNeighbors(n_neighbors=2).fit(t).kneighbors(s)
        dh, _ = NearestNeighbors(n_neighbors=2).fit(h).kneighbors(s)
        seconds = time.perf_counter() - t0
        np.save(workdir / "sk_dt.npy", dt)
        np.save(workdir / "sk_dh.npy", dh)
        extra = {}
    peak = peak_rss_mb()
    return {"seconds": seconds, "peak_rss_mb": peak, "inputs_rss_mb": base, **extra}


def _spawn(kind: str, workdir: Path, args: dict[str, Any] | None = None) -> dict[str, Any]:
    got = subprocess.run([sys.executable, __file__, "--child", kind, "--workdir", str(workdir), "--args", json.dumps(args or {})],
                         capture_output=True, text=True)
    if got.returncode != 0:
        raise RuntimeError(got.stderr[-4000:])
    return json.loads(got.stdout.strip().splitlines()[-1])


def _ours_attacks_child(workdir: Path, args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    ori, syn, control = (pd.read_parquet(workdir / f"{n}.parquet") for n in ("ori", "syn", "control"))
    meta = json.loads((workdir / "meta.json").read_text())
    return ours(ori, syn, control, meta, n_attacks=args["n_attacks"], seed=args["seed"])


# -- main --------------------------------------------------------------------------------------------------------


def _closer(dt: Any, dh: Any) -> float:
    import numpy as np

    return float(np.mean(dt < dh) + 0.5 * np.mean(dt == dh))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="patients per dataset (train, holdout, synthetic)")
    parser.add_argument("--n-attacks", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--skip-anonymeter", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--workdir")
    parser.add_argument("--args", default="{}")
    opts = parser.parse_args(argv)
    if opts.child:
        args = json.loads(opts.args)
        out = _ours_attacks_child(Path(opts.workdir), args) if opts.child == "attacks-ours" else _child(opts.child, Path(opts.workdir), args)
        print(json.dumps(out))
        return

    import numpy as np

    n = opts.n
    with tempfile.TemporaryDirectory(prefix="bench_privacy_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        data = population_datasets(n)
        print(f"simulated and loaded 3 x {n:,} patients in {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        inputs = build_inputs(data, max_rows=n, seed=opts.seed)
        print(f"records and encoding ({inputs.encoding.dim} dimensions) in {time.perf_counter() - t0:.0f} s", flush=True)
        # the synthetic side: half copies of training patients, half fresh patients
        rng = np.random.default_rng(opts.seed)
        n_copy = n // 2
        synthetic = np.concatenate([inputs.x_train[rng.choice(n, n_copy, replace=False)], inputs.x_synthetic[: n - n_copy]])
        np.save(work / "train.npy", inputs.x_train)
        np.save(work / "holdout.npy", inputs.x_holdout)
        np.save(work / "synthetic.npy", synthetic[rng.permutation(n)])

        print("\n== DCR / NNDR: nearest 2 of n synthetic among n train and n holdout records ==", flush=True)
        mine = _spawn("nn-ours", work)
        print(f"ours    ({mine['method']}): {mine['seconds']:.1f} s, peak RSS {mine['peak_rss_mb']:.0f} MB "
              f"(inputs {mine['inputs_rss_mb']:.0f} MB), sampled recall@2 {mine['recall_sampled']}", flush=True)
        if not opts.skip_sklearn:
            sk = _spawn("nn-sklearn", work)
            print(f"sklearn (NearestNeighbors, exact): {sk['seconds']:.1f} s, peak RSS {sk['peak_rss_mb']:.0f} MB", flush=True)
            odt, odh = np.load(work / "ours_dt.npy"), np.load(work / "ours_dh.npy")
            sdt, sdh = np.load(work / "sk_dt.npy"), np.load(work / "sk_dh.npy")
            tol = 1e-4
            for label, o, s in (("train", odt, sdt), ("holdout", odh, sdh)):
                r1 = np.mean(o[:, 0] <= s[:, 0] + tol)
                r2 = np.mean(o[:, 1] <= s[:, 1] + tol)
                print(f"recall against sklearn's exact neighbours ({label}): recall@1 {r1:.4f}, recall@2 {r2:.4f}")
            print(f"DCR share closer to train: ours {_closer(odt[:, 0], odh[:, 0]):.4f}, "
                  f"sklearn {_closer(sdt[:, 0], sdh[:, 0]):.4f}")
            print(f"speed-up: {sk['seconds'] / mine['seconds']:.1f}x  (target >= 20x)", flush=True)

        print(f"\n== singling out, linkability, inference: {n:,} rows, {opts.n_attacks} attacks ==", flush=True)
        ori, syn, control, meta = attack_pandas(inputs, seed=opts.seed)
        for name, df in (("ori", ori), ("syn", syn), ("control", control)):
            df.to_parquet(work / f"{name}.parquet", index=False)
        (work / "meta.json").write_text(json.dumps(meta))
        mine = _spawn("attacks-ours", work, {"n_attacks": opts.n_attacks, "seed": opts.seed})
        total_ours = sum(mine[a]["seconds"] for a in ("singling_out", "linkability", "inference")) + mine["prepare_seconds"]
        for a in ("singling_out", "linkability", "inference"):
            r = mine[a]
            print(f"ours       {a:13s} risk {r['risk']:.4f} CI [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] "
                  f"(attack {r['attack_rate']:.3f}, baseline {r['baseline_rate']:.3f}, control {r['control_rate']:.3f}) "
                  f"{r['seconds']:.1f} s")
        print(f"ours total {total_ours:.1f} s (incl. {mine['prepare_seconds']:.1f} s preparing), peak RSS {mine['peak_rss_mb']:.0f} MB", flush=True)
        if not opts.skip_anonymeter:
            exe = ensure_anonymeter()
            t0 = time.perf_counter()
            theirs = run_anonymeter(exe, work / "anon", ori, syn, control, meta, n_attacks=opts.n_attacks, seed=opts.seed,
                                    timeout=6 * 3600)
            wall = time.perf_counter() - t0
            total_theirs = sum(theirs[a]["seconds"] for a in ("singling_out", "linkability", "inference"))
            for a in ("singling_out", "linkability", "inference"):
                r = theirs[a]
                inside = r["ci"][0] <= mine[a]["risk"] <= r["ci"][1]
                print(f"anonymeter {a:13s} risk {r['risk']:.4f} CI [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] "
                      f"(attack {r['attack_rate']:.3f}, baseline {r['baseline_rate']:.3f}, control {r['control_rate']:.3f}) "
                      f"{r['seconds']:.1f} s; ours within its CI: {inside}")
            print(f"anonymeter total {total_theirs:.1f} s (process {wall:.0f} s with imports), peak RSS {theirs['peak_rss_mb']:.0f} MB")
            print(f"speed-up: {total_theirs / total_ours:.1f}x  (target >= 5x)", flush=True)


if __name__ == "__main__":
    main()
