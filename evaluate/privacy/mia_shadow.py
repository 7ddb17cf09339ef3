"""Shadow-model membership inference: the attacker refits the release's own generator.

Stadler, Oprisanu and Troncoso, "Synthetic data - anonymisation groundhog day" (USENIX Security 2022)
and Houssiau et al., "TAPAS: a toolbox for adversarial privacy auditing of synthetic data" (2022):
the attacker knows the generator and its settings, holds reference data from the population and the
records of the targets, trains the generator on reference data with and without each target, and
learns how a target's presence changes the synthetic data.

Here, within the budget the user sets (``n_shadow_models``, default 8; ``n_targets`` per class, default
1,000, at most ``max_rows`` and half the holdout), sized so that a TPR at 1 % FPR is reported with a CI
(at least 1,000 non-member targets, see ``stats.min_non_members_for_ci``) when the holdout allows it:

* every target (``n_targets`` members from train, as many non-members from the holdout) is put in
  exactly half of the shadow training sets (a seeded, balanced design, so each shadow model serves
  all targets at once, as in TAPAS's multi-target setting);
* a shadow training set is as large as the real training set: the targets assigned to it plus a
  seeded sample of the other real patients (train and holdout patients that are not targets: to the
  attacker they are all just population data);
* each shadow generator, from ``generator_factory()``, is fitted and samples as many patients as
  the release has, scaled to its training size (all of them are searched, as the release's are);
* the attack feature of a target in a synthetic dataset is ``log(d + 1e-3)``, ``d`` its distance to
  the closest synthetic record on the encoded records;
* the score on the release is the likelihood ratio of that feature under the target's "in" and
  "out" shadow distributions, Gaussian with a variance pooled over all targets (the fixed-variance
  variant of LiRA: Carlini et al., "Membership inference attacks from first principles", S&P 2022).

The factory is passed as ``EvalOptions.params["privacy.mia.shadow"]["generator_factory"]``: a
zero-argument callable returning an unfitted generator with ``fit(train: Dataset) -> self`` and
``sample(n_patients, *, seed) -> Dataset`` (for a registered generator:
:func:`generator_factory`). ``synthmed evaluate RELEASE_ID`` passes the release's own generator and the
default policy requires the result there; on folders from another tool there is no generator to refit,
so the attack is skipped and says that it could not run.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from data_schemas.rules import quote, with_patient_key_sql
from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.attack_scores import remember
from evaluate.privacy.dcr import nn_settings
from evaluate.privacy.distances import nearest_neighbours
from evaluate.privacy.errors import ShadowModelError
from evaluate.privacy.inputs import PrivacyInputs, privacy_inputs, rng_for
from evaluate.privacy.membership import draw_targets, membership_results, result_names, skipped_attack, target_settings
from evaluate.privacy.params import check_int, get_param
from evaluate.privacy.records import build_records, patient_keys, registered_keys
from evaluate.registry import metric
from evaluate.result import MetricResult
from synth.load import Dataset

NAME = "privacy.mia.shadow"
EPS = 1e-3


def generator_factory(name: str, **params: Any) -> Callable[[], Any]:
    """A zero-argument factory of unfitted registered generators (``synth.generators.get_generator``)."""

    def make() -> Any:
        from synth.generators import get_generator

        return get_generator(name, **params)

    return make


def shadow_dataset(train: Dataset, holdout: Dataset, train_keys: np.ndarray, holdout_keys: np.ndarray) -> Dataset:
    """A dataset (new namespace on the same connection) of the given train and holdout patients, all their rows."""
    schema, con = train.schema, train.con
    ns = f"__sm_shadow_{uuid.uuid4().hex[:12]}"
    con.execute(f"CREATE SCHEMA {quote(ns)}")
    with registered_keys(con, train_keys) as tk, registered_keys(con, holdout_keys) as hk:
        for table in schema.tables.values():
            cols = ", ".join(f"q.{quote(c)}" for c in table.columns)
            if table.reference:
                body = f"SELECT * FROM {train.sql_name(table.name)}"
            else:
                parts = []
                for ds, view in ((train, tk), (holdout, hk)):
                    base = with_patient_key_sql(schema, table.name, ds.relations())
                    parts.append(f"SELECT {cols} FROM ({base}) q WHERE CAST(q.__patient_key AS VARCHAR) IN (SELECT k FROM {view})")
                body = " UNION ALL ".join(parts)
            con.execute(f"CREATE TABLE {quote(ns)}.{quote(table.name)} AS {body}")
    return Dataset(schema, con, ns, source="shadow training set")


def _drop(ds: Dataset) -> None:
    ds.con.execute(f"DROP SCHEMA IF EXISTS {quote(ds.namespace)} CASCADE")


def _features(x_targets: np.ndarray, x_synthetic: np.ndarray, rng: np.random.Generator, nn: dict[str, Any]) -> np.ndarray:
    nb = nearest_neighbours(x_targets, x_synthetic, k=1, rng=rng, **nn)
    return np.log(nb.distances[:, 0] + EPS)


def lira_scores(observed: np.ndarray, shadow: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Log-likelihood ratio of ``observed`` per target under its in / out shadow features (pooled variance)."""
    n_in = inside.sum(axis=1)
    n_out = (~inside).sum(axis=1)
    mu_in = np.where(inside, shadow, 0.0).sum(axis=1) / np.maximum(n_in, 1)
    mu_out = np.where(~inside, shadow, 0.0).sum(axis=1) / np.maximum(n_out, 1)
    resid = np.where(inside, shadow - mu_in[:, None], shadow - mu_out[:, None])
    var = max(float(np.mean(resid**2)), 1e-6)
    return ((observed - mu_out) ** 2 - (observed - mu_in) ** 2) / (2.0 * var)


