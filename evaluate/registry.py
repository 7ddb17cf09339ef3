"""The metric registry: an explicit dict filled by a decorator (style.md, rule 8)."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from evaluate.context import EvalContext
from evaluate.errors import UnknownMetricError
from evaluate.result import Family, MetricResult

MetricFn = Callable[[EvalContext], list[MetricResult]]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: the results it produces and what it needs."""

    name: str
    family: Family
    fn: MetricFn
    description: str
    produces: tuple[str, ...]
    needs_holdout: bool = False


METRICS: dict[str, MetricSpec] = {}


def metric(
    name: str, *, family: Family, description: str, produces: tuple[str, ...] = (), needs_holdout: bool = False
) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` under ``name``; ``produces`` lists result names (defaults to ``name``)."""

    def wrap(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = MetricSpec(name, family, fn, description, produces or (name,), needs_holdout)
        return fn

    return wrap


def select(patterns: list[str] | None = None) -> list[MetricSpec]:
    """Registered metrics matching names, prefixes (``privacy``) or globs (``fidelity.*``); all by default."""
    specs = list(METRICS.values())
    if not patterns:
        return specs
    chosen: list[MetricSpec] = []
    for pattern in patterns:
        hits = [
            s
            for s in specs
            if s.name == pattern
            or s.name.startswith(pattern + ".")
            or fnmatch.fnmatch(s.name, pattern)
            or pattern in s.produces
        ]
        if not hits:
            raise UnknownMetricError(f"no metric matches {pattern!r}; known: {', '.join(sorted(METRICS))}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
