"""The metric registry: an explicit dict filled by a decorator (style.md, rule 8)."""
from __future__ import annotations

import fnmatch
import importlib
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


FAMILIES = {"fidelity": "evaluate.fidelity", "privacy": "evaluate.privacy", "utility": "evaluate.utility"}
"""The package of each family: importing it registers its metrics."""


def load_families(patterns: list[str] | None = None) -> None:
    """Import the metric packages a selection needs: only ``privacy`` for ``privacy.dcr``, every family otherwise.

    A command that scores privacy alone then never imports the fidelity and utility metrics (scikit-learn,
    scipy.stats), which took a third of the start-up time of ``synthmed evaluate --metrics privacy...``.
    """
    heads = {p.split(".", 1)[0] for p in patterns or []}
    wanted = [FAMILIES[h] for h in heads] if patterns and heads <= FAMILIES.keys() else list(FAMILIES.values())
    for module in wanted:
        importlib.import_module(module)


def select(patterns: list[str] | None = None) -> list[MetricSpec]:
    """Registered metrics matching names, prefixes (``privacy``) or globs (``fidelity.*``); all by default."""
    load_families(patterns)
    order = list(FAMILIES)
    # the same order whichever families a process imported first: by family, then as registered
    specs = sorted(METRICS.values(), key=lambda s: order.index(s.family) if s.family in order else len(order))
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
            load_families(None)  # a name of another family, or a typo: list every known metric
            hits = [s for s in METRICS.values() if s.name == pattern or s.name.startswith(pattern + ".")
                    or fnmatch.fnmatch(s.name, pattern) or pattern in s.produces]
        if not hits:
            raise UnknownMetricError(f"no metric matches {pattern!r}; known: {', '.join(sorted(METRICS))}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
