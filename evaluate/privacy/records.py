"""Per-patient records: the unit of every privacy metric is the patient, not the row (design.md).

A patient's record is their patient row(s) plus their events, flattened in SQL into one row of
features per patient. Roles come from the schema, never from dtypes (style.md, rule 1):

* **patient table**: every column that is not a direct identifier, not an ``id`` and not ``text``:
  categorical, code and boolean columns as categories, numerical columns as numbers, datetimes as
  days since 1970-01-01. When the patient table keeps several rows per patient (its primary key is
  more than the patient key, as DE-SynPUF's beneficiary-year rows), numbers and dates are averaged,
  categories taken from the first row in primary-key order, and the number of rows is a feature.
* **every other table linked to the patient** (through its foreign-key chain): the number of rows;
  for each categorical / code / boolean column (a repeated column group counts as one column) the
  count of each of the ``top_k`` values held by most training patients; for each numerical column
  the sum and the mean; for each datetime column the first date and the span in days.
* **modes** (used by the Anonymeter-style attacks only): for each sensitive categorical or code column
  of an event table, the patient's most frequent value (ties to the smallest).

Direct identifiers, ids and free text never enter a record; each is listed as skipped with the
reason. The spec (which columns, which top values) is fitted on the training data only and applied
unchanged to train, holdout and synthetic data.

:class:`Encoding` turns records into float32 vectors for distances, fitted on training records:
numbers are imputed with the training median and divided by their robust range (1st to 99th
percentile of train; the full range when that is zero; 1 when constant), then capped at half a
range beyond that band (``CAP``), so that a few absurd values (a generator's amount of 10^6 where
patients have 10^3) cannot make every far-off record share the same nearest "hub" patient;
patient-level numbers that can be missing get a 0/1 missing indicator. A categorical column with
at most ``max_categories`` training values is one-hot encoded (plus a "missing" and an "unseen"
slot), scaled by 1/sqrt(2) so that two different categories add exactly 1 to the squared Euclidean
distance, as a Gower-style mismatch does. A larger one (a county, a diagnosis code) is not cut to
its most frequent values with the rest lumped into one "other" slot (that made half of DE-SynPUF's
patients share a county, hiding exactly the rare values that identify people): every value gets a
fixed pseudo-random sign code of ``CODE_DIMS`` dimensions from a hash of the value, scaled so that
equal values coincide and two different values add 1 on average to the squared distance,
as a mismatch does, in far fewer dimensions than a one-hot over hundreds of values (16 dimensions: a
mismatch adds 1 +- 0.25, and two different values share a code with probability 2^-16; 32 dimensions
made the nearest-neighbour search of the DCR 60 % slower for a little less noise). Squared distance
= sum of squared scaled number differences + number of category mismatches.
"""
from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa

from data_schemas.model import Column, Schema
from data_schemas.rules import quote, with_patient_key_sql
from evaluate.errors import EmptyInputError
from evaluate.result import Skipped
from synth.load import Dataset
from synth.qi_classes import patient_order

FeatureKind = Literal["numeric", "categorical"]
FeatureRole = Literal["patient", "rows", "count", "code_count", "aggregate", "mode"]

SQRT_HALF = np.float32(math.sqrt(0.5))
NULL_KEY = "\x00<null>"
CAP = 0.5
"""Scaled numbers are capped this many robust ranges beyond the 1st-99th percentile band of train."""
CODE_DIMS = 16
"""Dimensions of the sign code of a categorical column with more than ``max_categories`` training values."""


@dataclass(frozen=True)
class Feature:
    """One column of a patient record: its name, kind, role, source and SQL aggregate (over alias ``q``)."""

    name: str
    kind: FeatureKind
    role: FeatureRole
    table: str
    column: str | None
    sql: str
    privacy: str | None = None


