"""What the review app shows, as plain data: read from the catalog and the release folders, never real records.

Every function here is free of Streamlit so that it can be tested on its own. Frames are long (one row
per plotted point or table cell) and built from the aggregates stored in each metric result's
``details`` (see ``evaluate/``): category frequencies and histogram bins of each column, pair scores,
ROC points of the membership attacks, DCR histograms and quantiles, Anonymeter-style rates.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd

from synth.catalog import HEAD_FILE, ChainState
from synth.errors import CatalogError, ReleaseError
from synth.release import Store, VerifyResult, read_manifest, verify_release
from synthmed.review_app.access import Identity, load_review_config
from synthmed.review_app.decisions import ReviewRow, record_decision, release_status

T = TypeVar("T")
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
DECISION_LABELS = {"approve": "approve", "reject": "reject", "request_changes": "request changes"}
MIA_PATTERN = "privacy.mia.%.auc"
ANONYMETER = {
    "privacy.singling_out.risk": "singling out",
    "privacy.linkability.risk": "linkability",
    "privacy.attribute_inference.risk": "attribute inference",
}
READ_ATTEMPTS = 3
READ_WAIT_S = 0.2


def _read(fn: Callable[[], T]) -> T:
    """Run a catalog read, retrying briefly: writers hold the catalog's lock only while a row goes in."""
    for attempt in range(READ_ATTEMPTS):
        try:
            return fn()
        except CatalogError as exc:
            if attempt == READ_ATTEMPTS - 1 or "in use by another" not in str(exc):
                raise
            time.sleep(READ_WAIT_S * (attempt + 1))
    raise AssertionError("unreachable")


def has_catalog(store: Store) -> bool:
    return store.catalog.path.is_file()


# -- releases ----------------------------------------------------------------------------------------------


def verdict_text(policy: dict[str, Any] | None) -> str:
    """'3 fail · 1 warn · 9 pass' from a stored policy verdict; 'not evaluated' without one."""
    if not policy:
        return "not evaluated"
    counts = policy.get("counts") or {}
    parts = [f"{counts.get(k, 0)} {k}" for k in ("fail", "warn", "pass") if counts.get(k)]
    return " · ".join(parts) or "nothing checked"


def releases_frame(store: Store) -> pd.DataFrame:
    """One row per release: what it is, its latest evaluation (fidelity, risk, policy verdict), review, epsilon."""
    rows = _read(store.catalog.releases)
    policies = _read(lambda: _policies(store, [r["evaluation_id"] for r in rows if r.get("evaluation_id")]))
    reviews: dict[str, list[ReviewRow]] = {}
    for rv in _read(lambda: store.catalog.reviews()):
        reviews.setdefault(rv["release_id"], []).append(
            ReviewRow(rv["decision"], rv.get("issuer"), rv.get("subject"), rv["manifest_hash"]))
    required = load_review_config(store).approvals_required
    out = []
    for r in rows:
        policy = policies.get(r.get("evaluation_id") or "")
        out.append(
            {
                "release_id": r["release_id"],
                "schema": r["schema_name"],
                "generator": r["generator"],
                "family": r["family"],
                "patients": r["n_patients"],
                "created": r["created_at"],
                "fidelity": r["fidelity"],
                "risk_level": r["risk_level"] or "not evaluated",
                "policy_verdict": verdict_text(policy),
                "review_status": release_status(reviews.get(r["release_id"], []), r["manifest_hash"], required),
                "requested_by": r.get("requested_by"),
                "requested_os_user": r.get("requested_os_user"),
                "differentially_private": bool(r["differentially_private"]),
                "epsilon": r["epsilon"],
                "delta": r["delta"],
                "evaluation_id": r.get("evaluation_id"),
                "manifest_hash": r["manifest_hash"],
            }
        )
    columns = ["release_id", "schema", "generator", "family", "patients", "created", "fidelity", "risk_level",
               "policy_verdict", "review_status", "requested_by", "requested_os_user", "differentially_private", "epsilon", "delta",
               "evaluation_id", "manifest_hash"]
    return pd.DataFrame(out, columns=columns)


