"""What a generator fits on: bounded (DP, on either engine) or sampled (others, on Spark) by the engine, then,
from Spark, collected into DuckDB in this process, where the fit runs.

* ``bounded``: each patient's rows capped per table (``contribution_caps`` of a DP generator), chosen by a
  keyed random rank, ``row_number() OVER (PARTITION BY patient ORDER BY sha256(salt:row key)) <= cap``, and
  only rows whose parent row was kept. The salt is fresh per fit (``secrets``): not replayable, like the
  generator's own random choice; with the same salt both engines keep the very same rows. With
  ``count_limits`` it also keeps, per kept parent row, how many rows of a capped child table it had before the
  cap (clipped at the limit): what ``dp_mst`` models as children per row, counted past the row cap. With
  ``sample_rate`` it first keeps each patient independently with that probability (``sha256(salt:sample:key)``
  below the rate): a Poisson sample, so the fit's privacy is amplified and its memory follows the sample.
* ``sample_patients``: at most ``max_patients`` patients, by a seeded hash of the patient key (as the split),
  with all of their rows: what SDV-style generators fit on in the driver.
* ``marginals``: one-way counts of a table's columns, the first thing a marginal-based DP generator measures,
  here as one SQL query (equal on both engines before any noise).

All of it is SQL in DuckDB's dialect over ``Dataset`` relations, so it runs on either engine.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from data_schemas.model import Schema
from data_schemas.rules import quote, with_patient_key_sql
from synth.engine import is_spark
from synth.errors import DataValidationError
from synth.load import Dataset, frames_to_dataset

FIT_PATIENTS_ENV = "SYNTHMED_FIT_PATIENTS"
DEFAULT_FIT_PATIENTS = 100_000
_HEX = 15


def _row_key(schema: Schema, table: str, alias: str = "q") -> str:
    """SQL text identifying a row: its primary key, else all its columns (identical rows are interchangeable)."""
    t = schema.tables[table]
    cols = t.primary_key or list(t.columns)
    return " || '|' || ".join(f"coalesce(CAST({alias}.{quote(c)} AS VARCHAR), '\\N')" for c in cols)


def _tables_under_patient(schema: Schema) -> list[str]:
    return [t for t in schema.topological_order() if not schema.tables[t].reference]


def bounded(
    dataset: Dataset,
    caps: Mapping[str, int],
    *,
    salt: bytes,
    count_limits: Mapping[str, int] | None = None,
    sample_rate: float | None = None,
    namespace: str = "bounded",
) -> Dataset:
    """Each table's rows capped at ``caps[table]`` per patient, parents first; tables without a cap are left
    empty (the generator reads none of them), reference tables are kept whole.

    ``count_limits[table]``: also count, for every kept row of the table's parent, all of its rows in ``table``
    (before the cap, clipped at the limit) into ``out.child_counts[table]``; one GROUP BY on the engine, so
    the counts never need the rows past the cap in this process.

    ``sample_rate`` (in (0, 1)): only patients whose keyed hash falls below the rate, each independently of the
    others (a Poisson sample); their descendants follow through the parent rows kept."""
    schema, con = dataset.schema, dataset.con
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    out = Dataset(schema, con, namespace, f"bounded({dataset.source})", files=dataset.files, sample_rate=sample_rate)
    relations = out.relations()
    source = dataset.relations()
    tag = salt.hex()
    for name in schema.topological_order():
        table = schema.tables[name]
        cols = ", ".join(quote(c) for c in table.columns)
        target = out.sql_name(name)
        if table.reference:
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT {cols} FROM {source[name]}")
            continue
        cap = caps.get(name)
        link = schema.parent_of(name)
        if cap is None or (name != schema.patient.table and (link is None or not schema.path_to_patient(name))):
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT {cols} FROM {source[name]} WHERE false")
            continue
        scope = {**relations, name: source[name]}  # own rows from the input, ancestors already bounded
        keyed = with_patient_key_sql(schema, name, scope)
        where = "q.__patient_key IS NOT NULL"
        if sample_rate is not None and name == schema.patient.table:
            where += f" AND {_kept_at(f'{tag}:sample', sample_rate)}"
        if name != schema.patient.table and link is not None:
            fk, parent, parent_col = link[0].name, link[1], link[2]
            where += f" AND q.{quote(fk)} IN (SELECT {quote(parent_col)} FROM {relations[parent]})"
        ranked = (f"SELECT q.*, row_number() OVER (PARTITION BY q.__patient_key ORDER BY "
                  f"sha256('{tag}:' || {_row_key(schema, name)})) AS __rank FROM ({keyed}) q WHERE {where}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT {cols} FROM ({ranked}) r WHERE __rank <= {int(cap)}")
        limit = (count_limits or {}).get(name)
        if limit is not None and name != schema.patient.table and link is not None:
            fk, parent, parent_col = quote(link[0].name), link[1], quote(link[2])
            counts = f"{quote(namespace)}.{quote('__n_' + name)}"
            con.execute(f"CREATE OR REPLACE TABLE {counts} AS SELECT {fk} AS key, least(count(*), {int(limit)}) AS n "
                        f"FROM {source[name]} WHERE {fk} IN (SELECT {parent_col} FROM {relations[parent]}) GROUP BY {fk}")
            out.child_counts[name] = counts
    return out


def _kept_at(prefix: str, rate: float) -> str:
    """SQL keeping a patient (``q.__patient_key``) with probability ``rate``, independently of every other one: its
    hash under ``prefix`` (a secret salt, or a seed) below the rate."""
    if not 0 < rate < 1:
        raise ValueError(f"a sampling rate must be in (0, 1); got {rate!r}")
    threshold = int(rate * (1 << (4 * _HEX)))
    return f"substr(sha256('{prefix}:' || CAST(q.__patient_key AS VARCHAR)), 1, {_HEX}) < '{threshold:0{_HEX}x}'"


def count_patients(dataset: Dataset) -> int:
    """Distinct patients of a dataset (exact: for a DP generator's noisy count only, never published as is)."""
    root, key = dataset.sql_name(dataset.schema.patient.table), quote(dataset.schema.patient.column)
    return int(dataset.con.execute(f"SELECT count(DISTINCT {key}) FROM {root}").fetchall()[0][0])


def sample_patients(dataset: Dataset, max_patients: int, *, seed: int = 0, namespace: str = "fit_sample") -> Dataset:
    """At most about ``max_patients`` patients with all their rows (a seeded hash of the key decides, as in the
    split); the whole dataset when it has fewer."""
    schema, con = dataset.schema, dataset.con
    n = count_patients(dataset)
    if n <= max_patients:
        return dataset
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    out = Dataset(schema, con, namespace, f"sample({dataset.source})", files=dataset.files)
    keep = _kept_at(f"fit:{int(seed)}", max_patients / n)
    relations = dataset.relations()
    for name in schema.topological_order():
        table = schema.tables[name]
        cols = ", ".join(f"q.{quote(c)}" for c in table.columns)
        body = (f"SELECT * FROM {relations[name]}" if table.reference else
                f"SELECT {cols} FROM ({with_patient_key_sql(schema, name, relations)}) q WHERE {keep}")
        con.execute(f"CREATE OR REPLACE TABLE {out.sql_name(name)} AS {body}")
    return out


def marginals(dataset: Dataset, table: str) -> dict[str, dict[Any, int]]:
    """One-way counts of every column of ``table`` (NULL counted as None), in one query per column."""
    out: dict[str, dict[Any, int]] = {}
    for col in dataset.schema.tables[table].columns:
        rows = dataset.con.execute(
            f"SELECT CAST({quote(col)} AS VARCHAR) AS v, count(*) FROM {dataset.sql_name(table)} GROUP BY v"
        ).fetchall()
        out[col] = {v: int(c) for v, c in rows}
    return out


def to_local(dataset: Dataset, *, namespace: str = "train") -> Dataset:
    """A (bounded) dataset of any engine as a DuckDB dataset in this process (Arrow all the way), re-checked;
    its child counts come along."""
    frames = {t: dataset.relation(t).to_arrow_table() for t in dataset.schema.tables}
    local, report = frames_to_dataset(dataset.schema, frames, namespace=namespace, source=dataset.source)
    if not report.ok:
        raise DataValidationError(report)
    local.sample_rate = dataset.sample_rate
    for table, relation in dataset.child_counts.items():
        view = f"__counts_{namespace}_{table}"
        local.con.register(view, dataset.con.sql(f"SELECT * FROM {relation}").to_arrow_table())
        target = f"{quote(namespace)}.{quote('__n_' + table)}"
        local.con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {quote(view)}")
        local.con.unregister(view)
        local.child_counts[table] = target
    return local


def fit_patients() -> int:
    raw = os.environ.get(FIT_PATIENTS_ENV, "")
    return int(raw) if raw.strip().isdigit() and int(raw) > 0 else DEFAULT_FIT_PATIENTS


def fit_input(generator: Any, train: Dataset, *, seed: int = 0, progress: Callable[[str], None] | None = None) -> Dataset:
    """The training data a generator fits on in this process, from the train split on either engine.

    A DP generator with ``contribution_caps`` gets each patient's rows bounded on the engine (a fresh secret
    salt), on DuckDB too, so only the capped rows reach this process's memory; when its ``fit_sample_rate``
    (``dp_mst``'s ``fit_patients``, from a noisy count) is below 1, only a Poisson sample of patients; any other gets a seeded sample of
    at most ``$SYNTHMED_FIT_PATIENTS`` (default 100,000) patients on Spark, and the whole split on DuckDB.
    """
    say = progress or (lambda _m: None)
    caps_of = getattr(generator, "contribution_caps", None)
    spark = is_spark(train.con)
    if getattr(generator, "differentially_private", False) and callable(caps_of):
        caps = caps_of(train.schema)
        limits_of = getattr(generator, "count_limits", None)
        rate_of = getattr(generator, "fit_sample_rate", None)
        rate = rate_of(lambda: count_patients(train)) if callable(rate_of) else None
        if rate is not None:
            say(f"keeping a Poisson sample of the training patients on the engine, rate {rate:.4g} (fit_patients)")
        say(f"bounding each patient's rows on the engine ({', '.join(f'{t} <= {c}' for t, c in caps.items())})")
        chosen = bounded(train, caps, salt=secrets.token_bytes(32), sample_rate=rate,
                         count_limits=limits_of(train.schema) if callable(limits_of) else None)
    elif not spark:
        return train
    else:
        limit = fit_patients()
        say(f"sampling at most {limit:,} patients on the engine for the fit (${FIT_PATIENTS_ENV})")
        chosen = sample_patients(train, limit, seed=seed)
    if not spark:
        return chosen
    say("collecting the fit's rows into this process")
    return to_local(chosen)
