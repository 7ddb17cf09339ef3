"""Replicated uniques: synthetic rows that copy a row unique in training, removed before a release is written.

A synthetic row of a patient table whose every attribute column (all columns but ids, keys and direct
identifiers) equals a training row that no other training row shares is a disclosure even when the
generator did nothing wrong on average: it singles out one real person. synthpop removes such rows with
``sds.syn(..., rm.replicated.uniques = TRUE)`` (Nowok, Raab and Dibben, "synthpop: Bespoke creation of
synthetic data in R", J. Stat. Softw. 74(11), 2016, section 3.5). Here a replicated root row takes its
patient's whole subtree with it (every row of every table that belongs to the patient); a replicated
child row takes its own descendants, so referential integrity holds.

Near replicas of a person: a row of the patient table equal on all of its attribute columns but one to a
training row that no other training row shares on those columns goes too (with its patient). It reproduces
one person's combination of every attribute but one, which singles that person out as surely (on
DE-SynPUF, ``cart`` copied beneficiaries whole but for the birth date: 101 of the 134 near-copies that
``privacy.dcr.near_copy_share`` found differed from their training patient in that one column). Only the
patient table, where a person's quasi-identifiers are, and only when it has ``MIN_NEAR_COLUMNS`` (6) attribute
columns or more: on fewer, all-but-one matches a unique person by chance too often for the rule to mean a copy
(a one-column projection is a marginal value: ``min_patients`` is the tool for rare values); event rows with
few columns likewise. And only on projections that single people out (``MIN_CHANCE_ROWS``'s note): one that fresh
people match by chance more often than the guard may remove without a warning (a demographic combination) cannot
tell a copy from a coincidence.

The comparison runs as SQL on the connection that already holds the training data (the synthetic tables
are registered beside it), so training rows, their hashes or their counts never leave the engine: only the
number of removed rows per table is reported (``ReplicatedUniques``, written to the release manifest).

Never for a differentially private generator: this post-processing reads the private data, so a DP
release passed through it would no longer carry its (epsilon, delta) guarantee (``synth.pipeline``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.model import Schema
from data_schemas.rules import quote
from synth.errors import DataValidationError
from synth.load import Dataset, frames_to_dataset

Progress = Callable[[str], None]

MAX_PATIENT_SHARE = 0.05
"""Past this share of the cohort's patients removed, the guard still removes them but warns: the generator
is copying training records and the release is a poor one (a larger min_patients, or another generator)."""


@dataclass(frozen=True)
class ReplicatedUniques:
    """What the guard did to one release: aggregates only (no row, key or hash of training data).

    ``matched_rows``: synthetic rows per table equal to a unique training row; ``near_matched_rows``: rows
    of the patient table matched only as near replicas (all attribute columns but one; module docstring);
    ``removed_rows``: rows removed per table, those and everything below them; ``removed_patients`` of
    ``patients_before``. Every patient table is listed, at zero when nothing matched, so the shape says
    nothing about the data.
    """

    applied: bool
    reason: str = ""
    matched_rows: dict[str, int] = field(default_factory=dict)
    near_matched_rows: dict[str, int] = field(default_factory=dict)
    removed_rows: dict[str, int] = field(default_factory=dict)
    removed_patients: int = 0
    patients_before: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def removed_share(self) -> float:
        return self.removed_patients / self.patients_before if self.patients_before else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"applied": self.applied}
        if not self.applied:
            out["reason"] = self.reason
            return out
        return {
            **out,
            "method": "rows equal on every attribute column to a training row unique on them (synthpop rm.replicated.uniques); "
                      "patient rows equal on all attribute columns but one to a training row unique on those",
            "matched_rows": self.matched_rows,
            "near_matched_rows": self.near_matched_rows,
            "removed_rows": self.removed_rows,
            "removed_patients": self.removed_patients,
            "patients_before": self.patients_before,
            "warnings": list(self.warnings),
        }


def not_applied(reason: str) -> ReplicatedUniques:
    return ReplicatedUniques(applied=False, reason=reason)


def patient_tables(schema: Schema) -> list[str]:
    """The tables holding patients' rows (the root and every table with a key path up to it), parents first."""
    return [
        t for t in schema.topological_order()
        if not schema.tables[t].reference and (t == schema.patient.table or schema.path_to_patient(t))
    ]