@dataclass(frozen=True)
class RecordSpec:
    """Which features a patient record has; fitted on train, applied to every dataset."""

    schema_name: str
    patient_table: str
    patient_column: str
    features: tuple[Feature, ...]
    skipped: tuple[Skipped, ...] = ()
    top_k: int = 10

    def select(self, *roles: FeatureRole) -> list[Feature]:
        return [f for f in self.features if f.role in roles]

    @property
    def distance_features(self) -> list[Feature]:
        """Features that enter distances and density estimates (everything but the modes)."""
        return [f for f in self.features if f.role != "mode"]

    @property
    def attack_features(self) -> list[Feature]:
        """Features of the Anonymeter-style attacks: patient columns, event counts and modes."""
        return [f for f in self.features if f.role in ("patient", "rows", "count", "mode")]


@dataclass(frozen=True)
class Records:
    """Records of some patients of one dataset: keys in the order asked, one array per feature."""

    keys: np.ndarray
    columns: dict[str, np.ndarray]
    spec: RecordSpec = field(repr=False)

    def __len__(self) -> int:
        return int(self.keys.size)

    def take(self, index: np.ndarray) -> Records:
        """The records at positions ``index`` (a view of the same spec)."""
        return Records(self.keys[index], {k: v[index] for k, v in self.columns.items()}, self.spec)


# -- fitting the spec on train ---------------------------------------------------------------------------


def _usable(col: Column) -> str | None:
    """Why a column never enters a record, or None when it does."""
    if col.privacy == "direct_identifier":
        return "direct identifier: never used by privacy metrics"
    if col.type == "id":
        return "key column (id): never used by privacy metrics"
    if col.type == "text":
        return "free text is not encoded"
    return None


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _days(expr: str) -> str:
    return f"(epoch(CAST({expr} AS TIMESTAMP)) / 86400.0)"


def event_tables(schema: Schema) -> tuple[list[str], list[Skipped]]:
    """Tables below the patient table (with a foreign-key chain to it), and those left out with why."""
    tables: list[str] = []
    skipped: list[Skipped] = []
    for name in schema.topological_order():
        table = schema.tables[name]
        if name == schema.patient.table:
            continue
        if table.reference:
            skipped.append(Skipped("reference table: holds no patient rows", table=name))
        elif not schema.path_to_patient(name):
            skipped.append(Skipped("no foreign-key chain to the patient table", table=name))
        else:
            tables.append(name)
    return tables, skipped


def _column_units(schema: Schema, table: str) -> list[tuple[str, list[str], Column]]:
    """Columns of a table as units: a single column, or a whole repeated group (name, members, template)."""
    tbl = schema.tables[table]
    units: list[tuple[str, list[str], Column]] = []
    seen_groups: set[str] = set()
    for col in tbl.columns.values():
        if col.group is None:
            units.append((col.name, [col.name], col))
        elif col.group not in seen_groups:
            seen_groups.add(col.group)
            grp = tbl.groups[col.group]
            units.append((grp.name, grp.column_names(), col))
    return units


