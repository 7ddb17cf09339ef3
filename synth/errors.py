"""Exceptions of the synth package, named by failure mode."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synth.validation import ValidationReport


class SynthError(Exception):
    """Base class: every failure synthmed reports to a user without a traceback."""


class DataValidationError(SynthError):
    """Data does not conform to its schema; carries the full report."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.render())


class MissingSecretError(SynthError):
    """Pseudonymisation was asked for without a user-supplied secret key."""


class SplitError(SynthError):
    """A train/holdout split cannot be made or does not match its record."""


class DataDirError(SynthError):
    """A data folder is missing or unusable."""
