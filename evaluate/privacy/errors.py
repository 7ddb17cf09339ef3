"""Exceptions of the privacy evaluator, named by failure mode (style.md, rule 7).

``EmptyInputError`` (no rows where some are needed) lives in ``evaluate.errors`` and is re-exported here.
"""
from __future__ import annotations

from evaluate.errors import EmptyInputError, EvaluationError

__all__ = ["EmptyInputError", "InvalidParameterError", "ShadowModelError"]


class InvalidParameterError(EvaluationError, ValueError):
    """A privacy metric parameter outside its allowed range; the message names parameter, range and value."""


class ShadowModelError(EvaluationError, RuntimeError):
    """The generator factory of the shadow-model attack did not return a usable generator."""