def fit_record_spec(train: Dataset, *, top_k: int = 10) -> RecordSpec:
    """The record features of ``train``'s schema, with the top values of event categories fitted on train."""
    schema, con = train.schema, train.con
    rel = train.relations()
    ptable = schema.patient_table
    features: list[Feature] = []
    skipped: list[Skipped] = []
    order = patient_order(schema)
    multi_row = any(k != schema.patient.column for k in ptable.primary_key)
    for col in ptable.columns.values():
        why = _usable(col)
        if why:
            skipped.append(Skipped(why, table=ptable.name, column=col.name))
            continue
        q = f"q.{quote(col.name)}"
        name = f"{ptable.name}.{col.name}"
        if col.type in ("categorical", "code", "boolean"):
            value = f"CAST({q} AS VARCHAR)"
            sql = f"first({value} ORDER BY {order})" if order else f"min({value})"
            features.append(Feature(name, "categorical", "patient", ptable.name, col.name, sql, col.privacy))
        elif col.type == "numerical":
            features.append(Feature(name, "numeric", "patient", ptable.name, col.name, f"avg(CAST({q} AS DOUBLE))", col.privacy))
        elif col.type == "datetime":
            features.append(Feature(name, "numeric", "patient", ptable.name, col.name, f"avg({_days(q)})", col.privacy))
    if multi_row:
        features.append(Feature(f"{ptable.name}.n_rows", "numeric", "rows", ptable.name, None, "count(*)"))
    tables, table_skips = event_tables(schema)
    skipped.extend(table_skips)
    for tname in tables:
        table = schema.tables[tname]
        features.append(Feature(f"{tname}.n", "numeric", "count", tname, None, "count(*)"))
        base = with_patient_key_sql(schema, tname, rel)
        for unit, members, template in _column_units(schema, tname):
            col = template
            why = _usable(col)
            if why or col.references is not None:
                for m in members:
                    skipped.append(Skipped(why or "foreign key: never used by privacy metrics", table=tname, column=m))
                continue
            qs = [f"q.{quote(m)}" for m in members]
            if col.type in ("categorical", "code", "boolean"):
                values = _top_values(con, base, members, top_k)
                for v in values:
                    lit = _sql_str(v)
                    if len(qs) == 1:
                        sql = f"count(*) FILTER (WHERE CAST({qs[0]} AS VARCHAR) = {lit})"
                    else:
                        lst = ", ".join(f"CAST({x} AS VARCHAR)" for x in qs)
                        sql = f"sum(len(list_filter([{lst}], lambda x: x = {lit})))"
                    features.append(Feature(f"{tname}.{unit}[{v}]", "numeric", "code_count", tname, unit, sql, col.privacy))
                if col.privacy == "sensitive" and col.type in ("categorical", "code"):
                    features.append(Feature(f"{tname}.{unit}.mode", "categorical", "mode", tname, unit, "", col.privacy))
            elif col.type == "numerical":
                x = f"CAST({qs[0]} AS DOUBLE)" if len(qs) == 1 else None
                if x is None:
                    x = " + ".join(f"coalesce(CAST({m} AS DOUBLE), 0)" for m in qs)
                features.append(Feature(f"{tname}.{unit}.sum", "numeric", "aggregate", tname, unit, f"sum({x})", col.privacy))
                features.append(Feature(f"{tname}.{unit}.mean", "numeric", "aggregate", tname, unit, f"avg({x})", col.privacy))
            elif col.type == "datetime":
                d = _days(qs[0])
                features.append(Feature(f"{tname}.{unit}.first", "numeric", "aggregate", tname, unit, f"min({d})", col.privacy))
                features.append(
                    Feature(f"{tname}.{unit}.span", "numeric", "aggregate", tname, unit, f"max({d}) - min({d})", col.privacy)
                )
    return RecordSpec(schema.name, ptable.name, schema.patient.column, tuple(features), tuple(skipped), top_k)


def _top_values(con: duckdb.DuckDBPyConnection, base: str, members: Sequence[str], top_k: int) -> list[str]:
    """The ``top_k`` values held by most patients (ties by value), over one column or a column group."""
    if top_k <= 0:
        return []
    if len(members) == 1:
        values = f"SELECT __patient_key AS k, CAST(q.{quote(members[0])} AS VARCHAR) AS v FROM ({base}) q"
    else:
        lst = ", ".join(f"CAST(q.{quote(m)} AS VARCHAR)" for m in members)
        values = f"SELECT __patient_key AS k, unnest([{lst}]) AS v FROM ({base}) q"
    rows = con.execute(
        f"SELECT v, count(DISTINCT k) AS n FROM ({values}) WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {int(top_k)}"
    ).fetchall()
    return [str(r[0]) for r in rows]


# -- building records ----------------------------------------------------------------------------------------


def patient_keys(dataset: Dataset) -> np.ndarray:
    """Every distinct patient key of a dataset as strings, sorted (so samples do not depend on row order)."""
    schema = dataset.schema
    key = quote(schema.patient.column)
    rel = dataset.sql_name(schema.patient.table)
    got = dataset.con.execute(
        f"SELECT DISTINCT CAST({key} AS VARCHAR) AS k FROM {rel} WHERE {key} IS NOT NULL ORDER BY k"
    ).fetchnumpy()["k"]
    return np.asarray(got, dtype=object)


@contextmanager
def registered_keys(con: duckdb.DuckDBPyConnection, keys: np.ndarray) -> Iterator[str]:
    """Register ``keys`` (with their positions) as a temporary view; yields its quoted name."""
    name = f"__sm_keys_{uuid.uuid4().hex}"
    table = pa.table({"k": pa.array([str(k) for k in keys], type=pa.string()), "pos": pa.array(np.arange(len(keys)))})
    con.register(name, table)
    try:
        yield quote(name)
    finally:
        con.unregister(name)


