"""Long neural fits made visible and bounded: epoch progress (loss, elapsed, ETA) and a wall-clock cap.

CTGAN, TVAE (package ``ctgan``) and PAR (``deepecho``) loop over epochs with a ``tqdm`` iterator and
write the loss into its description. While ``watch_epochs`` is active that iterator is replaced by one
that reports every epoch through our progress callback and stops yielding epochs once the deadline
has passed (after at least one), so the fit ends early with a usable model instead of running on.
A fit that would plainly not finish in reasonable time is refused up front (``check_budget``).
"""
from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from synth.errors import GeneratorError

Progress = Callable[[str], None]
# modules whose epoch loop iterates over ``tqdm(range(epochs))``
EPOCH_MODULES = ("ctgan.synthesizers.ctgan", "ctgan.synthesizers.tvae", "deepecho.models.par")
# row-epochs a CPU fit gets through in about 30 minutes on 2 cores (measured on the demo population: CTGAN
# did not finish 5 epochs of ~200k rows in 20 min); above it without a time cap a fit is refused
ROW_EPOCH_LIMIT = 1_500_000


class _Epochs:
    """``tqdm(range(n))`` stand-in: reports each finished epoch, stops at the deadline."""

    def __init__(self, iterable: Any, label: str, progress: Progress, deadline: float | None, state: dict[str, Any]) -> None:
        self.items = list(iterable)
        self.label, self.progress, self.deadline, self.state = label, progress, deadline, state
        self.description = ""

    def set_description(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.description = text

    def __iter__(self) -> Iterator[Any]:
        n = len(self.items)
        started = time.monotonic()
        for i, item in enumerate(self.items):
            yield item
            done = i + 1
            elapsed = time.monotonic() - started
            eta = elapsed / done * (n - done)
            loss = f", {self.description}" if self.description else ""
            self.progress(f"{self.label}: epoch {done}/{n}{loss}, {elapsed:.0f} s, ETA {eta:.0f} s")
            self.state["epochs"] = self.state.get("epochs", 0) + 1
            if self.deadline is not None and done < n and time.monotonic() >= self.deadline:
                self.state["stopped"] = self.state.get("stopped", 0) + 1
                self.progress(f"{self.label}: stopped after epoch {done}/{n}: the time cap (max_time) is reached")
                return


@contextlib.contextmanager
def watch_epochs(label: str, progress: Progress, deadline: float | None, state: dict[str, Any]) -> Iterator[None]:
    """Within the block, epoch loops of CTGAN / TVAE / PAR report progress and end at ``deadline``."""
    saved: list[tuple[Any, Any]] = []
    try:
        for name in EPOCH_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            saved.append((module, module.tqdm))
            module.tqdm = lambda iterable=None, *a, **k: _Epochs(iterable, label, progress, deadline, state)
        yield
    finally:
        for module, original in saved:
            module.tqdm = original


def check_max_time(owner: str, max_time: Any) -> float | None:
    """A valid ``max_time`` (seconds) or None; anything else raises with the parameter's rule."""
    if max_time is None:
        return None
    if isinstance(max_time, bool) or not isinstance(max_time, (int, float)) or max_time <= 0:
        raise GeneratorError(f"The 'max_time' parameter of {owner} must be a number of seconds > 0 or None; got {max_time!r} instead.")
    return float(max_time)


def check_budget(owner: str, row_epochs: int, max_time: float | None) -> None:
    """Refuse a neural fit of more than ``ROW_EPOCH_LIMIT`` row-epochs without a time cap (it would run for hours)."""
    if max_time is None and row_epochs > ROW_EPOCH_LIMIT:
        raise GeneratorError(
            f"{owner} would train {row_epochs:,} row-epochs (rows x epochs over its tables), more than the "
            f"{ROW_EPOCH_LIMIT:,} a 2-core machine gets through in about 30 minutes; pass max_time (seconds, "
            "`--max-time` on the command line) to stop at a deadline, or fewer epochs / max_rows_per_table"
        )
