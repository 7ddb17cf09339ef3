"""The per-column and pair counts of the fidelity metrics, computed on integer codes of Arrow tables.

When the loader read both sides of a table from typed Parquet (``Dataset.arrow``), the column shapes and
the contingency tables of the pair trends are counted here instead of in SQL: category and code columns
arrive as Arrow dictionaries, so each is counted with ``numpy.bincount`` on its dictionary codes (the
two sides' dictionaries are matched once, value by value), continuous columns are sorted once per side
(KS statistic, quantiles, histogram), and every contingency table is a ``bincount`` of combined codes.
The numbers are the SQL path's (``_common.continuous_profile``, ``discrete_profile``, ``robust_range``,
``pairs.contingency_pairs``): the same counts, the same float operations; tests hold the two paths equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.model import Column
from evaluate.errors import EmptyInputError
from evaluate.fidelity._common import (
    BINS,
    TAIL_ROWS,
    TAIL_SHARE,
    TOP,
    ColumnStats,
    ContinuousProfile,
    DiscreteProfile,
    Kind,
    _bin_layout,
    kind_of,
)

SECONDS_PER_DAY = 86400.0


def numpy_values(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """The values of a primitive Arrow array as numpy over its own buffer, and its validity (None: no
    missing value). Read off the buffers: pyarrow's own conversions (``to_numpy`` with copies,
    ``fill_null`` with a Python value) import pandas, a quarter of a second this path does not need."""
    typ = arr.type
    n, offset = len(arr), arr.offset
    buffers = arr.buffers()
    if pa.types.is_boolean(typ):
        bits = np.unpackbits(np.frombuffer(buffers[1], dtype=np.uint8), bitorder="little") if n else np.zeros(0, np.uint8)
        values = bits[offset:offset + n].astype(np.int8)
    else:
        if pa.types.is_date32(typ):
            dtype = np.dtype(np.int32)
        elif pa.types.is_timestamp(typ) or pa.types.is_date64(typ):
            dtype = np.dtype(np.int64)
        else:
            dtype = np.dtype(typ.to_pandas_dtype())
        values = np.frombuffer(buffers[1], dtype=dtype, count=offset + n)[offset:] if n else np.zeros(0, dtype)
    valid = None
    if arr.null_count:
        bits = np.unpackbits(np.frombuffer(buffers[0], dtype=np.uint8), bitorder="little")
        valid = bits[offset:offset + n].astype(bool)
    return values, valid


def _one(chunked: pa.ChunkedArray) -> pa.Array:
    return chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)


@dataclass(frozen=True)
class Continuous:
    """One side of a continuous column: its present values (sorted, in the KS unit) and what the SQL path
    reads off ``numeric_expr`` (seconds since 1970 for datetimes)."""

    rows: int
    ks: np.ndarray  # sorted; numbers rounded to 14 decimals (SDMetrics' KSComplement), dates as days, timestamps as us
    numeric: np.ndarray  # sorted numeric_expr values (not rounded): seconds for datetimes

    @property
    def stats(self) -> ColumnStats:
        if not len(self.numeric):
            return ColumnStats(self.rows, 0)
        return ColumnStats(self.rows, len(self.numeric), float(self.numeric[0]), float(self.numeric[-1]))


def _present(chunked: pa.ChunkedArray) -> np.ndarray:
    """Non-null values of a numeric / temporal column as numpy (dates as int days, timestamps as int us)."""
    values, valid = numpy_values(_one(chunked))
    return values if valid is None else values[valid]


def continuous(column: Column, chunked: pa.ChunkedArray) -> Continuous:
    """The sorted present values of one side of a continuous column (NaN read as missing, as ``value_expr``)."""
    kind = kind_of(column)
    values = _present(chunked)
    if kind == "number":
        values = values.astype(np.float64, copy=False)
        values = np.sort(values[~np.isnan(values)])
        return Continuous(len(chunked), np.round(values, 14), values)
    values = np.sort(values)
    if kind == "integer":
        return Continuous(len(chunked), values, values.astype(np.float64))
    if kind == "date":
        return Continuous(len(chunked), values, values.astype(np.float64) * SECONDS_PER_DAY)
    return Continuous(len(chunked), values, values.astype(np.float64) / 1e6)


def _histogram_unit(values: np.ndarray, kind: Kind) -> np.ndarray:
    """KS-unit values in the histogram unit: days for datetimes (``epoch(v) / 86400.0``), else as DOUBLE."""
    if kind == "date":
        return values.astype(np.float64)  # epoch(date) / 86400.0 is the day number itself
    if kind == "timestamp":
        return values.astype(np.float64) / 1e6 / SECONDS_PER_DAY
    return values.astype(np.float64)


def quantile_cont(sorted_values: np.ndarray, q: float) -> float:
    """DuckDB's ``quantile_cont``: linear interpolation at position ``q * (n - 1)`` as ``lo + (hi - lo) * d``."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    a, b = float(sorted_values[lo]), float(sorted_values[hi])
    return a + (b - a) * (pos - lo)