def records_sql(dataset: Dataset, spec: RecordSpec, keys_view: str) -> str:
    """SQL of one row per key of ``keys_view`` (in its order): ``__k`` then ``f0, f1, ...`` per feature."""
    schema = dataset.schema
    rel = dataset.relations()
    index = {f.name: i for i, f in enumerate(spec.features)}
    ctes: list[str] = []
    joins: list[str] = []
    selects: list[str] = []
    keyset = f"(SELECT k FROM {keys_view})"
    pkey = quote(spec.patient_column)
    by_table: dict[str, list[Feature]] = {}
    for f in spec.features:
        if f.role != "mode":
            by_table.setdefault(f.table, []).append(f)
    for t, (tname, feats) in enumerate(by_table.items()):
        alias = f"a{t}"
        cols = ", ".join(f"{f.sql} AS f{index[f.name]}" for f in feats)
        if tname == spec.patient_table:
            source = f"{rel[tname]} q WHERE CAST(q.{pkey} AS VARCHAR) IN {keyset}"
            key = f"CAST(q.{pkey} AS VARCHAR)"
        else:
            base = with_patient_key_sql(schema, tname, rel)
            source = f"({base}) q WHERE CAST(q.__patient_key AS VARCHAR) IN {keyset}"
            key = "CAST(q.__patient_key AS VARCHAR)"
        ctes.append(f"{alias} AS (SELECT {key} AS __k, {cols} FROM {source} GROUP BY 1)")
        joins.append(f"LEFT JOIN {alias} ON {alias}.__k = keys.k")
        for f in feats:
            ref = f"{alias}.f{index[f.name]}"
            counted = f.role in ("count", "code_count") or (f.role == "aggregate" and f.name.endswith(".sum"))
            selects.append(f"CAST(coalesce({ref}, 0) AS DOUBLE) AS f{index[f.name]}" if counted else f"{ref} AS f{index[f.name]}")
    for m, f in enumerate(spec.select("mode")):
        alias = f"m{m}"
        base = with_patient_key_sql(schema, f.table, rel)
        members = _unit_members(schema, f.table, f.column or "")
        if len(members) == 1:
            values = f"SELECT q.__patient_key AS k, CAST(q.{quote(members[0])} AS VARCHAR) AS v FROM ({base}) q"
        else:
            lst = ", ".join(f"CAST(q.{quote(c)} AS VARCHAR)" for c in members)
            values = f"SELECT q.__patient_key AS k, unnest([{lst}]) AS v FROM ({base}) q"
        ctes.append(
            f"{alias} AS (SELECT CAST(k AS VARCHAR) AS __k, first(v ORDER BY n DESC, v) AS v FROM "
            f"(SELECT k, v, count(*) AS n FROM ({values}) WHERE v IS NOT NULL AND CAST(k AS VARCHAR) IN {keyset} "
            f"GROUP BY k, v) GROUP BY 1)"
        )
        joins.append(f"LEFT JOIN {alias} ON {alias}.__k = keys.k")
        selects.append(f"{alias}.v AS f{index[f.name]}")
    ordered = sorted(selects, key=lambda s: int(s.rsplit(" AS f", 1)[1]))
    with_clause = f"WITH {', '.join(ctes)} " if ctes else ""
    body = ", ".join(["keys.k AS __k", *ordered])
    return f"{with_clause}SELECT {body} FROM {keys_view} keys {' '.join(joins)} ORDER BY keys.pos"


def _unit_members(schema: Schema, table: str, unit: str) -> list[str]:
    tbl = schema.tables[table]
    if unit in tbl.groups:
        return tbl.groups[unit].column_names()
    return [unit]


