"""Membership inference by distance to the closest synthetic record.

The attacker scores each target by minus its Euclidean distance to the closest synthetic record on
the encoded records (the closer, the more likely a member): the classic attack against generators
that memorise (e.g. Chen et al., "GAN-Leaks", CCS 2020; Hilprecht et al., PoPETs 2019).
"""
from __future__ import annotations

import numpy as np

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.attack_scores import remember
from evaluate.privacy.dcr import nn_settings
from evaluate.privacy.distances import nearest_neighbours
from evaluate.privacy.inputs import privacy_inputs, rng_for
from evaluate.privacy.membership import draw_targets, membership_results, result_names, skipped_attack, target_settings
from evaluate.registry import metric
from evaluate.result import MetricResult

NAME = "privacy.mia.distance"


def distance_scores(targets: np.ndarray, synthetic: np.ndarray, *, rng: np.random.Generator, **nn: object) -> tuple[np.ndarray, str]:
    """Minus the distance of every target to its closest synthetic record, and how it was found."""
    nb = nearest_neighbours(targets, synthetic, k=1, rng=rng, **nn)  # type: ignore[arg-type]
    return -nb.distances[:, 0], nb.note("target to synthetic")


@metric(NAME, family="privacy", description="membership inference by distance to the closest synthetic record",
        produces=result_names("distance"), needs_holdout=True)
def mia_distance(ctx: EvalContext) -> list[MetricResult]:
    n_targets, n_boot, confidence = target_settings(ctx, NAME)
    settings = nn_settings(ctx, NAME)
    inputs = privacy_inputs(ctx)
    try:
        targets = draw_targets(inputs, n_targets)
    except EmptyInputError as exc:
        return skipped_attack("distance", str(exc))
    assert inputs.x_holdout is not None
    x = np.concatenate([inputs.x_train[targets.members], inputs.x_holdout[targets.non_members]])
    scores, note = distance_scores(x, inputs.x_synthetic, rng=rng_for(ctx.options.seed, 41), **settings)
    remember(ctx, "distance", scores, targets.labels)  # reused by the epsilon audit
    return membership_results(
        "distance", scores, targets.labels, seed=ctx.options.seed, n_bootstrap=n_boot, confidence=confidence,
        notes=(inputs.sampling_note(), note, "score = minus the distance to the closest synthetic record"),
    )