def robust_range(side: Continuous) -> tuple[float, float] | None:
    """``_common.robust_range`` on sorted values: quantiles at ``q = max(1%, 10 / n)`` and ``1 - q``."""
    n = len(side.numeric)
    if not n:
        return None
    q = min(0.5, max(TAIL_SHARE, TAIL_ROWS / n))
    return quantile_cont(side.numeric, q), quantile_cont(side.numeric, 1 - q)


def ks_statistic(real: np.ndarray, synthetic: np.ndarray) -> float:
    """``max_x |F_r(x) - F_s(x)|`` over every distinct value of two sorted samples, each ECDF as count / n
    in float64 (as the SQL path and SciPy's ``ks_2samp``). One stable merge of the two sorted runs (linear
    for timsort) gives, at the last position of each distinct value, how many of each side lie at or below it."""
    nr, ns = len(real), len(synthetic)
    merged = np.concatenate([real, synthetic])
    order = np.argsort(merged, kind="stable")
    values = merged[order]
    last = np.flatnonzero(np.r_[values[1:] != values[:-1], True])  # last position of each distinct value
    below_s = np.cumsum(order >= nr)[last]
    below_r = last + 1 - below_s
    return float(np.max(np.abs(below_r.astype(np.float64) / float(nr) - below_s.astype(np.float64) / float(ns))))


def continuous_profile(real: Continuous, synthetic: Continuous, *, kind: Kind, span: tuple[float, float],
                       bins: int = BINS) -> ContinuousProfile:
    """``_common.continuous_profile``: the two-sample KS statistic at every distinct value, and the histogram."""
    nr, ns = len(real.ks), len(synthetic.ks)
    if not nr or not ns:
        side = "real" if not nr else "synthetic"
        raise EmptyInputError(f"the {side} column has no non-null values; the KS statistic needs at least one on each side")
    statistic = ks_statistic(real.ks, synthetic.ks)
    lo, width, nb = _bin_layout(float(span[0]), float(span[1]), kind, bins)
    counts = []
    for side in (real, synthetic):
        b = np.clip(np.floor((_histogram_unit(side.ks, kind) - lo) / width), 0, nb - 1).astype(np.int64)
        counts.append(tuple(int(c) for c in np.bincount(b, minlength=nb)))
    edges = tuple(lo + i * width for i in range(nb + 1))
    return ContinuousProfile(statistic, nr, ns, edges, counts[0], counts[1])


@dataclass(frozen=True)
class Codes:
    """A discrete column of both sides as integer codes over one vocabulary (-1 = missing)."""

    real: np.ndarray
    synthetic: np.ndarray
    labels: np.ndarray  # the value of each code, as text (booleans as 'true' / 'false', as CAST(v AS VARCHAR))

    @property
    def size(self) -> int:
        return len(self.labels)