def build_records(dataset: Dataset, spec: RecordSpec, keys: np.ndarray | None = None) -> Records:
    """Records of ``keys`` (all patients, sorted, when None) of ``dataset``, computed in SQL on its connection."""
    if keys is None:
        keys = patient_keys(dataset)
    keys = np.asarray(keys, dtype=object)
    if keys.size == 0:
        return Records(keys, {f.name: _empty(f) for f in spec.features}, spec)
    with registered_keys(dataset.con, keys) as view:
        table = dataset.con.sql(records_sql(dataset, spec, view)).to_arrow_table()
    columns: dict[str, np.ndarray] = {}
    for i, f in enumerate(spec.features):
        col = table.column(f"f{i}")
        if f.kind == "numeric":
            columns[f.name] = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        else:
            columns[f.name] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
    return Records(np.asarray(table.column("__k").to_numpy(zero_copy_only=False), dtype=object), columns, spec)


def _empty(f: Feature) -> np.ndarray:
    return np.empty(0, dtype=np.float64 if f.kind == "numeric" else object)


# -- full-record hashes for exact copies -----------------------------------------------------------------------


def record_hashes_sql(dataset: Dataset) -> str:
    """SQL of ``(__k, h)``: one 64-bit hash per patient over every value of every row of the patient.

    Rows are hashed over all columns that are neither ids nor direct identifiers, then summed per
    patient and table (so row order does not matter) and combined across tables with the row counts.
    """
    schema = dataset.schema
    rel = dataset.relations()
    tables = [schema.patient.table, *event_tables(schema)[0]]
    ctes, joins, parts = [], [], []
    for i, tname in enumerate(tables):
        cols = [c.name for c in schema.tables[tname].columns.values() if c.type != "id" and c.privacy != "direct_identifier"]
        row_hash = f"hash({', '.join(f'q.{quote(c)}' for c in cols)})" if cols else "hash(0)"
        if tname == schema.patient.table:
            source = f"{rel[tname]} q"
            key = f"CAST(q.{quote(schema.patient.column)} AS VARCHAR)"
        else:
            source = f"({with_patient_key_sql(schema, tname, rel)}) q"
            key = "CAST(q.__patient_key AS VARCHAR)"
        ctes.append(
            f"h{i} AS (SELECT {key} AS __k, sum(CAST({row_hash} AS HUGEINT)) AS s, count(*) AS n FROM {source} "
            f"WHERE {key} IS NOT NULL GROUP BY 1)"
        )
        if i:
            joins.append(f"LEFT JOIN h{i} ON h{i}.__k = h0.__k")
        parts.append(f"coalesce(h{i}.s, 0), coalesce(h{i}.n, 0)")
    return f"WITH {', '.join(ctes)} SELECT h0.__k AS __k, hash({', '.join(parts)}) AS h FROM h0 {' '.join(joins)}"


def record_hashes(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Patient keys and full-record hashes (uint64) of every patient of ``dataset``."""
    got = dataset.con.execute(record_hashes_sql(dataset)).fetchnumpy()
    keys = np.asarray(got["__k"], dtype=object)
    hashes = np.asarray(got["h"], dtype=np.uint64)
    order = np.argsort(keys, kind="stable")
    return keys[order], hashes[order]


# -- encoding for distances -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """Numbers robust-scaled and capped, small categories one-hot, large ones sign-coded; fitted on training records."""

    numeric: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray
    indicators: tuple[bool, ...]
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...] | None, ...]
    labels: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.labels)

    def transform(self, records: Records) -> np.ndarray:
        """A float32 matrix, one row per record, ``dim`` columns."""
        n = len(records)
        out = np.zeros((n, self.dim), dtype=np.float32)
        rows = np.arange(n)
        j = 0
        for i, name in enumerate(self.numeric):
            x = records.columns[name]
            missing = np.isnan(x)
            scaled = np.clip((x - self.center[i]) / self.scale[i], self.low[i], self.high[i])
            out[:, j] = np.where(missing, 0.0, scaled)
            j += 1
            if self.indicators[i]:
                out[:, j] = missing
                j += 1
        for name, cats in zip(self.categorical, self.categories):
            values, inverse, missing = _distinct(records.columns[name])
            if cats is None:
                # slot 0 = missing, then the sign code of the value
                out[missing, j] = SQRT_HALF
                present = ~missing
                out[present, j + 1 : j + 1 + CODE_DIMS] = sign_codes(values)[inverse[present]]
                j += 1 + CODE_DIMS
                continue
            # slot 0 = missing, 1.. = training values, last = a value never seen in training
            lookup = {c: k + 1 for k, c in enumerate(cats)}
            slot = np.array([lookup.get(v, len(cats) + 1) for v in values], dtype=np.int64)
            codes = np.where(missing, 0, slot[inverse] if slot.size else 0)
            out[rows, j + codes] = SQRT_HALF
            j += len(cats) + 2
        return out


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct present values as str, position of each value among them, missing mask), without a per-row Python loop."""
    import pandas as pd  # lazily: only encodings need it

    missing = pd.isna(values)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object).where(~missing, None), use_na_sentinel=True)
    return np.asarray([str(u) for u in uniques], dtype=object), np.maximum(codes, 0), np.asarray(missing, dtype=bool)


