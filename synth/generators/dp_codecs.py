"""How the DP generator turns column values into integer codes and back, with domains that never come from the data.

A domain is either declared by the schema (categories, booleans, numbers with a minimum and a
maximum), or a fixed public grid (numbers without bounds, dates), or the values that passed a
differentially private selection (codes and undeclared categories; see ``dp_accounting``). Grids are
fine (half an octave for numbers and day offsets, a year for calendar dates); the model compresses
them into a few bins after measuring them (``dp_tree``), so their width costs no budget.

A value outside the kept set of a code column is coded as "other" and comes back as a placeholder
valid under the column's vocabulary or pattern (``R69`` for KCD / ICD-10, ``OTHER`` for ICD-9...).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data_schemas.model import Column
from synth.errors import GeneratorError

EPOCH = pd.Timestamp("1970-01-01")
OTHER = "\x00other"
HALF_OCTAVE = 0.5
NUMBER_LIMIT = 2.0**40
DAYS_LIMIT = 2.0**15
DAY_MIN, DAY_MAX = -62_000.0, 105_000.0  # 1800 to 2257: datetime64[ns] ends in 2262
FIRST_YEAR, LAST_YEAR = 1900, 2100
MAX_INTEGER_CELLS = 128
ZERO_WIDTH = 1e-9  # in log2 units: only 0 itself falls in the zero cell
PLACEHOLDERS = {
    "ICD10": "R69", "KCD": "R69", "ICD9CM": "OTHER", "ICD9PCS": "OTHER", "ATC": "V", "HCPCS": "A9999",
    "NDC": "00000000000", "LOINC": "0-0", "SNOMED": "000000", "RXNORM": "0", "DRG": "999",
}


@dataclass(frozen=True)
class Codec:
    """Fine integer codes of one attribute: a list of values, or cells of a grid (plus a null code)."""

    name: str
    values: tuple[Any, ...] | None = None
    edges: np.ndarray | None = None
    transform: str = "linear"  # "linear" or "log2" (sign(x) log2(1 + |x|))
    integer: bool = False
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    ordered: bool = False
    placeholder: Any = None
    zero_cell: int | None = None  # the grid cell that holds exactly 0 (decoded as 0, not spread)

    @property
    def n_regular(self) -> int:
        return len(self.values) if self.values is not None else len(self.edges) - 1  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return self.n_regular + (1 if self.nullable else 0)

    @property
    def null_code(self) -> int | None:
        return self.n_regular if self.nullable else None

    def encode(self, values: Any) -> np.ndarray:
        """Fine codes of ``values`` (numbers for grids, anything hashable for value lists; None / NaN is null).

        A pandas Categorical is encoded through its categories (each distinct value looked up once), with the
        same codes as its values one by one.
        """
        if self.values is not None:
            index = {v: i for i, v in enumerate(self.values)}
            other = index.get(OTHER)
            fallback = other if other is not None else (self.null_code if self.null_code is not None else 0)
            if isinstance(values, pd.Categorical):
                per_category = self.encode(np.asarray(values.categories, dtype=object))
                missing = values.codes < 0
                codes = np.append(per_category, fallback).astype(np.int64)[values.codes]  # code -1 (null): the last
            else:
                series = pd.Series(values, dtype="object")
                missing = series.isna().to_numpy()
                codes = np.array([index.get(v, fallback) for v in series.where(~missing, None)], dtype=np.int64)
        else:
            num = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
            missing = np.isnan(num)
            t = _forward(np.where(missing, 0.0, num), self.transform)
            codes = np.searchsorted(self.edges, t, side="right") - 1  # type: ignore[arg-type]
            codes = np.clip(codes, 0, self.n_regular - 1).astype(np.int64)
        if missing.any():
            codes[missing] = self.null_code if self.null_code is not None else codes[missing]
        return codes

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Values of fine ``codes``: listed values (placeholders for "other"), or uniform draws within grid cells."""
        codes = np.asarray(codes, dtype=np.int64)
        null = codes == self.null_code if self.null_code is not None else np.zeros(codes.size, dtype=bool)
        if self.values is not None:
            table = np.array([self.placeholder if v == OTHER else v for v in self.values] + [None], dtype=object)
            return table[np.where(null, len(self.values), codes)]
        edges = self.edges
        assert edges is not None
        cell = np.clip(codes, 0, self.n_regular - 1)
        t = edges[cell] + rng.random(codes.size) * (edges[cell + 1] - edges[cell])
        out = _inverse(t, self.transform)
        if self.integer:
            out = np.round(out)
        if self.low is not None or self.high is not None:
            out = np.clip(out, self.low if self.low is not None else -np.inf, self.high if self.high is not None else np.inf)
        out = out.astype(np.float64)
        if self.zero_cell is not None:
            out[codes == self.zero_cell] = 0.0
        out[null] = np.nan
        return out


