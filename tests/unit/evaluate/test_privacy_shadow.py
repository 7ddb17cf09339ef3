"""The shadow-model attack with small generators defined here: copies are caught, marginals are not."""
from __future__ import annotations

import pytest

from data_schemas.io import load_schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.privacy.errors import ShadowModelError
from evaluate.runner import run_metrics
from tests.unit.evaluate.test_privacy_helpers import BootstrapCopyGenerator, MarginalGenerator, copy_namespace, load_parts


@pytest.fixture(scope="module")
def population():
    from synth.demo_population import simulate

    return simulate(700, seed=21)


def _release(population, generator_cls):
    schema = load_schema("kr_claims")
    data = load_parts(schema, population, {"train": (0, 200), "holdout": (200, 700)})
    train = data["train"]
    synthetic = copy_namespace(generator_cls().fit(train).sample(200, seed=1), train.con, "synthetic")
    params = {"privacy.mia.shadow": {"generator_factory": generator_cls, "n_targets": 60, "n_shadow_models": 6}}
    return EvalContext(schema, train.con, train, synthetic, data["holdout"], EvalOptions(seed=4, params=params))


def _shadow(ctx: EvalContext) -> dict:
    return {r.name: r for r in run_metrics(ctx, ["privacy.mia.shadow"]).results}


@pytest.mark.slow
def test_shadow_attack_catches_a_generator_that_copies_patients(population) -> None:
    got = _shadow(_release(population, BootstrapCopyGenerator))
    auc = got["privacy.mia.shadow.auc"]
    assert auc.value is not None and auc.value > 0.7 and auc.ci is not None and auc.ci.low > 0.55
    shadow = next(d for d in auc.details if d["kind"] == "shadow")
    assert shadow["n_shadow_models"] == 6
    assert "6 shadow models" in " ".join(auc.notes)


@pytest.mark.slow
def test_shadow_attack_does_not_flag_independent_marginals(population) -> None:
    got = _shadow(_release(population, MarginalGenerator))
    auc = got["privacy.mia.shadow.auc"]
    assert auc.value is not None and abs(auc.value - 0.5) < 0.15 and auc.ci is not None and auc.ci.low < 0.5 < auc.ci.high


def test_factory_must_return_a_generator(population) -> None:
    ctx = _release(population, BootstrapCopyGenerator)
    bad = EvalContext(ctx.schema, ctx.con, ctx.train, ctx.synthetic, ctx.holdout,
                      EvalOptions(seed=4, params={"privacy.mia.shadow": {"generator_factory": lambda: 42, "n_shadow_models": 2}}))
    with pytest.raises(ShadowModelError, match="fit\\(train\\) and sample"):
        run_metrics(bad, ["privacy.mia.shadow"])