_CODE_SCALE = np.float32(1.0 / math.sqrt(2 * CODE_DIMS))


def sign_codes(values: np.ndarray) -> np.ndarray:
    """The sign code of each value: ``CODE_DIMS`` signs from the value's SHA-256, times 1/sqrt(2 CODE_DIMS).

    Two different values differ in Hamming(a, b) signs, adding ``2 Hamming / CODE_DIMS`` to the
    squared distance: 1 on average (+-0.25), as a category mismatch; a code is 1/2 away (squared) from
    the zero vector, so a value is also 1 away from a missing one.
    """
    out = np.empty((len(values), CODE_DIMS), dtype=np.float32)
    for i, v in enumerate(values):
        digest = np.frombuffer(hashlib.sha256(str(v).encode()).digest()[: CODE_DIMS // 8], dtype=np.uint8)
        out[i] = np.where(np.unpackbits(digest)[:CODE_DIMS] > 0, _CODE_SCALE, -_CODE_SCALE)
    return out


def fit_encoding(train: Records, *, max_categories: int = 30) -> Encoding:
    """Fit the distance encoding of ``train``'s distance features (see the module docstring)."""
    if len(train) == 0:
        raise EmptyInputError("the training data has no patients to fit the record encoding on")
    numeric, center, scale, low, high, indicators, labels = [], [], [], [], [], [], []
    categorical: list[str] = []
    categories: list[tuple[str, ...] | None] = []
    cat_labels: list[str] = []
    for f in train.spec.distance_features:
        x = train.columns[f.name]
        if f.kind == "numeric":
            finite = x[~np.isnan(x)]
            if finite.size:
                lo, med, hi = np.quantile(finite, [0.01, 0.5, 0.99])
                spread = hi - lo
                if spread <= 0:
                    spread = float(finite.max() - finite.min())
            else:
                lo = med = hi = 0.0
                spread = 0.0
            s = float(spread) if spread > 0 else 1.0
            numeric.append(f.name)
            center.append(float(med))
            scale.append(s)
            low.append((float(lo) - float(med)) / s - CAP)
            high.append((float(hi) - float(med)) / s + CAP)
            indicator = f.role == "patient" and finite.size < x.size
            indicators.append(indicator)
            labels.append(f.name)
            if indicator:
                labels.append(f"{f.name}.missing")
        else:
            values = _distinct(x)[0]
            categorical.append(f.name)
            if values.size > max_categories:
                categories.append(None)
                cat_labels.extend([f"{f.name}=<missing>", *(f"{f.name}=<code:{b}>" for b in range(CODE_DIMS))])
            else:
                kept = tuple(sorted(values))
                categories.append(kept)
                cat_labels.extend([f"{f.name}=<missing>", *(f"{f.name}={c}" for c in kept), f"{f.name}=<unseen>"])
    return Encoding(
        tuple(numeric),
        np.asarray(center, dtype=np.float64),
        np.asarray(scale, dtype=np.float64),
        np.asarray(low, dtype=np.float64),
        np.asarray(high, dtype=np.float64),
        tuple(indicators),
        tuple(categorical),
        tuple(categories),
        tuple(labels + cat_labels),  # the order of ``transform``: numbers (and indicators), then categories
    )


def spec_fingerprint(spec: RecordSpec) -> str:
    """A short hash of the features of a spec (for result notes and caches)."""
    text = "|".join(f"{f.name}:{f.kind}:{f.role}" for f in spec.features)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
