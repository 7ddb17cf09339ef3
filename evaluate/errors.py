"""Exceptions of the evaluate package, named by failure mode."""
from __future__ import annotations


class EvaluationError(Exception):
    """Base class for evaluation failures reported to the user without a traceback."""


class UnknownMetricError(EvaluationError, LookupError):
    """A metric name that is not registered."""


class EmptyInputError(EvaluationError, ValueError):
    """A metric was given no rows (or only nulls) where it needs some."""


class SchemaMismatchError(EvaluationError, ValueError):
    """Real and synthetic data do not share the schema the metric needs."""
