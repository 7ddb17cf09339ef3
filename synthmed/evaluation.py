"""Evaluate a release (or folders made by other tools): run the metrics, judge them, store the aggregates.

A release is evaluated against the very train/holdout split it was fitted on: the split parameters in
its manifest (seed, holdout fraction) are redone on ``--data`` and the fingerprints kept in the catalog's
private ``release_sources`` record (never in the manifest) must match, so a member is always a patient
the generator saw and a non-member one it did not. Results go into the catalog in one transaction
(``Catalog.add_evaluation``): an evaluation lands whole or not at all, with the library versions used.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from data_schemas.model import Schema
from evaluate.context import EvalContext, EvalOptions, load_context, read_synthetic
from evaluate.errors import EvaluationError
from evaluate.policy import Policy, PolicyVerdict, apply_policy, load_policy
from evaluate.registry import MetricSpec
from evaluate.result import EvaluationResult, MetricResult
from evaluate.runner import run_metrics
from synth.errors import ReleaseError
from synth.release import Store, read_manifest, release_schema, verify_release

Progress = Callable[[MetricSpec, int, int], None]
SHADOW = "privacy.mia.shadow"
AUDIT = "privacy.audit"


class ReleaseMismatchError(EvaluationError):
    """The data given is not the data the release was fitted on, or the release's files changed."""


@dataclass(frozen=True)
class ShadowBudget:
    """How much the shadow-model attack may spend: generators refitted and targets per class (0 = skip)."""

    models: int = 8
    targets: int = 1000


@dataclass(frozen=True)
class EvaluationOutcome:
    """One evaluation: the results, the policy verdict, the headline fidelity, and where it was stored."""

    evaluation: EvaluationResult
    verdict: PolicyVerdict
    fidelity: float | None
    release_id: str | None = None
    evaluation_id: str | None = None

    @property
    def risk_level(self) -> str:
        return self.verdict.risk_level

    def to_dict(self) -> dict[str, Any]:
        """The JSON printed by ``synthmed evaluate --json``: results, fidelity, risk level and policy."""
        return {
            "release_id": self.release_id,
            "evaluation_id": self.evaluation_id,
            "fidelity": self.fidelity,
            "risk_level": self.verdict.risk_level,
            **self.evaluation.to_dict(),
            "policy": self.verdict.to_dict(),
        }


def judge(evaluation: EvaluationResult, policy: Policy | str | Path | None) -> tuple[PolicyVerdict, float | None]:
    """The policy verdict (default policy when None) and the overall fidelity of an evaluation."""
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    fidelity = None
    if any(r.family == "fidelity" for r in evaluation.results):
        from evaluate.fidelity.summary import overall_fidelity  # lazily: it imports every fidelity metric

        fidelity = overall_fidelity(evaluation)
    return apply_policy(evaluation, pol), fidelity


def evaluate_folders(
    schema: Schema,
    real_dir: str | Path,
    synthetic_dir: str | Path,
    holdout_dir: str | Path | None = None,
    *,
    options: EvalOptions | None = None,
    metrics: list[str] | None = None,
    policy: Policy | str | Path | None = None,
    progress: Progress | None = None,
    engine: str = "duckdb",
    say: Callable[[str], None] | None = None,
) -> EvaluationOutcome:
    """Evaluate synthetic data from any tool against real folders; nothing is stored.

    ``progress`` hears each metric as it starts; ``say`` each table as it is read and checked."""
    ctx = load_context(schema, real_dir, synthetic_dir, holdout_dir, options=options, engine=engine, say=say)
    evaluation = run_metrics(ctx, metrics, progress=progress)
    evaluation = replace(evaluation, summary={**evaluation.summary, "mode": "folders"})
    verdict, fidelity = judge(evaluation, policy)
    return EvaluationOutcome(evaluation, verdict, fidelity)