def _forward(x: np.ndarray, transform: str) -> np.ndarray:
    return np.sign(x) * np.log2(1.0 + np.abs(x)) if transform == "log2" else x


def _inverse(t: np.ndarray, transform: str) -> np.ndarray:
    return np.sign(t) * (np.exp2(np.abs(t)) - 1.0) if transform == "log2" else t


def values_codec(name: str, values: list[Any], *, nullable: bool, other: bool = False, placeholder: Any = None) -> Codec:
    """Listed values (plus "other" and null when asked)."""
    listed = tuple(values) + ((OTHER,) if other else ())
    if not listed:
        listed = (OTHER,)
    return Codec(name, values=listed, nullable=nullable, placeholder=placeholder)


def integer_codec(name: str, low: int, high: int, *, nullable: bool = False) -> Codec:
    """One cell per integer in [low, high]."""
    edges = np.arange(low, high + 2, dtype=np.float64) - 0.5
    return Codec(name, edges=edges, integer=True, low=low, high=high, nullable=nullable, ordered=True)


def log_grid_codec(name: str, low: float | None, high: float | None, *, integer: bool, nullable: bool, limit: float) -> Codec:
    """Half-octave cells of sign(x) log2(1 + |x|) between the schema's bounds (else +-``limit``), zero in a cell of its own."""
    lo = -limit if low is None else float(low)
    hi = limit if high is None else float(high)
    t_lo, t_hi = float(_forward(np.array([lo]), "log2")[0]), float(_forward(np.array([hi]), "log2")[0])
    steps = np.arange(math.floor(t_lo / HALF_OCTAVE), math.ceil(t_hi / HALF_OCTAVE) + 1) * HALF_OCTAVE
    edges = np.unique(np.clip(np.concatenate([[t_lo], steps, [t_hi]]), t_lo, t_hi))
    zero: int | None = None
    if lo <= 0.0 <= hi:
        inner = edges[(edges < -ZERO_WIDTH) | (edges > ZERO_WIDTH)]
        below = inner[inner < 0]
        edges = np.concatenate([below, [-ZERO_WIDTH] if lo < 0 else [0.0], [ZERO_WIDTH], inner[inner > 0]])
        zero = int(below.size)
    if edges.size < 2:
        edges = np.array([t_lo, t_lo + HALF_OCTAVE])
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return Codec(name, edges=edges, transform="log2", integer=integer, low=low, high=high, nullable=nullable, ordered=True,
                 zero_cell=zero)


def number_codec(column: Column) -> Codec:
    """A numeric column: one cell per integer for a small declared integer range, else the half-octave grid."""
    lo, hi = column.minimum, column.maximum
    if column.integer and lo is not None and hi is not None and hi - lo + 1 <= MAX_INTEGER_CELLS:
        return integer_codec(column.name, int(math.ceil(lo)), int(math.floor(hi)), nullable=column.nullable)
    return log_grid_codec(column.name, lo, hi, integer=column.integer, nullable=column.nullable, limit=NUMBER_LIMIT)