def shadow_scores(
    ctx: EvalContext,
    inputs: PrivacyInputs,
    factory: Callable[[], Any],
    *,
    n_targets: int,
    n_shadow: int,
    nn: dict[str, Any],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Scores of the targets (the first ``n_targets`` train and holdout records, members first) and facts
    about the shadow models (see the module docstring)."""
    assert ctx.holdout is not None and inputs.holdout is not None and inputs.x_holdout is not None
    seed = ctx.options.seed
    rng = rng_for(seed, 101)
    n_train, n_hold = len(inputs.train), len(inputs.holdout)
    n_t = 2 * n_targets
    x_targets = np.concatenate([inputs.x_train[:n_targets], inputs.x_holdout[:n_targets]])
    target_train_keys = inputs.train.keys[:n_targets]
    target_hold_keys = inputs.holdout.keys[:n_targets]
    pool_train, pool_hold = inputs.train.keys[n_targets:], inputs.holdout.keys[n_targets:]
    pool = np.concatenate([pool_train, pool_hold])
    if pool.size < 1:
        raise EmptyInputError("the shadow-model attack needs population patients besides the targets")
    n_fill = int(min(pool.size, max(1, n_train - n_targets)))
    n_sample = max(1, int(round(inputs.n_total["synthetic"] * (n_fill + n_targets) / max(1, n_train))))
    # balanced design: every target in exactly half of the shadow models
    inside = np.zeros((n_t, n_shadow), dtype=bool)
    for t in range(n_t):
        inside[t, rng.permutation(n_shadow)[: n_shadow // 2]] = True
    shadow = np.empty((n_t, n_shadow))
    for j in range(n_shadow):
        fill = pool[rng.permutation(pool.size)[:n_fill]]
        from_train = np.isin(fill, pool_train)
        train_keys = np.concatenate([target_train_keys[inside[:n_targets, j]], fill[from_train]])
        hold_keys = np.concatenate([target_hold_keys[inside[n_targets:, j]], fill[~from_train]])
        train_ds = shadow_dataset(ctx.train, ctx.holdout, train_keys, hold_keys)
        try:
            generator = factory()
            if not (hasattr(generator, "fit") and hasattr(generator, "sample")):
                raise ShadowModelError(
                    f"the generator_factory of {NAME} must return an object with fit(train) and sample(n, seed=...); "
                    f"got {type(generator).__name__}"
                )
            fitted = generator.fit(train_ds) or generator
            synthetic = fitted.sample(n_sample, seed=int(rng.integers(0, 2**31 - 1)))
        finally:
            _drop(train_ds)
        syn_keys = patient_keys(synthetic)
        if syn_keys.size == 0:
            raise ShadowModelError(f"shadow model {j} sampled no patients")
        recs = build_records(synthetic, inputs.spec, syn_keys)
        shadow[:, j] = _features(x_targets, inputs.encoding.transform(recs), rng, nn)
    observed = _features(x_targets, inputs.x_synthetic, rng, nn)
    info = {"n_shadow_models": n_shadow, "shadow_training_patients": n_fill + n_targets,
            "shadow_sample_patients": n_sample, "n_train": n_train, "n_holdout": n_hold}
    return lira_scores(observed, shadow, inside), info


FOLDER_MODE = (
    "could not run: the shadow-model attack refits the release's own generator, and folders from another tool "
    "come without one (evaluate the release with `synthmed evaluate RELEASE_ID --data DIR` to run it, or pass "
    "EvalOptions.params['privacy.mia.shadow']['generator_factory'], a zero-argument callable returning the unfitted "
    "generator: evaluate.privacy.mia_shadow.generator_factory(name, **params))"
)


@metric(NAME, family="privacy", description="shadow-model membership inference (refits the release's generator)",
        produces=result_names("shadow"), needs_holdout=True)
def mia_shadow(ctx: EvalContext) -> list[MetricResult]:
    factory = get_param(ctx, NAME, "generator_factory", None)
    if get_param(ctx, NAME, "n_shadow_models", None) == 0:
        return skipped_attack("shadow", "the shadow-model budget is 0 models (--shadow-models 0)")
    if factory is None:
        return skipped_attack("shadow", FOLDER_MODE)
    if not callable(factory):
        raise ShadowModelError(f"The 'generator_factory' parameter of {NAME} must be a zero-argument callable; got {factory!r} instead.")
    _, n_boot, confidence = target_settings(ctx, NAME)
    n_targets = check_int(get_param(ctx, NAME, "n_targets", 1000), "n_targets", NAME, low=10, high=100_000)
    n_shadow = check_int(get_param(ctx, NAME, "n_shadow_models", 8), "n_shadow_models", NAME, low=2, high=1000)
    if n_shadow % 2:
        n_shadow += 1
    nn = nn_settings(ctx, NAME)
    inputs = privacy_inputs(ctx)
    try:
        targets = draw_targets(inputs, n_targets)
    except EmptyInputError as exc:
        return skipped_attack("shadow", str(exc))
    scores, info = shadow_scores(ctx, inputs, factory, n_targets=targets.members.size, n_shadow=n_shadow, nn=nn)
    remember(ctx, "shadow", scores, targets.labels)  # reused by the epsilon audit
    return membership_results(
        "shadow", scores, targets.labels, seed=ctx.options.seed, n_bootstrap=n_boot, confidence=confidence,
        notes=(
            inputs.sampling_note(),
            f"{info['n_shadow_models']} shadow models, each fitted on {info['shadow_training_patients']:,} real patients "
            f"(half of the targets plus other train and holdout patients) and sampling {info['shadow_sample_patients']:,} "
            "patients, all searched; score = likelihood ratio of log(distance to the closest synthetic record + 1e-3) "
            "under in/out shadow models (LiRA, fixed variance)",
        ),
        details=({"kind": "shadow", **info},),
    )
