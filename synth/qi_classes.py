"""Quasi-identifier equivalence classes (Sweeney, "k-anonymity", 2002), generalised as ARX and sdcMicro generalise.

One definition for both sides of a release: the evaluator's ``privacy.k_anonymity`` counts how often synthetic
patients point at small training classes, and ``cart``'s ``min_patients`` keeps them from doing so more often than
fresh patients of the same population do (:class:`QiClasses`). Exact values make every patient unique, so values
are generalised first, fitted on train: dates become bands of ``date_band_years`` years of their year, numbers one
of ``numeric_bins`` quantile bands, and a categorical column with more than ``max_categories`` distinct training
values (a county, a postcode) is left out (taken to the top of its hierarchy). All in SQL; only counts leave DuckDB.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from data_schemas.model import Column, Schema
from data_schemas.rules import quote
from synth.load import Dataset

DATE_BAND_YEARS = 5
NUMERIC_BINS = 10
MAX_QI_CATEGORIES = 100


def patient_order(schema: Schema) -> str | None:
    """SQL order (over alias ``q``) of a patient's rows in the patient table: its other key columns, then its date."""
    table = schema.patient_table
    keys = [k for k in table.primary_key if k != schema.patient.column]
    if table.order_by and table.order_by not in keys:
        keys.append(table.order_by)
    return ", ".join(f"q.{quote(k)}" for k in keys) if keys else None


def combo_sql(columns: list[str], generalised: dict[str, str] | None = None) -> str:
    """SQL expression (over alias ``q``) of one row's combination: its generalised values joined into one string."""
    exprs = [(generalised or {}).get(c, f"CAST(q.{quote(c)} AS VARCHAR)") for c in columns]
    parts = ", ".join(f"coalesce({e}, chr(0))" for e in exprs)
    return f"concat_ws(chr(31), {parts})"


def qi_combinations_sql(dataset: Dataset, columns: list[str], generalised: dict[str, str] | None = None) -> str:
    """SQL of ``(k, combo)``: one quasi-identifier combination per patient (from its first patient-table row)."""
    schema = dataset.schema
    combo = combo_sql(columns, generalised)
    order = patient_order(schema)
    agg = f"first({combo} ORDER BY {order})" if order else f"min({combo})"
    key = quote(schema.patient.column)
    return (
        f"SELECT CAST(q.{key} AS VARCHAR) AS k, {agg} AS combo FROM {dataset.sql_name(schema.patient.table)} q "
        f"WHERE q.{key} IS NOT NULL GROUP BY 1"
    )


def generalise(train: Dataset, columns: list[Column], *, date_band_years: int = DATE_BAND_YEARS,
               numeric_bins: int = NUMERIC_BINS, max_categories: int = MAX_QI_CATEGORIES,
               ) -> tuple[list[str], dict[str, str], list[str]]:
    """(columns kept, column -> generalised SQL expression over ``q``, notes on what was generalised), fitted on train."""
    con, rel = train.con, train.sql_name(train.schema.patient.table)
    kept: list[str] = []
    exprs: dict[str, str] = {}
    notes: list[str] = []
    for col in columns:
        q = f"q.{quote(col.name)}"
        if col.type == "datetime":
            exprs[col.name] = f"CAST(CAST(floor(year({q}) / {date_band_years}) * {date_band_years} AS BIGINT) AS VARCHAR)"
            notes.append(f"{col.name}: {date_band_years}-year band of the year")
        elif col.type == "numerical":
            cuts = con.execute(
                f"SELECT quantile_cont(CAST({quote(col.name)} AS DOUBLE), "
                f"{[i / numeric_bins for i in range(1, numeric_bins)]}) FROM {rel}"
            ).fetchall()[0][0]
            cuts = sorted(set(float(c) for c in (cuts or []) if c is not None))
            cases = " ".join(f"WHEN CAST({q} AS DOUBLE) < {c!r} THEN '{i}'" for i, c in enumerate(cuts))
            exprs[col.name] = f"CASE WHEN {q} IS NULL THEN NULL {cases} ELSE '{len(cuts)}' END"
            notes.append(f"{col.name}: one of {len(cuts) + 1} quantile bands of train")
        else:
            n = int(con.execute(f"SELECT count(DISTINCT {quote(col.name)}) FROM {rel}").fetchall()[0][0])  # type: ignore[index]
            if n > max_categories:
                notes.append(f"{col.name}: left out ({n} distinct training values, more than max_qi_categories="
                             f"{max_categories}: generalised to the top of its hierarchy)")
                continue
        kept.append(col.name)
    return kept, exprs, notes


