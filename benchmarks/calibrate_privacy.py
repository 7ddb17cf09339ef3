"""Calibrate the privacy verdict on real, disjoint DE-SynPUF populations: how often it catches leaks, how often it cries wolf.

    flock /tmp/synthmed-heavy.lock .venv/bin/python benchmarks/calibrate_privacy.py --runs 20 --fresh-runs 60
    .venv/bin/python benchmarks/calibrate_privacy.py --report            # tables and plot from the saved results
    .venv/bin/python benchmarks/calibrate_privacy.py --report --policy my_policy.yaml   # the same runs under another policy

Every run draws three different DE-SynPUF samples (``../shared/datasets/desynpuf``: 15 disjoint populations of
10,000 beneficiaries; the triple rotates with the run): ``--train`` patients of the first are the training
data, ``--holdout`` patients of the second the holdout (80/20, as a release's split), and the third is where
fresh patients come from. Each case is a "synthetic" dataset of ``--synthetic`` patients made by hand:

* ``verbatim``: every training patient copied as they are (new ids);
* ``near``: every training patient with each date moved 1-5 days and each amount by up to +-5 %;
* ``one_qi``: every training patient with one quasi-identifier changed (birth date by 1-5 years, sex,
  race, state or county);
* ``exact_<p>`` / ``near_<p>``: p % of the synthetic patients are training patients copied verbatim /
  as near-copies, the rest fresh patients of the third sample (p = 5, 2, 1, 0.5);
* ``fresh``: fresh patients only, the privacy ideal: any verdict above ``low`` is a false alarm.

The privacy metrics run in-process on one DuckDB connection (``evaluate.runner.run_metrics``: the same code
as ``synthmed evaluate --metrics privacy`` in folder mode, where the shadow-model attack cannot run), and the
policy judges them. Each case's results (rates rows only) are appended to ``--out`` (JSON lines), so the
policy can be re-derived and re-applied without running the metrics again (``--report --policy``).

The report prints, per case, the share of runs judged ``high`` and at least ``medium`` and how often each
rule fired, the false-alarm rate on fresh samples (with a Clopper-Pearson upper bound), and writes the
power curve (share of copied patients vs detection rate, exact and near) as ``privacy_power.svg``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SYNPUF = REPO.parent / "shared" / "datasets" / "desynpuf"
SAMPLES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16)
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "privacy_calibration.jsonl.gz"  # gzip members appended run after run (2.2 MB as plain text)
SHARES = (5.0, 2.0, 1.0, 0.5)


@dataclass(frozen=True)
class Case:
    """A hand-made synthetic dataset: ``share`` of its patients taken from train (``kind`` of copy), the rest fresh."""

    name: str
    kind: str  # "copy", "near", "one_qi" or "fresh"
    share: float


def _label(p: float) -> str:
    return f"{p:g}".replace(".", "_")


CASES: dict[str, Case] = {
    "verbatim": Case("verbatim", "copy", 1.0),
    "near": Case("near", "near", 1.0),
    "one_qi": Case("one_qi", "one_qi", 1.0),
    **{f"exact_{_label(p)}": Case(f"exact_{_label(p)}", "copy", p / 100) for p in SHARES},
    **{f"near_{_label(p)}": Case(f"near_{_label(p)}", "near", p / 100) for p in SHARES},
    "fresh": Case("fresh", "fresh", 0.0),
}

GOALS: dict[str, tuple[str, float]] = {
    # case: (verdict that counts as detection, share of runs required)
    "verbatim": ("high", 1.0),
    "one_qi": ("high", 1.0),
    "near": ("high", 1.0),
    "exact_5": ("high", 1.0),
    "near_5": ("high", 1.0),
    "exact_1": ("high", 1.0),
    "near_1": ("medium", 0.9),
    "fresh": ("low", 0.95),
}


# -- data ---------------------------------------------------------------------------------------------------


def rotation(run: int) -> tuple[int, int, int]:
    """(train, holdout, fresh) DE-SynPUF samples of a run: three different ones, rotating with the run."""
    import numpy as np

    picked = np.random.default_rng([20_240_611, run]).choice(len(SAMPLES), size=3, replace=False)
    return tuple(SAMPLES[int(i)] for i in picked)  # type: ignore[return-value]


class Populations:
    """DE-SynPUF samples read once into one DuckDB connection (namespace ``s<n>``), and datasets cut from them."""

    def __init__(self, root: Path = SYNPUF) -> None:
        from data_schemas.io import load_schema
        from synth.load import connect

        if not root.is_dir():
            raise FileNotFoundError(f"the DE-SynPUF samples are not at {root}")
        self.root = root
        self.schema = load_schema("cms_desynpuf")
        self.con = connect(read_dirs=[root])
        self._samples: dict[int, Any] = {}
        self._keys: dict[int, Any] = {}

    def sample(self, n: int) -> Any:
        from evaluate.privacy.records import patient_keys
        from synth.load import read_dataset

        if n not in self._samples:
            ds, report = read_dataset(self.schema, self.root / f"{n}-sample-10000", con=self.con, namespace=f"s{n}")
            if not report.ok:
                raise RuntimeError(report.render())
            self._samples[n] = ds
            self._keys[n] = patient_keys(ds)
        return self._samples[n]

    def keys(self, n: int) -> Any:
        self.sample(n)
        return self._keys[n]

    def dataset(self, namespace: str, parts: list[tuple[Any, Any, str, str]], *, seed: int) -> Any:
        """A dataset in ``namespace`` made of parts ``(source dataset, patient keys, kind, id prefix)``."""
        from data_schemas.rules import quote
        from evaluate.privacy.records import registered_keys
        from synth.load import Dataset

        con, schema = self.con, self.schema
        con.execute(f"DROP SCHEMA IF EXISTS {quote(namespace)} CASCADE")
        con.execute(f"CREATE SCHEMA {quote(namespace)}")
        views = []
        try:
            for src, keys, _, _ in parts:
                ctx = registered_keys(con, keys)
                views.append((ctx, ctx.__enter__()))
            for tname in schema.tables:
                selects = [select_sql(schema, src, tname, view, kind=kind, prefix=prefix, seed=seed,
                                      qi_values=self._qi_values(src))
                           for (src, _, kind, prefix), (_, view) in zip(parts, views)]
                con.execute(f"CREATE TABLE {quote(namespace)}.{quote(tname)} AS {' UNION ALL '.join(selects)}")
        finally:
            for ctx, _ in views:
                ctx.__exit__(None, None, None)
        return Dataset(schema, con, namespace, source=namespace)

    def _qi_values(self, src: Any) -> dict[str, list[str]]:
        """Distinct values of the categorical quasi-identifiers without a declared value list (for ``one_qi``)."""
        from data_schemas.rules import quote

        table = self.schema.patient_table
        out = {}
        for col in table.columns.values():
            if col.privacy == "quasi_identifier" and col.type == "categorical" and not col.values:
                rows = self.con.execute(
                    f"SELECT DISTINCT CAST({quote(col.name)} AS VARCHAR) FROM {src.sql_name(table.name)} "
                    f"WHERE {quote(col.name)} IS NOT NULL ORDER BY 1").fetchall()
                out[col.name] = [str(r[0]) for r in rows]
        return out

    def drop(self, dataset: Any) -> None:
        from data_schemas.rules import quote

        self.con.execute(f"DROP SCHEMA IF EXISTS {quote(dataset.namespace)} CASCADE")


def _hash(expr: str, salt: str) -> str:
    return f"hash(CAST({expr} AS VARCHAR) || '{salt}')"


def _sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def select_sql(schema: Any, src: Any, table: str, keys_view: str, *, kind: str, prefix: str, seed: int,
               qi_values: dict[str, list[str]]) -> str:
    """SELECT of ``table``'s columns for the patients in ``keys_view``: ids prefixed, values perturbed by ``kind``.

    ``near``: dates moved 1-5 days either way (per patient and column on the patient table, per row on
    event tables, so a row's dates keep their order) and every non-integer number by up to +-5 %.
    ``one_qi``: one quasi-identifier of the patient table changed per patient, on all of their rows
    (a date by 1-5 years, a category to another value). ``copy`` and ``fresh`` copy the values.
    """
    from data_schemas.rules import quote, with_patient_key_sql

    tbl = schema.tables[table]
    pk = "CAST(q.__patient_key AS VARCHAR)"
    row_key = " || '|' || ".join(f"CAST(q.{quote(c)} AS VARCHAR)" for c in tbl.primary_key) or pk
    salt = f"{seed}:{table}"
    qis = [c for c in schema.patient_table.columns.values() if c.privacy == "quasi_identifier"]
    cols = []
    for col in tbl.columns.values():
        q = f"q.{quote(col.name)}"
        expr = q
        if col.type == "id":
            expr = f"'{prefix}' || {q}"
        elif kind == "near" and col.type == "datetime":
            key = f"{pk} || '{col.name}'" if table == schema.patient.table else row_key
            s = f"({_hash(key, salt)} % 10)"
            shift = f"CAST(CASE WHEN {s} < 5 THEN -1 - {s} ELSE {s} - 4 END AS INTEGER)"
            expr = f"CAST({q} + to_days({shift}) AS {col.sql_type})"
        elif kind == "near" and col.type == "numerical" and not col.integer:
            key = row_key + " || '" + col.name + "'"
            u = f"(CAST({_hash(key, salt)} % 2001 AS DOUBLE) - 1000.0) / 20000.0"
            expr = f"{q} * (1.0 + {u})"
        elif kind == "one_qi" and table == schema.patient.table and col in qis:
            i = qis.index(col)
            chosen = f"({_hash(pk, f'{seed}:qi')} % {len(qis)}) = {i}"
            h2 = _hash(pk, f"{seed}:qi:{col.name}")
            if col.type == "datetime":
                years = f"CAST((1 + {h2} % 5) * (CASE WHEN {h2} % 2 = 0 THEN 1 ELSE -1 END) AS INTEGER)"
                changed = f"CAST({q} + to_years({years}) AS {col.sql_type})"
            else:
                values = list(col.values or qi_values.get(col.name, []))
                if len(values) < 2:
                    changed = q
                else:
                    lst, n = _sql_list(values), len(values)
                    pos = f"coalesce(list_position({lst}, CAST({q} AS VARCHAR)), 0)"
                    changed = f"list_element({lst}, CAST(({pos} + {h2} % {n - 1}) % {n} + 1 AS BIGINT))"
            expr = f"CASE WHEN {chosen} THEN {changed} ELSE {q} END"
        cols.append(f"{expr} AS {quote(col.name)}")
    base = with_patient_key_sql(schema, table, src.relations())
    return f"SELECT {', '.join(cols)} FROM ({base}) q WHERE CAST(q.__patient_key AS VARCHAR) IN (SELECT k FROM {keys_view})"


@dataclass
class RunData:
    """One run's train and holdout datasets and where its fresh patients come from."""

    run: int
    seed: int
    samples: tuple[int, int, int]
    train: Any
    holdout: Any


def prepare_run(pops: Populations, run: int, *, n_train: int, n_holdout: int) -> RunData:
    """Train and holdout of run ``run`` (seeded patient samples of its first two DE-SynPUF samples)."""
    import numpy as np

    a, b, c = rotation(run)
    rng = np.random.default_rng([run, 1])
    ka, kb = pops.keys(a), pops.keys(b)
    train = pops.dataset("cal_train", [(pops.sample(a), rng.choice(ka, min(n_train, ka.size), replace=False), "copy", "T")],
                         seed=run)
    holdout = pops.dataset("cal_holdout", [(pops.sample(b), rng.choice(kb, min(n_holdout, kb.size), replace=False), "copy", "H")],
                           seed=run)
    pops.sample(c)
    return RunData(run, run, (a, b, c), train, holdout)


def synthetic_case(pops: Populations, data: RunData, case: Case, *, n_synthetic: int) -> Any:
    """The synthetic dataset of ``case`` for one run (namespace ``cal_synthetic``)."""
    import numpy as np

    from evaluate.privacy.records import patient_keys

    rng = np.random.default_rng([data.run, 2, list(CASES).index(case.name)])
    train_keys = patient_keys(data.train)
    fresh_keys = pops.keys(data.samples[2])
    parts = []
    if case.kind != "fresh":
        n_copy = train_keys.size if case.share >= 1.0 else int(round(case.share * n_synthetic))
        kind = "copy" if case.kind == "copy" else case.kind
        parts.append((data.train, rng.choice(train_keys, min(n_copy, train_keys.size), replace=False), kind, "C"))
        n_fresh = 0 if case.share >= 1.0 else n_synthetic - n_copy
    else:
        n_fresh = n_synthetic
    if n_fresh:
        parts.append((pops.sample(data.samples[2]), rng.choice(fresh_keys, min(n_fresh, fresh_keys.size), replace=False),
                      "fresh", "F"))
    return pops.dataset("cal_synthetic", parts, seed=data.seed)


# -- evaluating -----------------------------------------------------------------------------------------------


def evaluate_case(pops: Populations, data: RunData, synthetic: Any, *, metrics: list[str] | None = None,
                  params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The privacy results of one case (``to_dict`` forms with only their ``rates`` details rows)."""
    from evaluate.context import EvalContext, EvalOptions
    from evaluate.runner import run_metrics

    ctx = EvalContext(pops.schema, pops.con, data.train, synthetic, data.holdout,
                      EvalOptions(seed=data.seed, params=params or {}))
    evaluation = run_metrics(ctx, metrics or ["privacy"])
    out = []
    for r in evaluation.results:
        d = r.to_dict()
        d["details"] = [x for x in d["details"] if x.get("kind") == "rates"]
        d["notes"] = []
        d["skipped"] = d["skipped"][:1]
        out.append(d)
    return out


def judge(results: list[dict[str, Any]], policy: Any) -> Any:
    """The policy verdict on stored results (folder mode: the shadow-model attack cannot run)."""
    from evaluate.policy import apply_policy
    from evaluate.result import EvaluationResult, MetricResult

    evaluation = EvaluationResult(tuple(MetricResult.from_dict(d) for d in results), seed=0)
    return apply_policy(evaluation, policy)


def run_cases(pops: Populations, runs: Iterable[int], cases: list[Case], *, n_train: int, n_holdout: int,
              n_synthetic: int, metrics: list[str] | None = None, params: dict[str, Any] | None = None,
              ) -> Iterator[dict[str, Any]]:
    """One record per (run, case): the samples, the seconds taken and the results."""
    for run in runs:
        data = prepare_run(pops, run, n_train=n_train, n_holdout=n_holdout)
        for case in cases:
            t0 = time.perf_counter()
            synthetic = synthetic_case(pops, data, case, n_synthetic=n_synthetic)
            try:
                results = evaluate_case(pops, data, synthetic, metrics=metrics, params=params)
            finally:
                pops.drop(synthetic)
            yield {"run": run, "case": case.name, "samples": list(data.samples), "n_train": n_train,
                   "n_holdout": n_holdout, "n_synthetic": n_synthetic, "seconds": time.perf_counter() - t0,
                   "results": results}


# -- reporting ------------------------------------------------------------------------------------------------


def _open_text(path: Path, mode: str) -> Any:
    """``path`` as text, gzip-compressed where it ends in .gz (appending adds a gzip member, read back as one)."""
    return gzip.open(path, f"{mode}t", encoding="utf-8") if path.suffix == ".gz" else path.open(mode, encoding="utf-8")


def read_records(path: Path) -> list[dict[str, Any]]:
    with _open_text(path, "r") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper bound of a rate of ``k`` in ``n``."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


def summarise(records: list[dict[str, Any]], policy: Any) -> dict[str, dict[str, Any]]:
    """Per case: runs, shares judged high / at least medium, and each rule's firing rate (warn or fail)."""
    per: dict[str, dict[str, Any]] = {}
    for rec in records:
        verdict = judge(rec["results"], policy)
        row = per.setdefault(rec["case"], {"runs": 0, "high": 0, "medium_or_high": 0, "rules": defaultdict(int),
                                           "seconds": 0.0})
        row["runs"] += 1
        row["seconds"] += rec.get("seconds", 0.0)
        row["high"] += verdict.risk_level == "high"
        row["medium_or_high"] += verdict.risk_level != "low"
        fired = {v.rule for v in verdict.verdicts if v.status in ("warn", "fail")}
        for rule in fired:
            row["rules"][rule] += 1
    return per


def report(records: list[dict[str, Any]], policy: Any) -> str:
    """The tables printed after a calibration run (and by ``--report``)."""
    per = summarise(records, policy)
    lines = [f"policy {policy.name} (version {policy.version}), {len(records)} evaluations", "",
             "| case | runs | high | at least medium | goal | rules that fired (share of runs) |",
             "|---|---:|---:|---:|---|---|"]
    for name in [c for c in CASES if c in per]:
        row = per[name]
        n = row["runs"]
        goal = GOALS.get(name)
        if goal is None:
            goal_text = ""
        else:
            level, share = goal
            got = row["high"] if level == "high" else (row["medium_or_high"] if level == "medium" else n - row["medium_or_high"])
            goal_text = f"{level} in >= {share:.0%}: {'met' if got / n >= share else 'NOT met'}"
        rules = ", ".join(f"{r} {c / n:.0%}" for r, c in sorted(row["rules"].items(), key=lambda x: -x[1]))
        lines.append(f"| {name} | {n} | {row['high'] / n:.0%} | {row['medium_or_high'] / n:.0%} | {goal_text} | {rules} |")
    fresh = per.get("fresh")
    if fresh:
        k, n = fresh["medium_or_high"], fresh["runs"]
        lines += ["", f"false alarms on fresh disjoint samples: {k} of {n} runs = {k / n:.1%} "
                      f"(95% upper bound {clopper_pearson_upper(k, n):.1%})"]
    return "\n".join(lines)


def power_table(records: list[dict[str, Any]], policy: Any) -> list[dict[str, Any]]:
    """Share copied vs detection rate (high, at least medium), exact and near, for the power curve."""
    per = summarise(records, policy)
    rows = []
    for kind, prefix, full in (("exact", "exact_", "verbatim"), ("near", "near_", "near")):
        for p in (*sorted(SHARES), 100.0):
            name = full if p == 100.0 else f"{prefix}{_label(p)}"
            if name in per:
                row = per[name]
                rows.append({"kind": kind, "percent": p, "runs": row["runs"], "high": row["high"] / row["runs"],
                             "medium_or_high": row["medium_or_high"] / row["runs"]})
    fresh = per.get("fresh")
    if fresh:
        rows.append({"kind": "fresh", "percent": 0.0, "runs": fresh["runs"], "high": fresh["high"] / fresh["runs"],
                     "medium_or_high": fresh["medium_or_high"] / fresh["runs"]})
    return rows


def power_svg(rows: list[dict[str, Any]], *, title: str) -> str:
    """The power curve as a small hand-written SVG: x = share of patients copied (log scale), y = detection rate."""
    w, h, left, top = 520, 300, 56, 30
    pw, ph = w - left - 150, h - top - 50
    xs = [0.5, 1, 2, 5, 100]
    lo, hi = math.log10(0.4), math.log10(120)

    def x(p: float) -> float:
        return left + (math.log10(p) - lo) / (hi - lo) * pw

    def y(v: float) -> float:
        return top + (1 - v) * ph

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='11'>",
           f"<text x='{left}' y='16' font-size='12' font-weight='600'>{title}</text>",
           f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>"]
    for v in (0.0, 0.5, 0.9, 1.0):
        out.append(f"<line x1='{left}' y1='{y(v):.1f}' x2='{left + pw}' y2='{y(v):.1f}' stroke='#eee'/>"
                   f"<text x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:.0%}</text>")
    for p in xs:
        out.append(f"<text x='{x(p):.1f}' y='{top + ph + 14}' text-anchor='middle'>{p:g}%</text>")
    out.append(f"<text x='{left + pw / 2}' y='{top + ph + 32}' text-anchor='middle'>training patients copied "
               "(share of the synthetic patients, log scale)</text>")
    series = [("exact", "high", "#c62828", ""), ("exact", "medium_or_high", "#c62828", "4 3"),
              ("near", "high", "#1f6fb4", ""), ("near", "medium_or_high", "#1f6fb4", "4 3")]
    for k, (kind, level, color, dash) in enumerate(series):
        pts = [(r["percent"], r[level]) for r in rows if r["kind"] == kind]
        if not pts:
            continue
        path = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in pts)
        out.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='2' stroke-dasharray='{dash}'/>")
        out += [f"<circle cx='{x(p):.1f}' cy='{y(v):.1f}' r='2.5' fill='{color}'/>" for p, v in pts]
        label = f"{kind} copies: {'high' if level == 'high' else 'at least medium'}"
        out.append(f"<line x1='{left + pw + 10}' y1='{top + 10 + 16 * k}' x2='{left + pw + 30}' y2='{top + 10 + 16 * k}' "
                   f"stroke='{color}' stroke-width='2' stroke-dasharray='{dash}'/>"
                   f"<text x='{left + pw + 34}' y='{top + 14 + 16 * k}'>{label}</text>")
    fresh = next((r for r in rows if r["kind"] == "fresh"), None)
    if fresh is not None:
        out.append(f"<text x='{left + pw + 10}' y='{top + 90}'>fresh patients:</text>"
                   f"<text x='{left + pw + 10}' y='{top + 104}'>false alarms {fresh['medium_or_high']:.0%}</text>"
                   f"<text x='{left + pw + 10}' y='{top + 118}'>({fresh['runs']} runs)</text>")
    out.append("</svg>")
    return "".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of every leak case (each on its own triple of samples)")
    parser.add_argument("--fresh-runs", type=int, default=60, help="runs of the fresh case (false alarms)")
    parser.add_argument("--first-run", type=int, default=0)
    parser.add_argument("--cases", default=",".join(c for c in CASES if c != "fresh"))
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--synthetic", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines of results (appended)")
    parser.add_argument("--policy", type=Path, default=None, help="policy YAML to judge with (default: the built-in one)")
    parser.add_argument("--report", action="store_true", help="only print the tables and write the plot from --out")
    parser.add_argument("--svg", type=Path, default=RESULTS / "privacy_power.svg")
    args = parser.parse_args(argv)

    from evaluate.policy import load_policy

    policy = load_policy(args.policy)
    if not args.report:
        pops = Populations()
        cases = [CASES[c] for c in args.cases.split(",") if c]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        plan = [(range(args.first_run, args.first_run + args.runs), cases),
                (range(args.first_run, args.first_run + args.fresh_runs), [CASES["fresh"]])]
        with _open_text(args.out, "a") as sink:
            for runs, chosen in plan:
                if not chosen or not len(runs):
                    continue
                for rec in run_cases(pops, runs, chosen, n_train=args.train, n_holdout=args.holdout,
                                     n_synthetic=args.synthetic):
                    sink.write(json.dumps(rec) + "\n")
                    sink.flush()
                    level = judge(rec["results"], policy).risk_level
                    print(f"run {rec['run']:3d} {rec['case']:10s} samples {rec['samples']} {level:6s} {rec['seconds']:.1f} s",
                          flush=True)
    records = read_records(args.out)
    print()
    print(report(records, policy))
    rows = power_table(records, policy)
    print()
    print("| copied | exact: high | exact: at least medium | near: high | near: at least medium | runs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for p in (*sorted(SHARES), 100.0):
        e = next((r for r in rows if r["kind"] == "exact" and r["percent"] == p), None)
        n = next((r for r in rows if r["kind"] == "near" and r["percent"] == p), None)
        if e or n:
            cells = [f"{r[k]:.0%}" if r else "-" for r in (e, n) for k in ("high", "medium_or_high")]
            runs = max(r["runs"] for r in (e, n) if r)
            print(f"| {p:g}% | {' | '.join(cells)} | {runs} |")
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(power_svg(rows, title=f"DE-SynPUF, {records[0]['n_train']:,} train / {records[0]['n_holdout']:,} "
                                             f"holdout patients: detection rate"))
    print(f"\nwrote {args.svg}")


if __name__ == "__main__":
    main()
