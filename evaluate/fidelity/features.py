"""Bounded, seeded row samples and their encoding as model features (detection and utility metrics).

Sampling is deterministic for a seed and independent of the physical row order: rows are ordered by a
hash of their values mixed with the seed and the first ``n`` are kept, in DuckDB. Only these samples
(at most ``EvalOptions.max_rows`` rows per side and table) ever reach NumPy.

Encoding follows the schema: numerical columns as numbers, datetimes as days since 1970, categorical,
code and boolean columns as categories (the ``top`` most frequent of a reference sample, the rest
``other``). The same fitted encoder is applied to every sample that is compared.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from data_schemas.model import Column
from data_schemas.rules import quote
from evaluate.fidelity._common import SHAPES, value_expr

TOP_CATEGORIES = 20


def feature_select(column: Column) -> str:
    """SQL giving a column as a model input: DOUBLE for continuous columns, VARCHAR for the others."""
    v = value_expr(column)
    if column.type == "datetime":
        return f"epoch({v}) / 86400.0 AS {quote(column.name)}"
    if SHAPES[column.type] == "continuous":
        return f"CAST({v} AS DOUBLE) AS {quote(column.name)}"
    return f"CAST({v} AS VARCHAR) AS {quote(column.name)}"


def seed_constant(seed: int) -> int:
    """A 63-bit constant derived from the seed (SHA-256), mixed into the sampling hash."""
    return int.from_bytes(hashlib.sha256(f"synthmed-sample:{int(seed)}".encode()).digest()[:8], "big") >> 1


def sample_frame(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: Sequence[Column],
    n: int,
    seed: int,
    *,
    key: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """At most ``n`` rows of ``relation``, the same ones for a seed whatever the physical row order.

    Rows are ordered by ``hash(hash(key) xor c(seed))``; ``key`` should be the table's primary key. Without
    one, identical rows are told apart by their rank among their copies, so a run of duplicates is never
    taken or left as a block. ``extra`` are further SQL select items (``expr AS name``).
    """
    if n <= 0:
        raise ValueError(f"The 'n' parameter of sample_frame must be a positive integer; got {n!r} instead.")
    selects = ", ".join([feature_select(c) for c in columns] + list(extra)) or "1 AS __one"
    mix = seed_constant(seed)
    if key:  # sha256 of the key's text: the same order on DuckDB and on Spark (hash() differs between them)
        sql = f"SELECT {selects} FROM {relation} ORDER BY sha256('{mix}:' || {_text(key)}) LIMIT {int(n)}"
    else:
        names = ", ".join(quote(c.name) for c in columns) or "1"
        text = _text([c.name for c in columns] + ["__copy"])
        sql = (
            f"SELECT {selects} FROM (SELECT *, row_number() OVER (PARTITION BY {names}) AS __copy FROM {relation}) "
            f"ORDER BY sha256('{mix}:' || {text}) LIMIT {int(n)}"
        )
    data = con.execute(sql).fetchnumpy()
    return {k: _plain(v) for k, v in data.items()}


def _text(columns: Sequence[str]) -> str:
    """SQL text of a row's columns (NULL as an escape), the input of the sampling hash."""
    return " || '|' || ".join(f"coalesce(CAST({quote(c)} AS VARCHAR), '\\N')" for c in columns)


def _plain(values: Any) -> np.ndarray:
    """A NumPy array with None / masked entries as NaN (numbers) or None (objects)."""
    if isinstance(values, np.ma.MaskedArray):
        if values.dtype.kind in "fiub":
            return values.astype(np.float64).filled(np.nan)
        out = values.data.astype(object)
        out[np.ma.getmaskarray(values)] = None
        return out
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64)
    return arr


