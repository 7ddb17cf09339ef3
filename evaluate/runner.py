"""Run registered metrics on one evaluation context and collect typed results with the versions used."""
from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from evaluate.context import EvalContext
from evaluate.registry import MetricSpec, select
from evaluate.result import EvaluationResult, MetricResult, skipped_result

# the registry fills itself on ``select``: only the metric families a selection names are imported

VERSIONED = ("synthmed", "duckdb", "polars", "numpy", "scipy", "scikit-learn", "sdv", "pandas")


def library_versions() -> dict[str, str]:
    """Versions of the libraries results depend on, recorded with every evaluation."""
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_metrics(
    ctx: EvalContext,
    metrics: list[str] | None = None,
    *,
    progress: Callable[[MetricSpec, int, int], None] | None = None,
) -> EvaluationResult:
    """Every selected metric's results; metrics needing a missing holdout are reported as skipped."""
    specs = select(metrics)
    results: list[MetricResult] = []
    for i, spec in enumerate(specs):
        if progress:
            progress(spec, i, len(specs))
        if spec.needs_holdout and ctx.holdout is None:
            goal = "minimize" if spec.family == "privacy" else "maximize"
            results.extend(
                skipped_result(name, spec.family, goal, "needs a real holdout set (--holdout) that was not given")
                for name in spec.produces
            )
            continue
        results.extend(spec.fn(ctx))
    return EvaluationResult(tuple(results), seed=ctx.options.seed, versions=library_versions())
