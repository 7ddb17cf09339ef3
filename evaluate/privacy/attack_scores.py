"""Membership-attack scores kept for the lifetime of an evaluation context, so later metrics can reuse them.

The attacks (``mia_distance``, ``mia_domias``, ``mia_shadow``) remember the scores they gave their
targets; the empirical epsilon audit (``audit.py``) reads them instead of attacking again. Scores
are held in memory only while the context lives (never written anywhere), like ``inputs.py``.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluate.context import EvalContext


@dataclass(frozen=True)
class AttackScores:
    """An attack's scores on its targets (higher = member) and the targets' membership labels."""

    attack: str
    scores: np.ndarray
    labels: np.ndarray


_STORE: dict[int, tuple[weakref.ref[Any], dict[str, AttackScores]]] = {}


def remember(ctx: EvalContext, attack: str, scores: np.ndarray, labels: np.ndarray) -> None:
    """Keep ``attack``'s scores for ``ctx`` (replacing earlier ones)."""
    hit = _STORE.get(id(ctx))
    if hit is None or hit[0]() is not ctx:
        hit = (weakref.ref(ctx), {})
        _STORE[id(ctx)] = hit
        weakref.finalize(ctx, _STORE.pop, id(ctx), None)
    hit[1][attack] = AttackScores(attack, np.asarray(scores, dtype=np.float64).copy(), np.asarray(labels, dtype=bool).copy())


def remembered(ctx: EvalContext, attack: str) -> AttackScores | None:
    """The scores ``attack`` gave on ``ctx``, if it ran."""
    hit = _STORE.get(id(ctx))
    if hit is None or hit[0]() is not ctx:
        return None
    return hit[1].get(attack)