def year_codec(name: str, *, nullable: bool) -> Codec:
    """Calendar dates (days since 1970-01-01) in one cell per year, 1900 to 2100."""
    edges = np.array([(pd.Timestamp(year=y, month=1, day=1) - EPOCH).days for y in range(FIRST_YEAR, LAST_YEAR + 2)], dtype=np.float64)
    return Codec(name, edges=edges, integer=True, low=edges[0], high=edges[-1] - 1, nullable=nullable, ordered=True)


def offset_codec(name: str, *, nullable: bool) -> Codec:
    """Day offsets (either sign) in half-octave cells up to 2^15 days (90 years)."""
    return log_grid_codec(name, None, None, integer=True, nullable=nullable, limit=DAYS_LIMIT)


def count_codec(name: str, low: int, cap: int) -> Codec:
    """Rows per parent row, ``low`` to ``cap``."""
    if cap - low + 1 <= MAX_INTEGER_CELLS:
        return integer_codec(name, low, cap)
    return log_grid_codec(name, low, cap, integer=True, nullable=False, limit=cap)


def days(values: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of datetimes (NaN for missing)."""
    stamps = pd.to_datetime(values)
    return ((stamps - EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)


def from_days(values: np.ndarray) -> pd.Series:
    """Datetimes from days since 1970-01-01 (NaT for NaN)."""
    d = np.clip(np.floor(np.asarray(values, dtype=np.float64)), DAY_MIN, DAY_MAX)  # NaN stays NaN
    missing = np.isnan(d)
    # whole days as integers: pandas' float-to-timedelta path can warn about an overflow on NaN
    stamps = np.datetime64("1970-01-01", "D") + np.where(missing, 0, d).astype(np.int64).astype("timedelta64[D]")
    out = pd.Series(stamps.astype("datetime64[ns]"))
    out[missing] = pd.NaT
    return out


def placeholder_for(column: Column) -> Any:
    """A value meaning "some other value" that is valid for ``column`` (vocabulary, pattern), or None."""
    pattern = column.code_pattern
    candidates = ["OTHER", "OTH", PLACEHOLDERS.get(column.vocabulary or ""), example_of(pattern) if pattern else None]
    for value in candidates:
        if value is not None and (pattern is None or re.fullmatch(pattern, value)):
            return value
    if column.nullable:
        return None
    raise GeneratorError(
        f"column {column.name} needs a placeholder for rare values that matches {pattern!r}; none was found "
        "(declare its values in the schema, or make it nullable)"
    )


def example_of(pattern: str) -> str | None:
    """A short string matching a simple regular expression (first branch, fewest repeats), or None."""
    import re._parser as sre  # the public sre_parse is deprecated

    try:
        parsed = sre.parse(pattern)
    except re.error:
        return None

    def char_of(items: Any) -> str | None:
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                return chr(av)
            if name == "RANGE":
                return chr(av[0])
            if name == "CATEGORY":
                return {"CATEGORY_DIGIT": "0", "CATEGORY_WORD": "a", "CATEGORY_SPACE": " "}.get(str(av))
            if name == "NEGATE":
                return None
        return None

    def walk(items: Any) -> str | None:
        out: list[str] = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "ANY":
                out.append("a")
            elif name == "IN":
                ch = char_of(av)
                if ch is None:
                    return None
                out.append(ch)
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                sub = walk(av[2])
                if sub is None:
                    return None
                out.append(sub * int(av[0]))
            elif name == "SUBPATTERN":
                sub = walk(av[-1])
                if sub is None:
                    return None
                out.append(sub)
            elif name == "BRANCH":
                sub = walk(av[1][0])
                if sub is None:
                    return None
                out.append(sub)
            elif name == "AT":
                continue
            else:
                return None
        return "".join(out)

    found = walk(parsed)
    return found if found is not None and re.fullmatch(pattern, found) else None