def release_context(
    store: Store,
    release_id: str,
    data_dir: str | Path,
    *,
    secret: bytes | None = None,
    options: EvalOptions | None = None,
    shadow: ShadowBudget = ShadowBudget(),
    schema_hint: Schema | None = None,
    canaries: int = 0,
    engine: str = "duckdb",
    say: Callable[[str], None] | None = None,
) -> tuple[EvalContext, dict[str, Any]]:
    """The evaluation context of a release: its verified files against the split it was fitted on.

    The schema is the one the release carries (``schema.yaml``, hashed in its manifest), so a release made
    with any schema is evaluated by id from any working folder; ``schema_hint`` serves only releases made
    before releases carried their schema. ``say`` hears each table as it is read and checked."""
    store.catalog.release(release_id)  # a clear error for an unknown id
    check = verify_release(store, release_id)
    if not check.ok:
        raise ReleaseMismatchError(
            f"release {release_id} fails verification, so its files are not what was released: "
            + "; ".join(check.problems)
        )
    manifest = read_manifest(store, release_id)
    try:
        schema = release_schema(store, release_id, fallback=schema_hint)
    except ReleaseError as exc:
        raise ReleaseMismatchError(str(exc)) from None
    public = manifest["source"]["split"]
    private = store.catalog.release_source(release_id)
    if private is None:
        raise ReleaseMismatchError(
            f"the catalog {store.catalog.path} has no private source record of release {release_id} (split sizes and "
            "fingerprints are kept there, never in the manifest; a catalog rebuilt from manifests has none), so "
            "there is no way to check that --data is the data it was fitted on"
        )
    split = json.loads(private["split_json"])
    from evaluate.privacy.mia_shadow import generator_factory  # lazily: folder mode never needs the privacy package
    from synth.pipeline import read_training_input  # lazily: it imports the generators

    data = read_training_input(
        schema, data_dir, secret=secret, split_seed=int(public["seed"]), holdout_fraction=float(public["holdout_fraction"]),
        engine=engine, progress=say,
    )
    for side in ("train", "holdout"):
        if getattr(data.split, f"{side}_fingerprint") != split[f"{side}_fingerprint"]:
            raise ReleaseMismatchError(
                f"{data_dir} is not the data release {release_id} was fitted on: its {side} split has other patients "
                f"({getattr(data.split, f'n_{side}'):,} patients, fingerprint {getattr(data.split, f'{side}_fingerprint')[:12]}; "
                f"the release's has {split[f'n_{side}']:,}, fingerprint {split[f'{side}_fingerprint'][:12]})"
            )
    synthetic, _ = read_synthetic(schema, store.release_dir(release_id), con=data.train.con, say=say)
    opts = options or EvalOptions(seed=int(manifest.get("seed", 0)))
    if shadow.models > 0:
        gen = manifest["generator"]
        params = {
            **opts.params.get(SHADOW, {}),
            "generator_factory": generator_factory(gen["name"], **gen.get("params", {})),
            "n_shadow_models": shadow.models,
            "n_targets": shadow.targets,
        }
        opts = replace(opts, params={**opts.params, SHADOW: params})
    else:
        opts = replace(opts, params={**opts.params, SHADOW: {**opts.params.get(SHADOW, {}), "n_shadow_models": 0}})
    if canaries > 0:  # the one-run canary audit refits the release's generator on train + canaries
        gen = manifest["generator"]
        audit = {
            **opts.params.get(AUDIT, {}),
            "generator_factory": generator_factory(gen["name"], **gen.get("params", {})),
            "n_canaries": canaries,
            "delta": float(gen.get("delta") or 0.0) if gen.get("differentially_private") else 0.0,
        }
        opts = replace(opts, params={**opts.params, AUDIT: audit})
    return EvalContext(schema, data.train.con, data.train, synthetic, data.holdout, opts), manifest


def evaluate_release(
    store: Store,
    release_id: str,
    data_dir: str | Path,
    *,
    secret: bytes | None = None,
    options: EvalOptions | None = None,
    metrics: list[str] | None = None,
    policy: Policy | str | Path | None = None,
    shadow: ShadowBudget = ShadowBudget(),
    progress: Progress | None = None,
    schema_hint: Schema | None = None,
    canaries: int = 0,
    engine: str = "duckdb",
    say: Callable[[str], None] | None = None,
) -> EvaluationOutcome:
    """Evaluate a release on its own split and store the results in the catalog (one transaction).

    ``canaries`` > 0 runs the one-run canary audit (``privacy.audit``) with that many canary patients.
    ``progress`` hears each metric as it starts; ``say`` each table as it is read and checked.
    """
    store.preflight()  # a catalog that could not take the evaluation fails before the metrics run
    if canaries > 0 and metrics is not None and AUDIT not in metrics:
        metrics = [*metrics, AUDIT]
    ctx, _ = release_context(store, release_id, data_dir, secret=secret, options=options, shadow=shadow,
                             schema_hint=schema_hint, canaries=canaries, engine=engine, say=say)
    try:
        evaluation = run_metrics(ctx, metrics, progress=progress)
        evaluation = replace(evaluation, summary={**evaluation.summary, "mode": "release"})
    finally:
        ctx.con.close()
    verdict, fidelity = judge(evaluation, policy)
    evaluation_id = store.catalog.add_evaluation(
        release_id,
        results=[r.to_dict() for r in evaluation.results],
        seed=evaluation.seed,
        versions=evaluation.versions,
        summary={**evaluation.summary, "metrics": metrics or "all", "shadow_budget": {"models": shadow.models, "targets": shadow.targets},
                 "canary_audit": {"canaries": canaries}},
        fidelity=fidelity,
        risk_level=verdict.risk_level,
        policy=verdict.to_dict(),
    )
    return EvaluationOutcome(evaluation, verdict, fidelity, release_id=release_id, evaluation_id=evaluation_id)


