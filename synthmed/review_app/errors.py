"""Exceptions of the review app, named by failure mode."""
from __future__ import annotations

from synth.errors import SynthError


class ReviewRefusedError(SynthError):
    """A review that cannot be recorded as asked; ``problems`` says every reason."""

    def __init__(self, release_id: str, problems: list[str]) -> None:
        self.release_id = release_id
        self.problems = list(problems)
        super().__init__(f"review of {release_id} not recorded: " + "; ".join(self.problems))


class ReviewConfigError(SynthError):
    """The store's review settings (``<store>/review.toml``) cannot be read or are invalid."""


class SignInConfigError(SynthError):
    """The sign-in settings (Streamlit's ``[auth]`` section) are missing something or unsafe."""


class ServeError(SynthError):
    """``synthmed app`` refuses to start as asked (e.g. serving other machines without sign-in)."""