def attribute_columns(schema: Schema, table: str) -> list[str]:
    """The columns a row is compared on: everything but ids (keys, foreign keys, free ids) and direct identifiers."""
    return [c.name for c in schema.tables[table].columns.values() if c.type != "id" and c.privacy != "direct_identifier"]


MIN_NEAR_COLUMNS = 6
"""The near-replica rule needs this many attribute columns in the patient table. On a narrow table, a synthetic
person equal to a training-unique one on all columns but one is mostly a chance match, not a copy: MIMIC-shaped
``hosp`` (gender, age, anchor year, year group, date of death; 85 training patients) had 45 of 85 synthetic
patients near-matched and removed, where the demo's 8 columns had 49 of 2,965 and DE-SynPUF's 32 had 355 of 7,958."""


def replicated_unique_rows(train: Dataset, synthetic: Dataset, table: str) -> np.ndarray:
    """Row positions of ``synthetic``'s ``table`` equal (nulls equal to nulls) on every attribute column to a
    training row that is unique in training on those columns. Runs on ``train``'s connection."""
    cols = attribute_columns(train.schema, table)
    return _unique_matches(train, synthetic, table, cols, [cols])


MIN_CHANCE_ROWS = 200
"""A projection (all attribute columns but one) takes part in the near-replica rule only when it singles people out:
when fresh people match a training-unique row on it by chance less often than the share of patients the guard may
remove without a warning (``MAX_PATIENT_SHARE``, 5%), for on a projection they match more often a perfect generator
would lose more than that to it alone and be called a copier. The chance is estimated leave-one-out over training: the
share of training rows whose projection exactly one other training row shares (the demo's patients without their
eligibility_start, a demographic combination with an eligibility end that is the data's last day for 99%: 10.1%,
where its 2,035 holdout patients match 10.3% and the rule removed 443 of 2,965 synthetic patients on it; DE-SynPUF's
beneficiaries without their birth date, where ``cart`` copied people: 2.4%, holdout 2.6%, kept; every other projection
of either: 0.2% or less). A combination that fresh people share that often is the k-anonymity metric's to judge,
against its holdout. With fewer than ``MIN_CHANCE_ROWS`` training rows every projection takes part (the estimate
means little there, and the rule errs on the side of removing)."""


def identifying_projections(train: Dataset, table: str, *, min_columns: int = MIN_NEAR_COLUMNS,
                            max_chance: float = MAX_PATIENT_SHARE) -> list[list[str]]:
    """The all-but-one-column projections of ``table``'s attribute columns that fresh rows match a training-unique row
    on less often than ``max_chance``, estimated leave-one-out over training (``MIN_CHANCE_ROWS``); none when the table
    has fewer than ``min_columns`` (the near-replica rule does not apply there)."""
    cols = attribute_columns(train.schema, table)
    if len(cols) < max(min_columns, 3):  # projections of two columns or more
        return []
    projections = [[c for c in cols if c != out] for out in cols]
    if train.num_rows(table) < MIN_CHANCE_ROWS:
        return projections
    kept = []
    for proj in projections:
        listed = ", ".join(quote(c) for c in proj)
        chance = train.con.execute(
            f"SELECT coalesce(sum(n) FILTER (WHERE n = 2), 0) / sum(n) FROM "
            f"(SELECT count(*) AS n FROM {train.sql_name(table)} GROUP BY {listed})"
        ).fetchall()[0][0]
        if chance is None or float(chance) < max_chance:
            kept.append(proj)
    return kept


def near_replica_rows(train: Dataset, synthetic: Dataset, table: str, *, min_columns: int = MIN_NEAR_COLUMNS,
                      projections: list[list[str]] | None = None) -> np.ndarray:
    """Row positions of ``synthetic``'s ``table`` equal on all its attribute columns but one (any one of
    ``projections``, by default ``identifying_projections``) to a training row unique in training on those columns;
    none when the table has fewer than ``min_columns``."""
    cols = attribute_columns(train.schema, table)
    if len(cols) < max(min_columns, 3):  # a projection of two columns or more
        return np.array([], dtype=np.int64)
    if projections is None:
        projections = identifying_projections(train, table, min_columns=min_columns)
    if not projections:
        return np.array([], dtype=np.int64)
    return _unique_matches(train, synthetic, table, cols, projections)


