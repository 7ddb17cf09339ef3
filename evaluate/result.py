"""Typed metric results (design.md, "Metric"): name, value, CI, goal, range, details of aggregates only.

A metric never hides a column it could not score: it lists it in ``skipped`` with the reason.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Goal = Literal["maximize", "minimize"]
Family = Literal["fidelity", "utility", "privacy"]


@dataclass(frozen=True)
class Interval:
    """A confidence interval at ``level`` (two-sided)."""

    low: float
    high: float
    level: float = 0.95


@dataclass(frozen=True)
class Skipped:
    """A table or column a metric could not score, and why."""

    reason: str
    table: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class MetricResult:
    """One number a metric produced, with how to read it and the aggregates behind it.

    ``value`` is None only when the metric was skipped as a whole (``skipped`` says why); it is never NaN.
    ``details`` rows are aggregates (per column, per bin, per attack point), never real records.
    """

    name: str
    family: Family
    value: float | None
    goal: Goal
    range: tuple[float, float] = (0.0, 1.0)
    ci: Interval | None = None
    n: int | None = None
    details: tuple[dict[str, Any], ...] = ()
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.value is not None and (not isinstance(self.value, (int, float)) or math.isnan(self.value)):
            raise ValueError(f"metric {self.name!r} produced a non-numeric value {self.value!r}; skip it instead")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ci as [low, high] or null, details as a list of objects."""
        data = asdict(self)
        data["ci"] = None if self.ci is None else [self.ci.low, self.ci.high]
        data["ci_level"] = None if self.ci is None else self.ci.level
        data["range"] = list(self.range)
        data["details"] = [dict(d) for d in self.details]
        data["skipped"] = [asdict(s) for s in self.skipped]
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricResult:
        """The result back from its ``to_dict`` form (as stored in the catalog)."""
        ci = data.get("ci")
        low, high = data.get("range") or (0.0, 1.0)
        return cls(
            name=data["name"],
            family=data["family"],
            value=data.get("value"),
            goal=data["goal"],
            range=(float(low), float(high)),
            ci=None if not ci else Interval(ci[0], ci[1], data.get("ci_level") or 0.95),
            n=data.get("n"),
            details=tuple(data.get("details") or ()),
            skipped=tuple(Skipped(**s) for s in data.get("skipped") or ()),
            notes=tuple(data.get("notes") or ()),
            seed=data.get("seed"),
        )


def skipped_result(name: str, family: Family, goal: Goal, reason: str, *, range: tuple[float, float] = (0.0, 1.0)) -> MetricResult:
    """A result for a metric that could not run at all (e.g. needs a holdout that was not given)."""
    return MetricResult(name=name, family=family, value=None, goal=goal, range=range, skipped=(Skipped(reason),))


@dataclass(frozen=True)
class EvaluationResult:
    """All results of one evaluation run, with the settings and library versions used."""

    results: tuple[MetricResult, ...]
    seed: int
    versions: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> MetricResult | None:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [r.to_dict() for r in self.results],
            "seed": self.seed,
            "versions": self.versions,
            "summary": self.summary,
        }