@dataclass(frozen=True)
class Encoder:
    """Column order, which columns are categorical and the categories kept for each."""

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def n_features(self) -> int:
        return len(self.numeric) + len(self.categorical)

    def ordinal(self, frame: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(X, categorical mask) for histogram gradient boosting: categories as codes 0..K (K = other),
        missing values as NaN."""
        cols = [np.asarray(frame[name], dtype=np.float64) for name in self.numeric]
        for name, cats in self.categorical:
            cols.append(_codes(frame[name], cats))
        n = len(next(iter(frame.values()))) if frame else 0
        x = np.column_stack(cols) if cols else np.empty((n, 0))
        mask = np.array([False] * len(self.numeric) + [True] * len(self.categorical), dtype=bool)
        return x, mask

    def one_hot(self, frame: dict[str, np.ndarray], center: np.ndarray | None = None, scale: np.ndarray | None = None) -> np.ndarray:
        """Dense design matrix for linear models: standardized numbers (missing -> 0 = the mean) with a
        missing indicator, and one column per category (+ other, + missing)."""
        blocks = []
        for i, name in enumerate(self.numeric):
            v = np.asarray(frame[name], dtype=np.float64)
            miss = np.isnan(v)
            c = 0.0 if center is None else center[i]
            s = 1.0 if scale is None else scale[i]
            blocks.append(np.where(miss, 0.0, (v - c) / s)[:, None])
            blocks.append(miss[:, None].astype(np.float64))
        for name, cats in self.categorical:
            codes = _codes(frame[name], cats)
            k = len(cats) + 2
            idx = np.where(np.isnan(codes), k - 1, codes).astype(np.int64)
            block = np.zeros((len(idx), k))
            block[np.arange(len(idx)), idx] = 1.0
            blocks.append(block)
        n = len(next(iter(frame.values()))) if frame else 0
        return np.hstack(blocks) if blocks else np.empty((n, 0))

    def numeric_scaling(self, frame: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) of each numeric column on ``frame``, ignoring missing values."""
        centers, scales = [], []
        for name in self.numeric:
            v = np.asarray(frame[name], dtype=np.float64)
            v = v[~np.isnan(v)]
            c = float(v.mean()) if v.size else 0.0
            s = float(v.std()) if v.size else 1.0
            centers.append(c)
            scales.append(s if s > 0 else 1.0)
        return np.array(centers), np.array(scales)


def fit_encoder(columns: Sequence[Column], reference: dict[str, np.ndarray], *, top: int = TOP_CATEGORIES) -> Encoder:
    """Keep the ``top`` most frequent categories of each discrete column in ``reference`` (ties by value)."""
    numeric: list[str] = []
    categorical: list[tuple[str, tuple[str, ...]]] = []
    for col in columns:
        if SHAPES[col.type] == "continuous":
            numeric.append(col.name)
            continue
        values = [v for v in reference[col.name] if v is not None]
        uniq, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True) if values else ([], [])
        order = sorted(zip(uniq, counts), key=lambda uc: (-int(uc[1]), str(uc[0])))
        categorical.append((col.name, tuple(str(u) for u, _ in order[:top])))
    return Encoder(tuple(numeric), tuple(categorical))


def _codes(values: np.ndarray, cats: tuple[str, ...]) -> np.ndarray:
    lookup = {c: float(i) for i, c in enumerate(cats)}
    other = float(len(cats))
    return np.array([np.nan if v is None else lookup.get(str(v), other) for v in values], dtype=np.float64)


def informative(columns: Sequence[Column], frames: Sequence[dict[str, np.ndarray]]) -> list[Column]:
    """Columns with at least one value and more than one distinct value across the frames."""
    keep = []
    for col in columns:
        values = np.concatenate([np.asarray(f[col.name], dtype=object) for f in frames])
        present = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
        if len({str(v) for v in present[:100_000]}) > 1:
            keep.append(col)
    return keep


def blank_empty_numbers(x_fit: np.ndarray, x_other: np.ndarray, categorical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of both matrices with numeric columns that are missing in every fitting row set to 0.

    Such a column carries nothing to learn, and scikit-learn's histogram binning fails on it
    ("window shape cannot be larger than input array shape"), e.g. a death date absent from a fold.
    """
    empty = np.flatnonzero(~categorical & np.isnan(x_fit).all(axis=0)) if x_fit.size else np.array([], dtype=np.int64)
    if empty.size == 0:
        return x_fit, x_other
    x_fit, x_other = x_fit.copy(), x_other.copy()
    x_fit[:, empty] = 0.0
    x_other[:, empty] = 0.0
    return x_fit, x_other
