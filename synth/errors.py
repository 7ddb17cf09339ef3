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


class CheckTimeoutError(SynthError):
    """A check on data (a rule, a key) ran past its time limit and was interrupted."""


class SpillConfigError(SynthError):
    """``SYNTHMED_MEMORY_LIMIT`` or ``SYNTHMED_TEMP_DIR`` (DuckDB's memory budget and spill folder) cannot be used."""


class PreparedDataError(SynthError):
    """A prepared folder (train/, holdout/, split.json) does not match its split record, or cannot be written."""


class GeneratorError(SynthError):
    """A generator cannot be built, fitted, sampled or loaded as asked."""


class NotFittedError(GeneratorError, ValueError, AttributeError):
    """A generator was used before ``fit`` (subclasses ValueError and AttributeError, as in scikit-learn)."""


class UnknownGeneratorError(GeneratorError, LookupError):
    """A generator name that is not registered."""


class ReleaseError(SynthError):
    """A release cannot be written, found or verified."""


class CatalogError(SynthError):
    """The catalog cannot be opened or is inconsistent."""


class CatalogLockedError(CatalogError):
    """Another process holds the catalog's lock (longer than this one would wait)."""