def _unique_matches(train: Dataset, synthetic: Dataset, table: str, cols: list[str], projections: list[list[str]]) -> np.ndarray:
    """Row positions of ``synthetic``'s ``table`` equal (nulls equal to nulls), on the columns of any one of
    ``projections``, to a training row unique in training on those columns (sorted, each once)."""
    if not cols:
        return np.array([], dtype=np.int64)
    frame = synthetic.con.sql(f"SELECT {', '.join(quote(c) for c in cols)} FROM {synthetic.sql_name(table)}").to_arrow_table()
    if frame.num_rows == 0:
        return np.array([], dtype=np.int64)
    frame = frame.append_column("__row", pa.array(np.arange(frame.num_rows, dtype=np.int64)))
    view = f"__synthetic_uniques_{table}"
    con = train.con
    con.register(view, frame)
    found = []
    try:
        for proj in projections:
            listed = ", ".join(quote(c) for c in proj)
            on = " AND ".join(f"s.{quote(c)} IS NOT DISTINCT FROM u.{quote(c)}" for c in proj)
            found.append(con.execute(
                f"SELECT s.__row FROM {quote(view)} s JOIN "
                f"(SELECT {listed} FROM {train.sql_name(table)} GROUP BY {listed} HAVING count(*) = 1) u ON {on}"
            ).fetchnumpy()["__row"])
    finally:
        con.unregister(view)
    return np.unique(np.concatenate(found).astype(np.int64)) if found else np.array([], dtype=np.int64)


def remove_replicated_uniques(
    train: Dataset, synthetic: Dataset, *, max_patient_share: float = MAX_PATIENT_SHARE, progress: Progress | None = None,
    min_near_columns: int = MIN_NEAR_COLUMNS,
) -> tuple[Dataset, ReplicatedUniques]:
    """``synthetic`` without the rows of patient tables that replicate a training-unique row (with their subtrees).

    Returns the dataset (``synthetic`` itself when nothing matched) and what was removed. When the
    removal empties a table that had rows, or takes more than ``max_patient_share`` of the patients, it
    goes on and says so in ``warnings`` (and through ``progress``).
    """
    guard = UniquesGuard(train, max_patient_share=max_patient_share, progress=progress, min_near_columns=min_near_columns)
    kept = guard.apply(synthetic)
    return kept, guard.finish()


class UniquesGuard:
    """The guard over a cohort that comes in batches (``Generator.sample_batches``): ``apply`` to each batch,
    then ``finish`` for the totals, with the warnings judged on the whole cohort."""

    def __init__(self, train: Dataset, *, max_patient_share: float = MAX_PATIENT_SHARE, progress: Progress | None = None,
                 min_near_columns: int = MIN_NEAR_COLUMNS):
        if not 0.0 <= max_patient_share <= 1.0:
            raise ValueError(f"The 'max_patient_share' parameter must be a float in [0, 1]; got {max_patient_share!r} instead.")
        self.train = train
        self.max_patient_share = max_patient_share
        self.min_near_columns = min_near_columns
        self.say = progress or (lambda _m: None)
        self.tables = patient_tables(train.schema)
        self.matched = dict.fromkeys(self.tables, 0)
        self.near = {train.schema.patient.table: 0}
        self.projections: list[list[str]] | None = None  # the near-replica rule's, fitted on train at the first batch
        self.before = dict.fromkeys(train.schema.tables, 0)
        self.after = dict.fromkeys(train.schema.tables, 0)
        self.patients_before = 0
        self.patients_after = 0

    def apply(self, synthetic: Dataset) -> Dataset:
        """One batch without its replicated uniques (itself when nothing matched)."""
        schema = synthetic.schema
        if self.train.schema.fingerprint != schema.fingerprint:
            raise ValueError("the training data and the synthetic cohort have different schemas")
        exact = {t: replicated_unique_rows(self.train, synthetic, t) for t in self.tables}
        root = schema.patient.table
        if self.projections is None:
            self.projections = identifying_projections(self.train, root, min_columns=self.min_near_columns)
        near = np.setdiff1d(near_replica_rows(self.train, synthetic, root, min_columns=self.min_near_columns,
                                              projections=self.projections), exact[root])
        self.near[root] += int(near.size)
        matched = {**exact, root: np.union1d(exact[root], near)}
        before = synthetic.row_counts()
        patients = _n_patients(schema, synthetic.to_arrow(schema.patient.table))
        dataset, after, patients_after = synthetic, before, patients
        if any(len(rows) for rows in matched.values()):
            frames = {t: synthetic.to_arrow(t) for t in schema.tables}
            keep = _cascade(schema, frames, matched)
            kept = {t: frames[t].filter(pa.array(keep[t])) if t in keep else frames[t] for t in schema.tables}
            after = {t: kept[t].num_rows for t in schema.tables}
            patients_after = _n_patients(schema, kept[schema.patient.table])
            dataset, report = frames_to_dataset(
                schema, kept, con=synthetic.con, namespace=f"{synthetic.namespace}_guarded", source=synthetic.source
            )
            if not report.ok:
                raise DataValidationError(report)
        for t, rows in exact.items():
            self.matched[t] += int(len(rows))
        for t in schema.tables:
            self.before[t] += before[t]
            self.after[t] += after[t]
        self.patients_before += patients
        self.patients_after += patients_after
        return dataset

    def finish(self) -> ReplicatedUniques:
        """What the guard removed from the whole cohort; says so (and warns) through ``progress``."""
        removed = {t: self.before[t] - self.after[t] for t in self.tables}
        result = ReplicatedUniques(
            applied=True,
            matched_rows=dict(self.matched),
            near_matched_rows=dict(self.near),
            removed_rows=removed,
            removed_patients=self.patients_before - self.patients_after,
            patients_before=self.patients_before,
            warnings=tuple(_warnings(self.tables, self.before, self.after, self.patients_before, self.patients_after, self.max_patient_share)),
        )
        if any(self.matched.values()) or any(self.near.values()):
            self.say(
                f"removed {result.removed_patients:,} of {self.patients_before:,} synthetic patients and "
                + ", ".join(f"{n:,} {t} row(s)" for t, n in removed.items())
                + " replicating a row unique in training"
            )
        for warning in result.warnings:
            self.say(f"WARNING: {warning}")
        return result