@dataclass(frozen=True)
class QiClasses:
    """Training's quasi-identifier classes as a generator needs them (aggregates only: class sizes, one rate).

    ``fresh_rate`` is how often a fresh patient of the population lands in a training class of 1 to ``k - 1``
    patients, estimated leave-one-out over training (a patient of a class of ``m`` finds ``m - 1`` others): a
    generator that learnt the population points at small classes about this often, one that replays training's
    combinations more (every one of Synthea's 93 training patients is in a class under 5: a replay scores 1.0, fresh
    patients 0.48 to 0.53).
    """

    columns: tuple[str, ...]
    generalised: dict[str, str] = field(repr=False)
    sizes: dict[str, int] = field(repr=False)
    k: int
    fresh_rate: float

    @classmethod
    def fit(cls, schema: Schema, patient_rows: pd.DataFrame, patients: pd.DataFrame, k: int) -> QiClasses | None:
        """Classes of ``patients`` (one row per patient) with the generalisation fitted on ``patient_rows`` (the
        patient table as it is); None when the schema tags no quasi-identifier there or one is not a column of
        ``patients`` (a patient table whose quasi-identifier varies over a patient's rows)."""
        qis = [c for _, c in schema.quasi_identifiers(schema.patient.table)]
        if not qis or len(patients) == 0 or any(c.name not in patients for c in qis):
            return None
        con = duckdb.connect()
        try:
            con.execute('CREATE SCHEMA "qi"')
            _load(con, schema.patient.table, patient_rows)
            columns, generalised, _notes = generalise(Dataset(schema, con, "qi", "<training>"), qis)
            if not columns:
                return None
            combos = _combos(con, patients, columns, generalised)
        finally:
            con.close()
        counts = pd.Series(combos).value_counts()
        sizes = {str(c): int(n) for c, n in counts.items()}
        m = counts.reindex(combos).to_numpy()
        fresh = float(np.mean((m >= 2) & (m <= k)))
        return cls(tuple(columns), generalised, sizes, k, fresh)

    def class_sizes(self, patients: pd.DataFrame) -> np.ndarray:
        """The training class size of each row's combination (0 where no training patient has it), in row order."""
        if len(patients) == 0:
            return np.zeros(0, dtype=np.int64)
        con = duckdb.connect()
        try:
            combos = _combos(con, patients, list(self.columns), self.generalised)
        finally:
            con.close()
        return np.array([self.sizes.get(c, 0) for c in combos], dtype=np.int64)

    def small(self, patients: pd.DataFrame) -> np.ndarray:
        """Whether each row points at a training class of 1 to ``k - 1`` patients."""
        sizes = self.class_sizes(patients)
        return (sizes >= 1) & (sizes < self.k)


def _load(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """``frame`` as the table ``qi.<table>`` (missing values, NaN in text columns included, as NULL)."""
    con.register("__qi_frame", _nulls(frame))
    con.execute(f'CREATE OR REPLACE TABLE "qi".{quote(table)} AS SELECT * FROM __qi_frame')
    con.unregister("__qi_frame")


def _combos(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, columns: list[str], generalised: dict[str, str]) -> list[str]:
    """Each row's combination, in row order."""
    con.register("__qi_rows", _nulls(frame[columns]).assign(__row=np.arange(len(frame))))
    try:
        rows = con.execute(f"SELECT {combo_sql(columns, generalised)} FROM __qi_rows q ORDER BY q.__row").fetchall()
    finally:
        con.unregister("__qi_rows")
    return [r[0] for r in rows]


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as objects with None for missing values, so DuckDB reads NULL (never the string 'nan')."""
    out = {}
    for c in frame.columns:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
            s = s.astype(object).where(s.notna(), None)
        out[c] = s
    return pd.DataFrame(out, index=frame.index)