def stored_evaluation(store: Store, release_id: str) -> tuple[EvaluationResult, dict[str, Any]]:
    """The latest stored evaluation of a release (as typed results) and its catalog row."""
    rows = store.catalog.evaluations(release_id)
    if not rows:
        store.catalog.release(release_id)
        raise EvaluationError(
            f"release {release_id} has no evaluation yet: run `synthmed evaluate {release_id} --data DIR` first"
        )
    row = rows[0]
    results = tuple(MetricResult.from_dict(d) for d in store.catalog.metric_results(row["evaluation_id"]))
    return EvaluationResult(results, seed=int(row["seed"]), versions=json.loads(row["versions_json"] or "{}"),
                            summary=json.loads(row["summary_json"] or "{}")), row


@dataclass(frozen=True)
class ScoreRow:
    """One line of the short scorecard printed by ``synthmed evaluate`` and ``synthmed demo``."""

    label: str
    value: str
    ci: str
    verdict: str


SCORECARD: tuple[tuple[str, str], ...] = (
    ("fidelity.column_shapes", "column shapes"),
    ("fidelity.column_pair_trends", "column pair trends"),
    ("fidelity.detection.gbt", "detection score (GBT; 1 = indistinguishable)"),
    ("fidelity.rule_violations", "rule violations (share of rows)"),
    ("utility.ratio", "utility TSTR / TRTR"),
    ("privacy.exact_copies", "exact copies of train"),
    ("privacy.dcr.share_closer_to_train", "DCR share closer to train (0.5 ideal)"),
    ("privacy.dcr.near_copy_share", "near-copies of train (estimated share; 0 ideal)"),
    ("privacy.mia.distance.auc", "MIA distance AUC"),
    ("privacy.mia.domias.auc", "MIA DOMIAS AUC"),
    ("privacy.mia.shadow.auc", "MIA shadow-model AUC"),
    ("privacy.singling_out.risk", "singling-out risk"),
    ("privacy.linkability.risk", "linkability risk"),
    ("privacy.attribute_inference.risk", "attribute-inference risk"),
    ("privacy.epsilon_lower_bound", "empirical epsilon lower bound"),
)


def scorecard(outcome: EvaluationOutcome) -> list[ScoreRow]:
    """Headline fidelity, utility and privacy numbers side by side, with the policy's verdict on each."""
    verdicts = {v.metric: v.status for v in outcome.verdict.verdicts}
    rows = [ScoreRow("overall fidelity", "-" if outcome.fidelity is None else f"{outcome.fidelity:.3f}", "", "")]
    for name, label in SCORECARD:
        r = outcome.evaluation.get(name)
        if r is None:
            continue
        if r.value is None:
            reason = r.skipped[0].reason if r.skipped else "not computed"
            rows.append(ScoreRow(label, "skipped", reason[:60], verdicts.get(name, "")))
            continue
        ci = f"[{r.ci.low:.3f}, {r.ci.high:.3f}]" if r.ci is not None else ""
        if name == "privacy.epsilon_lower_bound" and r.range is not None:  # a lower bound: say how high it could go
            ci = f"the audit cannot show more than {r.range[1]:.2f}"
        rows.append(ScoreRow(label, f"{r.value:.3f}", ci, verdicts.get(name, "")))
    return rows


def write_report(store: Store, release_id: str, output: str | Path) -> Path:
    """Write the HTML report of a release's latest evaluation (aggregates only) atomically to ``output``."""
    from evaluate.report import render_report

    evaluation, row = stored_evaluation(store, release_id)
    manifest = read_manifest(store, release_id)
    policy = json.loads(row["policy_json"]) if row.get("policy_json") else None
    html = render_report(evaluation, title=f"synthmed release {release_id}", manifest=manifest, policy=policy)
    path = Path(output)
    if path.is_dir():
        raise EvaluationError(f"{path} is a folder; give the report's file name, e.g. {path / 'report.html'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
