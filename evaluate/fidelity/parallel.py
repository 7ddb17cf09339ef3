"""Independent columns or sides counted in threads: numpy's and Arrow's kernels (bincount, sort,
searchsorted, casts, compute functions) release the GIL, so two cores count two columns at once
(1.7x-2x per kernel on this project's 2-core machines). Results come back in input order, so a
metric's value does not depend on the thread count."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    """Threads for column work: the cores this process may use (at most 4), or ``SYNTHMED_THREADS``."""
    configured = os.environ.get("SYNTHMED_THREADS", "").strip()
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, available))


def parallel_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, run on ``workers()`` threads when there is more than one item."""
    items = list(items)
    n = min(workers(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, items))
