"""Attribute-inference risk in the style of Anonymeter (Giomi et al., PoPETs 2023).

The attacker knows some columns of a target (``aux_cols``) and guesses a secret column as the value
of the closest synthetic record on those columns (Anonymeter's Gower-style distance).

* attack rate: share of ``n_attacks`` training targets whose secret is guessed right;
* control rate: the same for holdout targets;
* baseline rate: guesses drawn at random from the synthetic secret values;
* risk: ``(attack - control) / (1 - control)`` with its CI.

A categorical secret is guessed right when equal (missing equals missing); a numerical secret when
``|guess - secret| <= tolerance * |guess|`` (Anonymeter's relative tolerance, 5 %).

Defaults: the secrets are the sensitive categorical record columns (sensitive patient columns and
the most frequent sensitive code per event table); the attacker knows the quasi-identifiers of the
patient table (or, without any, every non-secret column). Each secret is attacked with the same
targets. With ``m`` secrets, the worst of ``m`` risks is biased upward by chance alone (on fresh
DE-SynPUF patients the worst of 14 had a point risk of 0.19), so every secret's CI is taken at the
Bonferroni level ``1 - (1 - confidence) / m``, and ``privacy.attribute_inference.risk`` reports the
secret with the largest *adjusted* lower CI end: its risk and its adjusted CI. Each secret's rates,
unadjusted and adjusted CIs are in the details.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.attack_data import MixedFrame, attack_features, attack_frames, empty_columns, range_scaled, risk_result
from evaluate.privacy.distances import gower_neighbours
from evaluate.privacy.inputs import privacy_inputs, rng_for
from evaluate.privacy.params import check_columns, check_float, check_int, confidence_param, get_param
from evaluate.privacy.stats import PrivacyRisk, privacy_risk
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped, skipped_result

NAME = "privacy.attribute_inference"
RESULT = "privacy.attribute_inference.risk"


def column(frame: MixedFrame, name: str) -> tuple[np.ndarray, bool]:
    """Values of a column and whether it is numeric."""
    if name in frame.numeric_names:
        return frame.numeric[:, frame.numeric_names.index(name)], True
    return frame.categorical[:, frame.categorical_names.index(name)], False


def correct_guesses(guesses: np.ndarray, secrets: np.ndarray, *, numeric: bool, tolerance: float = 0.05) -> np.ndarray:
    """Which guesses are right (see the module docstring); missing guesses match missing secrets."""
    if numeric:
        g_missing, s_missing = np.isnan(guesses), np.isnan(secrets)
        with np.errstate(invalid="ignore"):
            close = np.abs(guesses - secrets) <= tolerance * np.abs(guesses) + 1e-12
        return (g_missing & s_missing) | (~g_missing & ~s_missing & close)
    return guesses == secrets


def inference_risks(
    ori: MixedFrame,
    syn: MixedFrame,
    control: MixedFrame | None,
    aux_cols: Sequence[str],
    secrets: Sequence[str],
    *,
    n_attacks: int = 500,
    rng: np.random.Generator,
    tolerance: float = 0.05,
    confidence: float = 0.95,
) -> dict[str, PrivacyRisk]:
    """The inference risk of every secret (same targets and nearest synthetic records for all of them)."""
    if syn.n_rows == 0 or ori.n_rows == 0 or (control is not None and control.n_rows == 0):
        raise EmptyInputError("attribute inference needs original, synthetic and control records")
    n = min(n_attacks, ori.n_rows, control.n_rows if control is not None else ori.n_rows)
    groups: dict[str, MixedFrame] = {"attack": ori.take(np.sort(rng.choice(ori.n_rows, size=n, replace=False)))}
    if control is not None:
        groups["control"] = control.take(np.sort(rng.choice(control.n_rows, size=n, replace=False)))
    base_targets = ori.take(np.sort(rng.choice(ori.n_rows, size=n, replace=False)))
    base_rows = rng.choice(syn.n_rows, size=n, replace=syn.n_rows < n)
    s_aux = syn.select(aux_cols)
    nearest: dict[str, np.ndarray] = {}
    for label, targets in groups.items():
        t_aux = targets.select(aux_cols)
        st, ss = range_scaled([t_aux, s_aux])
        nearest[label] = gower_neighbours(st, t_aux.categorical, ss, s_aux.categorical, k=1)[:, 0]
    out: dict[str, PrivacyRisk] = {}
    for secret in secrets:
        syn_values, numeric = column(syn, secret)
        success = {}
        for label, targets in groups.items():
            success[label] = int(correct_guesses(syn_values[nearest[label]], column(targets, secret)[0],
                                                 numeric=numeric, tolerance=tolerance).sum())
        n_baseline = int(correct_guesses(syn_values[base_rows], column(base_targets, secret)[0], numeric=numeric,
                                         tolerance=tolerance).sum())
        out[secret] = privacy_risk(n_success=success["attack"], n_attacks=n, n_baseline=n_baseline,
                                   n_control=success.get("control"), confidence=confidence)
    return out


def at_level(risk: PrivacyRisk, confidence: float) -> PrivacyRisk:
    """The same attack, baseline and control counts with rates and CI at another ``confidence``."""
    control = risk.control
    return privacy_risk(n_success=risk.attack.n_success, n_attacks=risk.attack.n_total, n_baseline=risk.baseline.n_success,
                        n_attacks_baseline=risk.baseline.n_total, n_control=None if control is None else control.n_success,
                        n_attacks_control=None if control is None else control.n_total, confidence=confidence)


@metric(NAME, family="privacy", description="Anonymeter-style attribute-inference risk (worst secret, adjusted for the number of secrets)",
        produces=(RESULT,), needs_holdout=True)
def attribute_inference(ctx: EvalContext) -> list[MetricResult]:
    n_attacks = check_int(get_param(ctx, NAME, "n_attacks", 500), "n_attacks", NAME, low=1, high=1_000_000)
    tolerance = check_float(get_param(ctx, NAME, "tolerance", 0.05), "tolerance", NAME, low=0.0, high=1e6)
    confidence = confidence_param(ctx, NAME)
    inputs = privacy_inputs(ctx)
    feats = attack_features(inputs)
    available = [f.name for f in feats]
    empty = set(empty_columns(inputs, available))
    skipped = [Skipped("no value in the training sample", column=c) for c in sorted(empty)]
    secrets_param = get_param(ctx, NAME, "secrets", None)
    if secrets_param is None:
        secrets = [f.name for f in feats if f.privacy == "sensitive" and f.kind == "categorical" and f.name not in empty]
        skipped += [
            Skipped("numeric or date secret: name it in params['privacy.attribute_inference']['secrets'] to attack it",
                    column=f.name)
            for f in feats if f.privacy == "sensitive" and f.kind == "numeric"
        ]
    else:
        secrets = check_columns(secrets_param, "secrets", NAME, available)
    aux_param = get_param(ctx, NAME, "aux_cols", None)
    if aux_param is None:
        aux = [f.name for f in feats if f.privacy == "quasi_identifier" and f.name not in empty and f.name not in secrets]
        if not aux:
            aux = [c for c in available if c not in empty and c not in secrets]
    else:
        aux = [c for c in check_columns(aux_param, "aux_cols", NAME, available) if c not in secrets]
    if not secrets or not aux:
        what = "no sensitive categorical column to infer" if not secrets else "no auxiliary column left"
        return [skipped_result(RESULT, "privacy", "minimize", f"attribute inference skipped: {what}")]
    ori, ctrl, syn = attack_frames(inputs)
    level = 1.0 - (1.0 - confidence) / len(secrets)
    risks = inference_risks(ori, syn, ctrl, aux, secrets, n_attacks=n_attacks, rng=rng_for(ctx.options.seed, 81),
                            tolerance=tolerance, confidence=confidence)
    adjusted = {s: at_level(r, level) for s, r in risks.items()}
    worst = max(adjusted, key=lambda s: (adjusted[s].ci.low, adjusted[s].value))
    rows: list[dict[str, Any]] = [{**r.rates_row(), "kind": "secret", "secret": s, "risk": r.value,
                                   "risk_ci": [r.ci.low, r.ci.high],
                                   "risk_ci_adjusted": [adjusted[s].ci.low, adjusted[s].ci.high]}
                                  for s, r in risks.items()]
    notes = [inputs.sampling_note(),
             f"the attacker knows {', '.join(aux)}; secrets: {', '.join(secrets)}; {min(n_attacks, len(inputs.train)):,} "
             "sampled training targets, each guessed from the nearest of all synthetic records",
             f"CIs adjusted for {len(secrets)} secret(s) (Bonferroni: each at level {level:.4g}); reported: {worst}, the "
             "secret with the largest adjusted lower CI end"]
    return [risk_result(RESULT, f"attribute inference ({worst})", adjusted[worst], seed=ctx.options.seed, notes=notes,
                        details=rows, skipped=skipped)]
