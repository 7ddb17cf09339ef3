"""From a data folder to a registered release: read the train split, fit, sample, write, register.

``data_dir`` is either a prepared folder (``synthmed prepare`` / the demo: ``train/``, ``holdout/``,
``split.json``) or a raw folder, which is then validated, pseudonymised (a secret is required when the
schema has direct identifiers) and split in memory with ``split_seed``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_schemas.model import Schema
from synth.engine.local import fit_input
from synth.errors import GeneratorError, MissingSecretError
from synth.generators import Generator, get_generator
from synth.load import Dataset, connect, load_dataset
from synth.prepare import read_prepared
from synth.pseudonymise import pseudonymise
from synth.release import ReleaseInfo, Store, checkpoint, new_release_id, write_release
from synth.spool import write_batches
from synth.split import SplitRecord, split_patients
from synth.uniques import UniquesGuard, not_applied

Progress = Callable[[str], None]


@dataclass
class TrainingInput:
    """The train and holdout sides of a dataset and how they were split."""

    train: Dataset
    holdout: Dataset
    split: SplitRecord
    prepared: bool


def is_prepared(folder: Path) -> bool:
    return (folder / "split.json").is_file() and (folder / "train").is_dir() and (folder / "holdout").is_dir()


def read_training_input(
    schema: Schema, data_dir: str | Path, *, secret: bytes | None = None, split_seed: int = 0, holdout_fraction: float = 0.2,
    engine: str = "duckdb", progress: Progress | None = None,
) -> TrainingInput:
    """Train/holdout from a prepared folder, or from a raw folder pseudonymised and split here.

    ``engine="spark"``: read, checked, pseudonymised and split on Spark (see ``synth.engine``).
    ``progress`` hears each table read and checked."""
    from synth.engine import connection

    folder = Path(data_dir)
    con = connect() if engine == "duckdb" else connection(engine)  # DuckDB's reads no file: the loader's reader does
    if is_prepared(folder):
        train, holdout, record = read_prepared(schema, folder, con=con, progress=progress)  # split.json checked against the data
        return TrainingInput(train, holdout, record, prepared=True)
    dataset = load_dataset(schema, folder, con=con, namespace="raw", progress=progress)
    needs_secret = any(c.pseudonymisation == "hmac" for _, c in schema.direct_identifiers())
    if needs_secret and secret is None:
        raise MissingSecretError(
            f"{folder} is raw data with direct identifiers ({', '.join(f'{t}.{c.name}' for t, c in schema.direct_identifiers())}): "
            "pass --secret-file or set SYNTHMED_SECRET so they are pseudonymised first, or use a folder made by `synthmed prepare`"
        )
    if secret is not None:
        dataset, _ = pseudonymise(dataset, secret)
    train, holdout, record = split_patients(dataset, seed=split_seed, holdout_fraction=holdout_fraction)
    return TrainingInput(train, holdout, record, prepared=False)


def public_source(data: TrainingInput) -> dict[str, Any]:
    """What a manifest says about the source data: how it was split (parameters, never a function of the data)."""
    return {
        "split": {"seed": data.split.seed, "holdout_fraction": data.split.holdout_fraction, "method": data.split.method},
        "prepared": data.prepared,
    }


def private_source(schema: Schema, data: TrainingInput) -> dict[str, Any]:
    """The private bookkeeping of a release: split sizes and fingerprints, row counts and a hash of them all.

    Every one of these moves when one patient comes or goes, so it is never published (not in the
    manifest, the catalog's releases row, the report or the app): it is kept in the catalog's private
    ``release_sources`` table, where ``synthmed evaluate`` checks that it is given the same data.
    """
    basis = {
        "schema_hash": schema.fingerprint,
        "train": data.split.train_fingerprint,
        "holdout": data.split.holdout_fingerprint,
        "train_rows": data.train.row_counts(),
        "holdout_rows": data.holdout.row_counts(),
    }
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
    return {
        "fingerprint": digest,
        "split": json.loads(data.split.to_json()),
        "train_rows": basis["train_rows"],
        "holdout_rows": basis["holdout_rows"],
    }


def make_generator(
    name: str, params: dict[str, Any], *, allow_unsafe: bool = False, epsilon: float | None = None, delta: float | None = None
) -> Generator:
    if epsilon is not None or delta is not None:
        params = dp_params(name, params, epsilon=epsilon, delta=delta)
    generator = get_generator(name, **params)
    if generator.unsafe and not allow_unsafe:
        raise GeneratorError(
            f"generator {name!r} returns training records (a calibration baseline); "
            "pass --allow-unsafe to write such a release on purpose"
        )
    return generator


def dp_params(name: str, params: dict[str, Any], *, epsilon: float | None, delta: float | None) -> dict[str, Any]:
    """``params`` with the privacy budget set; only a differentially private generator takes one."""
    from synth.generators import GENERATORS, describe_generators

    if name in GENERATORS and not GENERATORS[name].differentially_private:
        dp_names = ", ".join(r["name"] for r in describe_generators() if r["differentially_private"])
        raise GeneratorError(
            f"--epsilon/--delta apply to differentially private generators ({dp_names}); {name!r} is not one"
        )
    out = dict(params)
    if epsilon is not None:
        out["epsilon"] = epsilon
    if delta is not None:
        out["delta"] = delta
    return out


def release(
    schema: Schema,
    data_dir: str | Path,
    *,
    generator: str,
    params: dict[str, Any] | None = None,
    store: Store,
    n_patients: int | None = None,
    seed: int = 0,
    secret: bytes | None = None,
    allow_unsafe: bool = False,
    progress: Progress | None = None,
    epsilon: float | None = None,
    delta: float | None = None,
    requested_by: str | None = None,
    engine: str = "duckdb",
    remove_uniques: bool = True,
) -> ReleaseInfo:
    """Fit ``generator`` on the train split, sample ``n_patients``, register.

    Without ``n_patients`` a release has as many patients as train, except for a differentially
    private generator, whose default is its own noisy estimate (the exact size is private).
    ``requested_by`` (default: the OS user) is who asked for the release; that identity cannot approve it.
    ``remove_uniques`` (default on): synthetic rows replicating a training-unique row are removed before
    the release is written (``synth.uniques``; see ``guard_skip_reason`` for when it never runs).
    """
    say = progress or (lambda _m: None)
    gen = make_generator(generator, dict(params or {}), allow_unsafe=allow_unsafe, epsilon=epsilon, delta=delta)
    store.preflight(secret=secret)  # a store that could not register the release fails before the fit, not after
    say(f"reading {data_dir}")
    data = read_training_input(schema, data_dir, secret=secret, engine=engine, progress=say)
    # the fit runs in this process: DP generators on what the engine bounds, others on Spark on a sample
    train = fit_input(gen, data.train, seed=seed, progress=say)
    say(f"fitting {generator} on {data.split.n_train:,} training patients")
    gen.fit(train, progress=say)
    n = n_patients or gen.release_size(data.split.n_train)
    if n is None:
        raise GeneratorError(f"generator {generator!r} has no private estimate of the number of patients: pass --patients N")
    say(f"sampling {n:,} patients (seed {seed})")
    skip = guard_skip_reason(gen, enabled=remove_uniques)
    guard = None if skip else UniquesGuard(data.train, progress=say)
    batches = gen.sample_batches(n, seed=seed, progress=say)  # one batch in memory at a time, written as it comes
    release_id = new_release_id(schema.name, generator)
    with store.staging(release_id) as folder:
        written = write_batches(schema, batches if guard is None else map(guard.apply, batches), folder, progress=say)
        uniques = not_applied(skip) if guard is None else guard.finish()
        checkpoint("after_staging")  # files staged, the store not yet locked (failure injection in tests)
        say("registering the release")
        return write_release(
            store,
            written,
            release_id=release_id,
            schema=schema,
            generator=generator,
            family=gen.family,
            params=gen.get_params(),
            seed=seed,
            source=public_source(data),
            private_source=private_source(schema, data),
            sample_report=gen.last_sample_report_.to_dict() if gen.last_sample_report_ else {},
            differentially_private=gen.differentially_private,
            epsilon=gen.epsilon,
            delta=gen.delta,
            privacy=gen.privacy_accounting(),
            requested_by=requested_by,
            replicated_uniques=uniques.to_dict(),
        )


def guard_skip_reason(gen: Generator, *, enabled: bool = True) -> str | None:
    """Why the replicated-uniques guard (``synth.uniques``) does not run for ``gen``, or None where it does.

    Never for a differentially private generator: the removal compares the sample with the private training
    rows, post-processing that depends on the data, so the release would no longer carry the generator's
    (epsilon, delta) guarantee. Nor for a calibration baseline (``copy``): it returns training records on
    purpose, for the evaluator to catch. Elsewhere on unless ``enabled`` is False (``--keep-replicated-uniques``).
    """
    if gen.differentially_private:
        return ("differentially private generator: removing rows by comparing them with the "
                "training data would break its (epsilon, delta) guarantee")
    if gen.unsafe:
        return "calibration baseline that returns training records on purpose"
    if not enabled:
        return "turned off by the user (--keep-replicated-uniques)"
    return None
