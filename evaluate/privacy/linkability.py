"""Linkability risk in the style of Anonymeter (Giomi et al., PoPETs 2023).

The attacker holds two datasets about the same people with different columns (``aux_cols``: two
lists) and uses the synthetic data to join them: a target is linked when its closest synthetic
records by the first columns and by the second columns share a record (among the ``n_neighbors``
closest of each). Distances are Anonymeter's Gower-style mixed distance (L1 on numbers divided by
their range, 1 per category mismatch).

* attack rate: share of ``n_attacks`` training targets linked;
* control rate: the same for holdout targets;
* baseline rate: links made by picking synthetic records at random;
* risk: ``(attack - control) / (1 - control)`` with its CI.

Default columns: the patient table's quasi-identifiers against the other non-sensitive record
columns (what a data broker and a second source would typically hold); when either side is empty,
the record columns split in two halves. Ties in distance go to the lower synthetic index.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.attack_data import MixedFrame, attack_features, attack_frames, empty_columns, range_scaled, risk_result
from evaluate.privacy.distances import gower_neighbours
from evaluate.privacy.errors import InvalidParameterError
from evaluate.privacy.inputs import PrivacyInputs, privacy_inputs, rng_for
from evaluate.privacy.params import check_columns, check_int, confidence_param, get_param
from evaluate.privacy.stats import PrivacyRisk, privacy_risk
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped, skipped_result

NAME = "privacy.linkability"
RESULT = "privacy.linkability.risk"


def default_aux_cols(inputs: PrivacyInputs, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Quasi-identifiers vs the other non-sensitive columns; else the columns split in two halves."""
    feats = {f.name: f for f in attack_features(inputs)}
    qi = [c for c in columns if feats[c].privacy == "quasi_identifier"]
    rest = [c for c in columns if feats[c].privacy not in ("quasi_identifier", "sensitive")]
    if qi and rest:
        return qi, rest
    half = max(1, len(columns) // 2)
    return list(columns[:half]), list(columns[half:])


def _neighbours(targets: MixedFrame, syn: MixedFrame, scaled_t: np.ndarray, scaled_s: np.ndarray, k: int) -> np.ndarray:
    return gower_neighbours(scaled_t, targets.categorical, scaled_s, syn.categorical, k=k)


def count_links(idx_a: np.ndarray, idx_b: np.ndarray) -> int:
    """Targets whose two neighbour sets share at least one synthetic record."""
    return int(sum(bool(set(a.tolist()) & set(b.tolist())) for a, b in zip(idx_a, idx_b)))


def linkability_risk(
    ori: MixedFrame,
    syn: MixedFrame,
    control: MixedFrame | None,
    aux_cols: tuple[Sequence[str], Sequence[str]],
    *,
    n_attacks: int = 500,
    n_neighbors: int = 1,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> tuple[PrivacyRisk, dict[str, Any]]:
    """The linkability risk of ``syn`` for ``ori`` against ``control`` (see the module docstring)."""
    if syn.n_rows == 0 or ori.n_rows == 0 or (control is not None and control.n_rows == 0):
        raise EmptyInputError("linkability needs original, synthetic and control records")
    n = min(n_attacks, ori.n_rows, control.n_rows if control is not None else ori.n_rows)
    k = min(n_neighbors, syn.n_rows)
    t_ori = ori.take(np.sort(rng.choice(ori.n_rows, size=n, replace=False)))
    t_ctrl = control.take(np.sort(rng.choice(control.n_rows, size=n, replace=False))) if control is not None else None
    successes: dict[str, int] = {}
    for label, targets in (("attack", t_ori), ("control", t_ctrl)):
        if targets is None:
            continue
        found = []
        for cols in aux_cols:
            t, s = targets.select(cols), syn.select(cols)
            st, ss = range_scaled([t, s])
            found.append(_neighbours(t, s, st, ss, k))
        successes[label] = count_links(found[0], found[1])
    rand_a = np.stack([rng.choice(syn.n_rows, size=k, replace=False) for _ in range(n)])
    rand_b = np.stack([rng.choice(syn.n_rows, size=k, replace=False) for _ in range(n)])
    n_baseline = count_links(rand_a, rand_b)
    risk = privacy_risk(n_success=successes["attack"], n_attacks=n, n_baseline=n_baseline,
                        n_control=successes.get("control"), confidence=confidence)
    return risk, {"n_attacks": n, "n_neighbors": k, "n_synthetic": syn.n_rows}


@metric(NAME, family="privacy", description="Anonymeter-style linkability risk with baseline and control",
        produces=(RESULT,), needs_holdout=True)
def linkability(ctx: EvalContext) -> list[MetricResult]:
    n_attacks = check_int(get_param(ctx, NAME, "n_attacks", 500), "n_attacks", NAME, low=1, high=1_000_000)
    n_neighbors = check_int(get_param(ctx, NAME, "n_neighbors", 1), "n_neighbors", NAME, low=1, high=10_000)
    confidence = confidence_param(ctx, NAME)
    inputs = privacy_inputs(ctx)
    available = [f.name for f in attack_features(inputs)]
    empty = set(empty_columns(inputs, available))
    usable = [c for c in available if c not in empty]
    aux = get_param(ctx, NAME, "aux_cols", None)
    if aux is None:
        if len(usable) < 2:
            return [skipped_result(RESULT, "privacy", "minimize", "linkability needs at least two usable record columns")]
        aux_cols = default_aux_cols(inputs, usable)
    else:
        if not isinstance(aux, (list, tuple)) or len(aux) != 2:
            raise InvalidParameterError(
                f"The 'aux_cols' parameter of {NAME} must be two lists of column names; got {aux!r} instead."
            )
        aux_cols = (check_columns(aux[0], "aux_cols[0]", NAME, available), check_columns(aux[1], "aux_cols[1]", NAME, available))
    ori, ctrl, syn = attack_frames(inputs)
    risk, info = linkability_risk(ori, syn, ctrl, aux_cols, n_attacks=n_attacks, n_neighbors=n_neighbors,
                                  rng=rng_for(ctx.options.seed, 71), confidence=confidence)
    notes = [inputs.sampling_note(),
             f"first auxiliary columns: {', '.join(aux_cols[0])}; second: {', '.join(aux_cols[1])}; "
             f"{info['n_attacks']} targets, {info['n_neighbors']} neighbour(s)"]
    skipped = tuple(Skipped("no value in the training sample", column=c) for c in sorted(empty))
    return [risk_result(RESULT, "linkability", risk, seed=ctx.options.seed, notes=notes, skipped=skipped,
                        details=({"kind": "attack", **info, "aux_cols": [list(aux_cols[0]), list(aux_cols[1])]},))]