def _dictionary_codes(chunked: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Codes of a column into its own dictionary (-1 = missing), whatever its Arrow type."""
    if not pa.types.is_dictionary(chunked.type):
        chunked = pc.dictionary_encode(chunked)
    if chunked.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), pa.nulls(0, pa.string())
    chunked = chunked.unify_dictionaries()
    dictionary = chunked.chunk(0).dictionary
    parts = []
    for chunk in chunked.chunks:
        values, valid = numpy_values(chunk.indices)
        codes = values.astype(np.int64)
        if valid is not None:
            codes[~valid] = -1
        parts.append(codes)
    codes = np.concatenate(parts)
    return codes, dictionary


def discrete_codes(column: Column, real: pa.ChunkedArray, synthetic: pa.ChunkedArray) -> Codes:
    """Both sides of a category, code or boolean column coded over the union of their values."""
    if column.type == "boolean":
        out = []
        for chunked in (real, synthetic):
            values, valid = numpy_values(_one(chunked))
            codes = values.astype(np.int64)
            if valid is not None:
                codes[~valid] = -1
            out.append(codes)
        return Codes(out[0], out[1], np.array(["false", "true"], dtype=object))
    codes_r, dict_r = _dictionary_codes(real)
    codes_s, dict_s = _dictionary_codes(synthetic)
    index = pc.index_in(dict_s, value_set=dict_r)
    values, valid = numpy_values(index)
    found = values.astype(np.int64)
    if valid is not None:
        found[~valid] = -1
    new = found < 0
    remap = found.copy()
    remap[new] = len(dict_r) + np.arange(int(new.sum()))
    labels = np.concatenate([np.array(dict_r.to_pylist(), dtype=object),
                             np.array(dict_s.filter(pc.is_null(index)).to_pylist(), dtype=object)])
    codes_s = np.where(codes_s >= 0, remap[np.maximum(codes_s, 0)], -1) if len(remap) else codes_s
    return Codes(codes_r, codes_s, labels)


def discrete_profile(codes: Codes, *, top: int = TOP) -> DiscreteProfile:
    """``_common.discrete_profile`` from the codes: frequencies, total variation, coverage and top categories."""
    cr = np.bincount(codes.real[codes.real >= 0], minlength=codes.size)
    cs = np.bincount(codes.synthetic[codes.synthetic >= 0], minlength=codes.size)
    nr, ns = int(cr.sum()), int(cs.sum())
    if not nr or not ns:
        side = "real" if not nr else "synthetic"
        raise EmptyInputError(f"the {side} column has no non-null values; category frequencies need at least one on each side")
    seen = (cr > 0) | (cs > 0)
    l1 = float(np.abs(cr[seen] / float(nr) - cs[seen] / float(ns)).sum())
    k = max(1, int(top))
    idx = np.flatnonzero(seen)
    labels = codes.labels[idx].astype(str)
    order = np.lexsort((labels, -cs[idx], -cr[idx]))[:k]
    return DiscreteProfile(
        total_variation=min(1.0, max(0.0, 0.5 * l1)),
        n_real=nr,
        n_synthetic=ns,
        categories_real=int((cr > 0).sum()),
        categories_synthetic=int((cs > 0).sum()),
        categories_covered=int(((cr > 0) & (cs > 0)).sum()),
        top=tuple((str(labels[i]), int(cr[idx[i]]), int(cs[idx[i]])) for i in order[: max(0, int(top))]),
    )


def non_null(column: Column, chunked: pa.ChunkedArray) -> int:
    """``count(value_expr(col))``: present values, NaN counted as missing for non-integer numbers."""
    n = len(chunked) - chunked.null_count
    if column.type == "numerical" and not column.integer and n:
        n -= int(pc.sum(pc.is_nan(pc.drop_null(chunked))).as_py() or 0)
    return n


def pair_codes(column: Column, chunked: pa.ChunkedArray, edges: np.ndarray | None, codes: Codes | None, side: int) -> np.ndarray:
    """The small integer codes the pair trends count (see ``pairs._codes``): 1 + category code (0 = missing),
    boolean 1 / 2, continuous ``numpy.digitize`` on that side's edges of the ns / DOUBLE value (NaN ->
    ``len(edges)``)."""
    if column.type in ("numerical", "datetime"):
        assert edges is not None
        arr = _one(chunked)
        raw, valid = numpy_values(arr)
        if pa.types.is_date32(arr.type):  # CAST(epoch_ns(v) AS DOUBLE): exact integer ns, rounded once to float64
            values = (raw.astype(np.int64) * 86_400_000_000_000).astype(np.float64)
        elif pa.types.is_timestamp(arr.type):
            values = (raw * 1000).astype(np.float64)
        else:
            values = raw.astype(np.float64)
        if valid is not None:
            values[~valid] = np.nan
        return np.digitize(values, edges).astype(np.int64)
    assert codes is not None
    return (codes.real if side == 0 else codes.synthetic) + 1


def numeric(column: Column, chunked: pa.ChunkedArray, *, datetime_unit: str = "s") -> np.ndarray:
    """``numeric_expr`` of a continuous column as float64, NaN where missing: numbers as they are (NaN read as
    missing anyway), datetimes as seconds since 1970 (``epoch``) or, with ``datetime_unit="ns"``, as
    ``CAST(epoch_ns(v) AS DOUBLE)``."""
    arr = _one(chunked)
    raw, valid = numpy_values(arr)
    if pa.types.is_date32(arr.type):
        days = raw.astype(np.int64)
        values = (days * 86_400_000_000_000).astype(np.float64) if datetime_unit == "ns" else days.astype(np.float64) * SECONDS_PER_DAY
    elif pa.types.is_timestamp(arr.type):
        values = (raw * 1000).astype(np.float64) if datetime_unit == "ns" else raw.astype(np.float64) / 1e6
    else:
        values = raw.astype(np.float64)
    if valid is not None:
        values = values.copy() if values.base is not None else values
        values[~valid] = np.nan
    return values


def column_stats(columns: list[Column], table: pa.Table) -> dict[str, ColumnStats]:
    """``_common.column_stats`` on an Arrow table: rows, present values, min / max of continuous columns."""
    out = {}
    for col in columns:
        chunked = table.column(col.name)
        if col.type in ("numerical", "datetime"):
            values = numeric(col, chunked)
            present = values[~np.isnan(values)]
            lo, hi = (float(present.min()), float(present.max())) if len(present) else (None, None)
            out[col.name] = ColumnStats(table.num_rows, len(present), lo, hi)
        else:
            out[col.name] = ColumnStats(table.num_rows, non_null(col, chunked))
    return out


def side_stats(columns: list[Column], table: pa.Table) -> tuple[int, dict[str, tuple[int, float | None, float | None, float | None]]]:
    """``pairs._side_stats`` on an Arrow table: rows, and per column (present, min, max in ns for datetimes,
    mean in the correlation unit)."""
    out: dict[str, tuple[int, float | None, float | None, float | None]] = {}
    for col in columns:
        chunked = table.column(col.name)
        if col.type in ("numerical", "datetime"):
            ns = numeric(col, chunked, datetime_unit="ns")
            keep = ~np.isnan(ns)
            if not keep.any():
                out[col.name] = (0, None, None, None)
                continue
            seconds = numeric(col, chunked)[keep]
            out[col.name] = (int(keep.sum()), float(ns[keep].min()), float(ns[keep].max()), float(seconds.mean()))
        else:
            out[col.name] = (non_null(col, chunked), None, None, None)
    return table.num_rows, out


def pearson(table: pa.Table, pairs: list[tuple[Column, Column]]) -> list[float | None]:
    """``pairs._pearson`` on an Arrow table: Pearson's r of each pair on the rows where both are present,
    from sums of values centred on their complete-row means; None where r is undefined."""
    cache: dict[str, np.ndarray] = {}
    out: list[float | None] = []
    for a, b in pairs:
        for c in (a, b):
            if c.name not in cache:
                cache[c.name] = numeric(c, table.column(c.name))
        x, y = cache[a.name], cache[b.name]
        keep = ~(np.isnan(x) | np.isnan(y))
        if not keep.all():
            x, y = x[keep], y[keep]
        if len(x) < 2:
            out.append(None)
            continue
        dx, dy = x - x.mean(), y - y.mean()
        vxx, vyy, cxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
        if not (vxx > 0 and vyy > 0) or not all(math.isfinite(v) for v in (vxx, vyy, cxy)):
            out.append(None)
            continue
        out.append(max(-1.0, min(1.0, cxy / math.sqrt(vxx * vyy))))
    return out