def _policies(store: Store, evaluation_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not evaluation_ids:
        return {}
    with store.catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT evaluation_id, policy_json FROM evaluations WHERE evaluation_id IN (SELECT unnest(?))",
            [evaluation_ids],
        ).fetchall()
    return {eid: json.loads(pj) for eid, pj in rows if pj}


def filter_releases(
    frame: pd.DataFrame,
    *,
    text: str = "",
    schemas: Iterable[str] = (),
    generators: Iterable[str] = (),
    risk_levels: Iterable[str] = (),
    review_statuses: Iterable[str] = (),
    sort_by: str = "created",
    descending: bool = True,
) -> pd.DataFrame:
    """The releases matching every filter given (empty = any), sorted; missing values sort last."""
    out = frame
    if text.strip():
        needle = text.strip().lower()
        hay = out["release_id"].str.lower() + " " + out["generator"].str.lower() + " " + out["schema"].str.lower()
        out = out[hay.str.contains(needle, regex=False)]
    for column, wanted in (("schema", schemas), ("generator", generators), ("risk_level", risk_levels),
                           ("review_status", review_statuses)):
        wanted = list(wanted)
        if wanted:
            out = out[out[column].isin(wanted)]
    if sort_by not in out.columns:
        raise ValueError(f"The 'sort_by' parameter must be one of {', '.join(out.columns)}; got {sort_by!r} instead.")
    if sort_by == "risk_level":
        key: Callable[[pd.Series], pd.Series] | None = lambda s: s.map(RISK_ORDER)  # noqa: E731
    else:
        key = None
    return out.sort_values(sort_by, ascending=not descending, na_position="last", key=key, kind="stable")


# -- evaluations -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvaluation:
    """The latest evaluation of a release as stored in the catalog: results by name and the policy verdict."""

    release_id: str
    evaluation_id: str
    created_at: datetime | None
    fidelity: float | None
    risk_level: str | None
    policy: dict[str, Any] | None
    results: dict[str, dict[str, Any]]
    versions: dict[str, str]

    def get(self, name: str) -> dict[str, Any] | None:
        return self.results.get(name)

    def value(self, name: str) -> float | None:
        r = self.results.get(name)
        return None if r is None else r.get("value")


def latest_evaluation(
    store: Store, release_id: str, *, results: Callable[[str], list[dict[str, Any]]] | None = None
) -> StoredEvaluation | None:
    """The newest evaluation of a release, or None when it has none. ``results`` may be a cached reader."""
    rows = _read(lambda: store.catalog.evaluations(release_id))
    if not rows:
        return None
    row = rows[0]
    read = results or (lambda eid: read_results(store, eid))
    items = read(row["evaluation_id"])
    return StoredEvaluation(
        release_id=release_id,
        evaluation_id=row["evaluation_id"],
        created_at=row["created_at"],
        fidelity=row["fidelity"],
        risk_level=row["risk_level"],
        policy=json.loads(row["policy_json"]) if row["policy_json"] else None,
        results={r["name"]: r for r in items},
        versions=json.loads(row["versions_json"] or "{}"),
    )


def read_results(store: Store, evaluation_id: str) -> list[dict[str, Any]]:
    """The stored results of one evaluation (``MetricResult.to_dict`` form), in the order they were produced."""
    return _read(lambda: store.catalog.metric_results(evaluation_id))


def tradeoff_frame(store: Store) -> pd.DataFrame:
    """Every evaluated release: overall fidelity and the highest membership-attack AUC (the privacy axis)."""
    releases = releases_frame(store)
    evaluated = releases[releases["evaluation_id"].notna()]
    worst = _read(lambda: _worst_mia(store, evaluated["evaluation_id"].tolist()))
    rows = []
    for r in evaluated.itertuples(index=False):
        auc, attack = worst.get(r.evaluation_id, (None, None))
        rows.append({"release_id": r.release_id, "generator": r.generator, "fidelity": r.fidelity, "mia_auc": auc,
                     "attack": attack, "risk_level": r.risk_level, "epsilon": r.epsilon})
    return pd.DataFrame(rows, columns=["release_id", "generator", "fidelity", "mia_auc", "attack", "risk_level", "epsilon"])