def _cascade(schema: Schema, frames: dict[str, pa.Table], matched: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep masks per table: matched rows out; a matched root row takes its patient's rows everywhere; a
    removed row takes every row that references it, through any foreign key (its children, and rows pointing at
    it by a self-reference or a secondary key), until no kept row references a removed one."""
    keep = {t: np.ones(frames[t].num_rows, dtype=bool) for t in frames}
    for table, rows in matched.items():
        keep[table][rows] = False
    root, pcol = schema.patient.table, schema.patient.column
    if len(matched.get(root, ())):
        gone = pc.unique(frames[root][pcol].take(pa.array(matched[root])))
        for name in frames:
            col = schema.patient_column_of(name)
            if col is not None and not schema.tables[name].reference:
                keep[name] &= ~_in(frames[name][col], gone)
    links = [(name, col.name, *col.foreign_key) for name in frames for col in schema.tables[name].foreign_keys
             if col.foreign_key[0] in frames and not schema.tables[col.foreign_key[0]].reference]  # type: ignore[index]
    changed = True
    while changed:  # a removal reaches grandchildren through children, and chains of self-references
        changed = False
        for name, column, parent, parent_col in links:
            removed_keys = frames[parent][parent_col].filter(pa.array(~keep[parent]))
            if len(removed_keys):
                hit = keep[name] & _in(frames[name][column], pc.unique(removed_keys))
                if hit.any():
                    keep[name] &= ~hit
                    changed = True
    return keep


def _in(values: pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    """Whether each value is one of ``keys`` (a null is never in it)."""
    return pc.fill_null(pc.is_in(values, value_set=keys.drop_null()), False).to_numpy(zero_copy_only=False).astype(bool)


def _n_patients(schema: Schema, root: pa.Table) -> int:
    return int(pc.count_distinct(root[schema.patient.column]).as_py())


def _warnings(
    tables: list[str], before: dict[str, int], after: dict[str, int], patients_before: int, patients_after: int, limit: float
) -> list[str]:
    out = [
        f"table {t} is empty after removing the rows that replicate training-unique rows (it had {before[t]:,})"
        for t in tables if before[t] and not after[t]
    ]
    lost = patients_before - patients_after
    if patients_before and lost / patients_before > limit:
        out.append(
            f"{lost:,} of {patients_before:,} synthetic patients ({lost / patients_before:.1%}, more than {limit:.0%}) "
            "replicated a patient unique in training and were removed: the generator copies training records "
            "(raise min_patients or use another generator)"
        )
    return out
