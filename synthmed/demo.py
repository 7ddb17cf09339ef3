"""``synthmed demo``: simulate the kr_claims demo population, validate it, pseudonymise and split it."""
from __future__ import annotations

import os
import secrets
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text

from data_schemas.io import load_schema
from synth.demo_population import simulate
from synth.errors import DataValidationError, MissingSecretError
from synth.load import frames_to_dataset, read_dataset
from synth.pipeline import release
from synth.prepare import PreparedData, prepare
from synth.release import ReleaseInfo, Store
from synth.pseudonymise import SECRET_ENV, load_secret
from synth.store import resolve_store
from synthmed.evaluation import EvaluationOutcome, ShadowBudget, evaluate_release, scorecard
from evaluate.context import EvalOptions

DEMO_SCHEMA = "kr_claims"
DEMO_TARGET = "claims.care_type"
"""The column the demo's utility metric predicts (TSTR vs TRTR)."""
DEMO_SHADOW = ShadowBudget(models=2, targets=30)
"""A small shadow-model budget so the demo stays a few minutes long."""
DEMO_GENERATORS: tuple[tuple[str, dict[str, object]], ...] = (
    ("cart", {"min_patients": 5}),
    ("gaussian_copula", {"min_patients": 5}),
)
"""The winning generator of the cohort benchmark (benchmarks/bench_cohorts.py) and the fast statistical baseline,
both emitting no category or code held by fewer than 5 training patients (the rare-code rule)."""


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its data and what it found."""

    store: Path
    raw_dir: Path
    prepared: PreparedData
    rows: dict[str, int]
    releases: list[ReleaseInfo] = field(default_factory=list)
    evaluations: list[EvaluationOutcome] = field(default_factory=list)


def _demo_secret(demo_dir: Path, console: Console | None) -> bytes:
    """The user's key when given; else a random key kept beside the simulated data (demo only)."""
    try:
        return load_secret(None)
    except MissingSecretError:
        pass
    key_file = demo_dir / "demo-secret.key"
    if not key_file.exists():
        demo_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        if console:
            console.print(
                f"no {SECRET_ENV} set: generated a random pseudonymisation key for the simulated demo in {key_file} "
                "(real data always needs your own key)"
            )
    return load_secret(key_file)


def run_demo(
    *, patients: int = 10_000, seed: int = 0, store: str | Path | None = None, console: Console | None = None,
    out: Console | None = None,
    generators: tuple[tuple[str, dict[str, object]], ...] = DEMO_GENERATORS,
    evaluate: bool = True,
) -> DemoResult:
    """Simulate, write, validate, pseudonymise and split the demo population; print a summary."""
    store_dir = resolve_store(store)
    demo_dir = store_dir / "demo"
    raw_dir = demo_dir / "raw"
    schema = load_schema(DEMO_SCHEMA)

    def step(text: str) -> AbstractContextManager[object]:
        """A spinner while a step runs, or nothing when quiet."""
        return console.status(text) if console else nullcontext()

    with step(f"simulating {patients:,} patients (seed {seed})"):
        frames = simulate(patients, seed=seed)
        dataset, report = frames_to_dataset(schema, frames, source="simulated kr_claims")
        if not report.ok:
            raise DataValidationError(report)
        dataset.write(raw_dir)
    with step("validating the written files against the kr_claims schema"):
        dataset, report = read_dataset(schema, raw_dir)
        if not report.ok:
            raise DataValidationError(report)
    secret = _demo_secret(demo_dir, console)
    with step("pseudonymising direct identifiers and splitting patients"):
        prepared = prepare(dataset, demo_dir / "prepared", secret=secret, seed=seed)
    result = DemoResult(store_dir, raw_dir, prepared, report.rows)
    store_obj = Store(store_dir)
    for name, params in generators:
        with step(f"release with {name}: fitting on {prepared.split.n_train:,} training patients") as status:
            def progress(message: str, _status: object = status, _name: str = name) -> None:
                if hasattr(_status, "update"):
                    _status.update(f"release with {_name}: {message}")

            info = release(
                schema, prepared.folder, generator=name, params=dict(params), store=store_obj, seed=seed, progress=progress
            )
        result.releases.append(info)
        if console:
            console.print(f"wrote release {info.release_id}")
        if evaluate:
            with step(f"evaluating {info.release_id}: fidelity, utility and privacy") as status:
                def metric_progress(spec: object, i: int, n: int, _status: object = status, _id: str = info.release_id) -> None:
                    if hasattr(_status, "update"):
                        _status.update(f"evaluating {_id}: [{i + 1}/{n}] {getattr(spec, 'name', spec)}")

                outcome = evaluate_release(
                    store_obj, info.release_id, prepared.folder, options=EvalOptions(seed=seed, target=DEMO_TARGET),
                    shadow=DEMO_SHADOW, progress=metric_progress,
                )
            result.evaluations.append(outcome)
            if console:
                console.print(f"stored evaluation {outcome.evaluation_id} (risk {outcome.risk_level})")
    if out is not None:
        _summary(out, result)
    return result