def _worst_mia(store: Store, evaluation_ids: list[str]) -> dict[str, tuple[float, str]]:
    if not evaluation_ids:
        return {}
    with store.catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT evaluation_id, max(value), arg_max(name, value) FROM metric_results "
            "WHERE name LIKE ? AND value IS NOT NULL AND evaluation_id IN (SELECT unnest(?)) GROUP BY evaluation_id",
            [MIA_PATTERN, evaluation_ids],
        ).fetchall()
    return {eid: (float(v), str(name).split(".")[2]) for eid, v, name in rows}


# -- fidelity details ---------------------------------------------------------------------------------------


def column_scores(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """Per-column shape score of each release (KS or TV complement): table, column, metric, release, value."""
    rows = []
    for rid, ev in evaluations.items():
        r = ev.get("fidelity.column_shapes")
        for d in (r or {}).get("details", []):
            if "column" in d and isinstance(d.get("value"), (int, float)):
                rows.append({"table": d.get("table"), "column": d["column"], "metric": d.get("metric"),
                             "release_id": rid, "value": float(d["value"])})
    return pd.DataFrame(rows, columns=["table", "column", "metric", "release_id", "value"])


def marginal_frame(evaluation: StoredEvaluation, table: str, column: str) -> pd.DataFrame | None:
    """Real (train) vs synthetic frequencies of one column, from the stored aggregate; None when not stored.

    Columns: label, side ('real' or 'synthetic'), frequency, order (the position of the category or bin).
    """
    r = evaluation.get("fidelity.column_shapes")
    for d in (r or {}).get("details", []):
        if d.get("table") != table or d.get("column") != column:
            continue
        if "frequencies" in d:
            f = d["frequencies"]
            labels = [str(c) for c in f["categories"]]
            real, syn = f["real"], f["synthetic"]
        elif "bins" in d:
            b = d["bins"]
            edges = b["edges"]
            labels = [f"{_edge(edges[i])} – {_edge(edges[i + 1])}" for i in range(len(b["real"]))]
            real, syn = b["real"], b["synthetic"]
        else:
            return None
        rows = [{"label": lbl, "side": side, "frequency": float(v), "order": i}
                for side, values in (("real", real), ("synthetic", syn)) for i, (lbl, v) in enumerate(zip(labels, values))]
        return pd.DataFrame(rows)
    return None


def _edge(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pair_frame(evaluation: StoredEvaluation) -> pd.DataFrame:
    """Pair-trend scores: table, column_1, column_2, metric, value (correlation or contingency similarity)."""
    r = evaluation.get("fidelity.column_pair_trends")
    rows = [
        {"table": str(d.get("table")), "column_1": str(d.get("column_1")), "column_2": str(d.get("column_2")),
         "metric": d.get("metric"), "value": float(d["value"])}
        for d in (r or {}).get("details", [])
        if "column_1" in d and isinstance(d.get("value"), (int, float))
    ]
    return pd.DataFrame(rows, columns=["table", "column_1", "column_2", "metric", "value"])


# -- privacy details ----------------------------------------------------------------------------------------


def _attacks(ev: StoredEvaluation) -> list[str]:
    return sorted({name.split(".")[2] for name in ev.results if name.startswith("privacy.mia.") and name.endswith(".auc")})


def roc_frame(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """ROC points of every membership attack of every release: release_id, attack, fpr, tpr, auc."""
    rows = []
    for rid, ev in evaluations.items():
        for attack in _attacks(ev):
            r = ev.get(f"privacy.mia.{attack}.auc") or {}
            rows += [{"release_id": rid, "attack": attack, "fpr": float(d["fpr"]), "tpr": float(d["tpr"]),
                      "auc": r.get("value")}
                     for d in r.get("details", []) if d.get("kind") == "roc"]
    return pd.DataFrame(rows, columns=["release_id", "attack", "fpr", "tpr", "auc"])


def _ci_text(r: dict[str, Any] | None, digits: int = 3) -> str:
    if r is None:
        return "not run"
    if r.get("value") is None:
        skipped = r.get("skipped") or []
        return "skipped" + (f": {skipped[0]['reason']}" if skipped else "")
    text = f"{r['value']:.{digits}f}"
    if r.get("ci"):
        low, high = r["ci"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def mia_table(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """Each attack on each release: AUC, advantage and TPR at low FPR, with their CIs (as text)."""
    rows = []
    for rid, ev in evaluations.items():
        for attack in _attacks(ev):
            base = f"privacy.mia.{attack}"
            rows.append({
                "release_id": rid, "attack": attack,
                "auc": _ci_text(ev.get(f"{base}.auc")),
                "advantage": _ci_text(ev.get(f"{base}.advantage")),
                "tpr_at_fpr_1pct": _ci_text(ev.get(f"{base}.tpr_at_fpr_1pct")),
                "tpr_at_fpr_0.1pct": _ci_text(ev.get(f"{base}.tpr_at_fpr_0.1pct"), 4),
            })
    return pd.DataFrame(rows, columns=["release_id", "attack", "auc", "advantage", "tpr_at_fpr_1pct", "tpr_at_fpr_0.1pct"])


def dcr_histogram_frame(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """DCR distributions: release_id, low, high, to ('train' or 'holdout'), share of synthetic records in the bin."""
    rows = []
    for rid, ev in evaluations.items():
        r = ev.get("privacy.dcr.share_closer_to_train") or {}
        bins = [d for d in r.get("details", []) if d.get("kind") == "dcr_histogram"]
        totals = {side: sum(d[f"synthetic_to_{side}"] for d in bins) or 1 for side in ("train", "holdout")}
        for d in bins:
            for side in ("train", "holdout"):
                rows.append({"release_id": rid, "low": float(d["low"]), "high": float(d["high"]), "to": side,
                             "share": d[f"synthetic_to_{side}"] / totals[side]})
    return pd.DataFrame(rows, columns=["release_id", "low", "high", "to", "share"])


def dcr_table(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """Share of synthetic records closer to train than holdout (0.5 ideal), median DCRs, NNDR vs its baseline."""
    rows = []
    for rid, ev in evaluations.items():
        r = ev.get("privacy.dcr.share_closer_to_train")
        rates = next((d for d in (r or {}).get("details", []) if d.get("kind") == "rates"), {})
        nndr = ev.get("privacy.nndr.median")
        nndr_rates = next((d for d in (nndr or {}).get("details", []) if d.get("kind") == "rates"), {})
        rows.append({
            "release_id": rid,
            "share_closer_to_train": _ci_text(r),
            "median_dcr_train": rates.get("median_dcr_train"),
            "median_dcr_holdout": rates.get("median_dcr_holdout"),
            "zero_distance_train": rates.get("zero_distance_train"),
            "nndr_median": _ci_text(nndr),
            "nndr_median_holdout": nndr_rates.get("baseline_rate"),
        })
    return pd.DataFrame(rows, columns=["release_id", "share_closer_to_train", "median_dcr_train", "median_dcr_holdout",
                                       "zero_distance_train", "nndr_median", "nndr_median_holdout"])


def anonymeter_frame(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """Singling out, linkability and attribute inference: residual risk with CI and the rates behind it."""
    rows = []
    for rid, ev in evaluations.items():
        for name, label in ANONYMETER.items():
            r = ev.get(name)
            if r is None or r.get("value") is None:
                continue
            rates = next((d for d in r.get("details", []) if d.get("kind") == "rates"), None)
            if rates is None:  # attribute inference keeps one row per secret; the worst is the value
                secrets = [d for d in r.get("details", []) if d.get("kind") == "secret"]
                rates = max(secrets, key=lambda d: d.get("risk") or 0.0, default={})
            ci = r.get("ci") or [None, None]
            rows.append({
                "release_id": rid, "risk": label, "value": float(r["value"]), "ci_low": ci[0], "ci_high": ci[1],
                "attack_rate": rates.get("attack_rate"), "baseline_rate": rates.get("baseline_rate"),
                "control_rate": rates.get("control_rate"),
                "better_than_baseline": rates.get("better_than_baseline"),
            })
    return pd.DataFrame(rows, columns=["release_id", "risk", "value", "ci_low", "ci_high", "attack_rate",
                                       "baseline_rate", "control_rate", "better_than_baseline"])


def policy_frame(evaluation: StoredEvaluation) -> pd.DataFrame:
    """The policy's verdict on each result: status, statistic read, observed value, threshold crossed, reason."""
    verdicts = (evaluation.policy or {}).get("verdicts", [])
    order = {"fail": 0, "warn": 1, "pass": 2, "skipped": 3}
    rows = [{"metric": v["metric"], "status": v["status"], "statistic": v["statistic"], "observed": v.get("observed"),
             "threshold": v.get("threshold"), "crossed": v.get("comparison"), "reason": v["reason"]} for v in verdicts]
    frame = pd.DataFrame(rows, columns=["metric", "status", "statistic", "observed", "threshold", "crossed", "reason"])
    return frame.sort_values("status", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def empirical_epsilons(evaluation: StoredEvaluation | None) -> list[dict[str, Any]]:
    """Results that estimate epsilon empirically (a lower bound), where the evaluation has any.

    ``limit`` is the largest bound the audit's design could show (the top of the result's range), and
    ``limit_text`` says so: "the audit cannot show more than X".
    """
    if evaluation is None:
        return []
    out = []
    for name, r in evaluation.results.items():
        if "epsilon" not in name or r.get("value") is None:
            continue
        limit = (r.get("range") or [None, None])[1]
        out.append({"name": name, "value": r.get("value"), "ci": r.get("ci"), "notes": r.get("notes") or [], "limit": limit,
                    "limit_text": "" if limit is None else f"the audit cannot show more than {limit:.2f}"})
    return out


def results_matrix(evaluations: dict[str, StoredEvaluation]) -> pd.DataFrame:
    """Every result name (rows) by release (columns): value with its CI, 'skipped: why' or 'not run'."""
    names: list[str] = []
    for ev in evaluations.values():
        names += [n for n in ev.results if n not in names]
    names.sort(key=lambda n: ({"fidelity": 0, "utility": 1, "privacy": 2}.get(n.split(".")[0], 3), n))
    data = {rid: [_ci_text(ev.get(n)) for n in names] for rid, ev in evaluations.items()}
    return pd.DataFrame(data, index=pd.Index(names, name="result"))


def headline(ev: StoredEvaluation | None) -> dict[str, Any]:
    """The numbers of a score card: fidelity, risk level, worst attack AUC, DCR share, exact copies."""
    if ev is None:
        return {}
    aucs = [(r["value"], n.split(".")[2]) for n, r in ev.results.items()
            if n.startswith("privacy.mia.") and n.endswith(".auc") and r.get("value") is not None]
    worst = max(aucs, default=(None, None))
    return {
        "fidelity": ev.fidelity,
        "risk_level": ev.risk_level,
        "mia_auc": worst[0],
        "mia_attack": worst[1],
        "dcr_share": ev.value("privacy.dcr.share_closer_to_train"),
        "exact_copies": ev.value("privacy.exact_copies"),
        "verdict": verdict_text(ev.policy),
    }


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- manifest, verification, reviews ------------------------------------------------------------------------


def manifest_summary(store: Store, release_id: str) -> dict[str, Any]:
    """The manifest's generator, parameters, seed, split parameters, epsilon and, for a DP fit on a sample of patients,
    its rate and budget on the sample (a broken manifest says why).

    Split sizes and fingerprints are private (the catalog's ``release_sources``): the app never reads them.
    """
    try:
        m = read_manifest(store, release_id)
    except ReleaseError as exc:
        return {"error": str(exc)}
    gen = m.get("generator", {})
    split = m.get("source", {}).get("split", {})
    return {
        "generator": gen.get("name"),
        "params": gen.get("params", {}),
        "differentially_private": gen.get("differentially_private"),
        "epsilon": gen.get("epsilon"),
        "delta": gen.get("delta"),
        "fit_sample": (gen.get("privacy_accounting") or {}).get("fit_sample"),  # dp_mst fitted on a Poisson sample
        "seed": m.get("seed"),
        "n_patients": m.get("n_patients"),
        "rows": m.get("rows", {}),
        "created_at": m.get("created_at"),
        "schema": m.get("schema", {}),
        "split_seed": split.get("seed"),
        "holdout_fraction": split.get("holdout_fraction"),
        "library_versions": m.get("library_versions", {}),
    }


def files_signature(store: Store, release_id: str) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of the release's files: changes whenever a file does (a cache key for verify)."""
    try:
        folder = store.release_dir(release_id)
    except ReleaseError:
        return ()
    if not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))


def verify(store: Store, release_id: str) -> VerifyResult:
    """Recompute the release's file hashes against its manifest and the catalog (see ``verify_release``)."""
    result = VerifyResult(release_id)
    try:
        folder = store.release_dir(release_id)
    except ReleaseError as exc:
        result.problems.append(str(exc))
        return result
    if not folder.is_dir():
        result.problems.append(f"the release folder {folder} is missing")
        return result
    return verify_release(store, release_id)


def chain_state(store: Store) -> ChainState:
    """The catalog checked against its hash chain and signed head (every row rehashed)."""
    return _read(store.catalog.chain_state)


def chain_signature(store: Store) -> tuple[int, int, int, int]:
    """(size, mtime_ns) of the catalog and its signed head: changes whenever a write does (a cache key)."""
    stats = [p.stat() if p.exists() else None for p in (store.catalog.path, store.root / HEAD_FILE)]
    return tuple(v for st_ in stats for v in ((st_.st_size, st_.st_mtime_ns) if st_ else (0, 0)))  # type: ignore[return-value]


def chain_problems(store: Store) -> list[str]:
    """What is wrong with the catalog's audit chain (empty: intact); an approval is refused while there is any."""
    return list(chain_state(store).problems)


def submit_review(store: Store, release_id: str, *, identity: Identity | None, decision: str, comment: str = "",
                  override: bool = False, justification: str = "") -> str:
    """Append a decision under the signed-in identity, if the rules allow it (see ``decisions.record_decision``)."""
    return record_decision(store, release_id, identity=identity, decision=decision, comment=comment,
                           override=override, justification=justification)


AUDIT_COLUMNS = ["created_at", "review_id", "release_id", "decision", "display_name", "email", "role", "override",
                 "justification", "comment", "risk_level", "evaluation_id", "manifest_hash", "issuer", "subject"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def reviews_frame(store: Store, release_id: str | None = None) -> pd.DataFrame:
    """The audit trail (oldest first), of one release or of all."""
    rows = _read(lambda: store.catalog.reviews(release_id))
    frame = pd.DataFrame(rows, columns=AUDIT_COLUMNS) if rows else pd.DataFrame(columns=AUDIT_COLUMNS)
    return frame.assign(override=frame["override"].fillna(False).astype(bool))


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would read as a formula (= + - @ tab CR first) gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def audit_csv(store: Store) -> bytes:
    """Every review ever recorded, oldest first, as CSV (UTF-8, one header row), safe to open in a spreadsheet."""
    rows = _read(lambda: store.catalog.reviews())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=AUDIT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        r = {**r, "created_at": r["created_at"].isoformat(sep=" ") if r["created_at"] else ""}
        writer.writerow({k: spreadsheet_safe(v) for k, v in r.items()})
    return buf.getvalue().encode("utf-8")
