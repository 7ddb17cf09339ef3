"""The headline fidelity number shown by the demo scorecard and the app."""
from __future__ import annotations

import math

from evaluate.result import EvaluationResult

HEADLINE = ("fidelity.column_shapes", "fidelity.column_pair_trends")
"""The results the overall fidelity score averages (SDMetrics' QualityReport averages the same two)."""


def overall_fidelity(evaluation: EvaluationResult) -> float | None:
    """Mean of Column Shapes and Column Pair Trends over those that were computed; None when neither was.

    A skipped part is left out (and is visible in its own result), never counted as NaN.
    """
    values = [r.value for name in HEADLINE if (r := evaluation.get(name)) is not None and r.value is not None]
    if not values:
        return None
    return math.fsum(values) / len(values)