def _summary(out: Console, result: DemoResult) -> None:
    rec = result.prepared.split
    out.print(f"[bold]synthmed demo[/bold]: kr_claims population in {escape(str(result.raw_dir))} (valid)", markup=True)
    table = RichTable("table", "rows", "train", "holdout")
    for name, rows in result.rows.items():
        table.add_row(
            name, f"{rows:,}", f"{result.prepared.rows['train'][name]:,}", f"{result.prepared.rows['holdout'][name]:,}"
        )
    out.print(table)
    out.print(
        f"patients split {rec.n_train:,} train / {rec.n_holdout:,} holdout (seed {rec.seed}); "
        f"prepared data in {result.prepared.folder}"
    )
    hashed = ", ".join(f"{t}.{c}" for t, cols in result.prepared.pseudonymisation.hashed.items() for c in cols)
    emptied = ", ".join(f"{t}.{c}" for t, cols in result.prepared.pseudonymisation.emptied.items() for c in cols)
    out.print(f"pseudonymised: {hashed}; emptied: {emptied}")
    for info in result.releases:
        rows = ", ".join(f"{t} {n:,}" for t, n in info.manifest["rows"].items())
        out.print(f"release [bold]{escape(info.release_id)}[/bold] ({escape(info.manifest['generator']['name'])}): {escape(rows)}",
                  markup=True)
    if result.evaluations:
        _scorecards(out, result)


def _scorecards(out: Console, result: DemoResult) -> None:
    """Fidelity and risk of every demo release side by side, then each policy verdict."""
    cards = [scorecard(e) for e in result.evaluations]
    names = [info.manifest["generator"]["name"] for info in result.releases[: len(cards)]]
    table = RichTable("scorecard", *names, title="fidelity and privacy of the demo releases")
    labels = list(dict.fromkeys(row.label for card in cards for row in card))
    for label in labels:
        cells = []
        for card in cards:
            row = next((r for r in card if r.label == label), None)
            shown = row is not None and row.verdict and row.verdict != row.value  # not "skipped (skipped)"
            cells.append("-" if row is None else row.value + (f" ({row.verdict})" if shown else ""))
        table.add_row(label, *cells)
    colour = {"low": "green", "medium": "yellow", "high": "red"}
    table.add_row("overall risk (policy)", *[Text(e.risk_level, style=colour[e.risk_level]) for e in result.evaluations])
    out.print(table)
    for info, e in zip(result.releases, result.evaluations):
        out.print(f"{info.release_id}: risk {e.risk_level}", markup=False)
        for reason in e.verdict.reasons:  # the findings, then what was not checked and why
            out.print(f"  {reason}", markup=False)
    out.print("next: `synthmed report RELEASE_ID -o report.html`, `synthmed app` to review, `synthmed releases list`")
