"""The privacy suite in one call, for the command line and the demo: every privacy metric, then the policy.

    from evaluate.privacy.suite import run_privacy
    report = run_privacy(ctx, policy=None)          # default policy; or a path to a YAML policy
    json.dumps(report.to_dict())                    # {"results": [...], "risk_level": "low", "policy": {...}, ...}

For a release, pass the release's generator so the shadow-model attack can refit it::

    from evaluate.privacy.mia_shadow import generator_factory
    options = EvalOptions(seed=..., params={"privacy.mia.shadow": {"generator_factory": generator_factory(name, **params)}})
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluate.context import EvalContext
from evaluate.policy import Policy, PolicyVerdict, apply_policy, load_policy
from evaluate.registry import MetricSpec
from evaluate.result import EvaluationResult
from evaluate.runner import run_metrics


@dataclass(frozen=True)
class PrivacyReport:
    """Privacy results of one evaluation and the policy verdict on them."""

    evaluation: EvaluationResult
    verdict: PolicyVerdict

    @property
    def risk_level(self) -> str:
        return self.verdict.risk_level

    def to_dict(self) -> dict[str, Any]:
        """The evaluation's JSON form plus ``risk_level`` and ``policy`` (the verdict)."""
        return {**self.evaluation.to_dict(), "risk_level": self.verdict.risk_level, "policy": self.verdict.to_dict()}


def run_privacy(
    ctx: EvalContext,
    *,
    policy: Policy | str | Path | None = None,
    metrics: list[str] | None = None,
    progress: Callable[[MetricSpec, int, int], None] | None = None,
) -> PrivacyReport:
    """Run the privacy metrics (all by default) on ``ctx`` and judge them with ``policy`` (default policy)."""
    evaluation = run_metrics(ctx, metrics or ["privacy"], progress=progress)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    return PrivacyReport(evaluation, apply_policy(evaluation, pol))
