"""Rare values handled on purpose: ``min_patients`` (k) keeps every emitted category or code common.

A category or code held by fewer than ``k`` training patients (a rare disease, a one-off drug) points
at those patients; a generator that reproduces it may reveal that someone in the training data has it.
With ``min_patients=k`` a generator never emits such a value: it is replaced by a generalisation that
``k`` or more training patients share:

1. for a ``code`` column of a vocabulary whose prefixes are parents (ICD-10, KCD, ICD-9, ATC; or a column
   with a pattern and no vocabulary), the code's parent: the part before a dot, then ever shorter prefixes
   down to three characters (ICD-10 / KCD ``E11.9`` -> ``E11``; ICD-9 ``4019`` -> ``401``; ATC ``C09AA05``
   -> ``C09AA`` -> ``C09A`` -> ``C09``), the first one whose *group* (codes that start with it) is held by
   ``k`` patients and that matches the column's pattern or vocabulary (SNOMED, RxNorm, LOINC, NDC, HCPCS
   and DRG numbers have no parent in their prefix: RxNorm ``1049625`` is not a kind of ``10496``);
2. else (categories, or no valid parent) the column's most frequent common value (valid for the vocabulary by
   construction), or a missing value where the column may be missing and training rows miss it at least as
   often: the stand-in goes where training already has the most rows, so it stands out least (a race or a
   city blank in a column that is never blank in training told a detector every synthetic patient apart).
   A column that may not be missing and has no common value at all (where some value would need a stand-in)
   is refused at fit with an error naming it: every value it could emit points at fewer than ``k`` patients.

Columns are those the rare-code metric reads (``code`` columns and ``sensitive`` or ``quasi_identifier``
categorical ones) plus every other categorical column and every ``text`` column that is not a direct
identifier (Synthea's DESCRIPTION names its CODE: a rare code's description is as rare as the code, and a
generator that draws text from training values would emit it). A text value that reads as a number (Synthea's
observation VALUE holds readings such as ``97.2`` beside labels) is a quantity, not a label, and stays as it
is, as numerical columns do: held to ``k`` patients, nearly every reading was replaced and the rows broke the
schema's "a numeric observation's value is a number" rule (3,118 observations dropped). A repeated column group (SynPUF's ten
diagnosis columns) is counted as one unit, as the metric does. Patients are counted on the training
frames (surrogate keys), once per value however many rows carry it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data_schemas.model import Column, Schema
from synth.errors import GeneratorError
from synth.generators.links import patient_keys

MIN_PREFIX = 3
# vocabularies whose codes' prefixes are their parents (a chapter, a category, an ATC level); SNOMED, RxNorm,
# LOINC, NDC, HCPCS and DRG numbers are not: a prefix of RxNorm 1049625 is another concept or none
PREFIX_VOCABULARIES = frozenset({"ICD10", "KCD", "ICD9CM", "ICD9PCS", "ATC"})


@dataclass
class RareUnit:
    """What training says about one column (or column group): common values and common code prefixes."""

    table: str
    columns: list[str]
    k: int
    code: bool
    pattern: str | None
    nullable: bool
    common: set[Any] = field(default_factory=set)
    common_prefixes: set[str] = field(default_factory=set)
    fallback: Any = None
    cache: dict[Any, Any] = field(default_factory=dict)

    def replacement(self, value: Any) -> Any:
        """The value itself when common, else its generalisation (see the module docstring)."""
        if value in self.common:
            return value
        if value in self.cache:
            return self.cache[value]
        out = self.fallback
        if self.code and isinstance(value, str):
            for prefix in _ladder(value):
                if prefix in self.common_prefixes and (self.pattern is None or re.fullmatch(self.pattern, prefix)):
                    out = prefix
                    break
        self.cache[value] = out
        return out


@dataclass
class RareModel:
    """Per table and column, how to replace values held by fewer than ``k`` training patients."""

    k: int
    units: list[RareUnit] = field(default_factory=list)

    def apply(self, frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], int]:
        """Frames with every rare value generalised; also the number of cells replaced."""
        out = dict(frames)
        replaced = 0
        for unit in self.units:
            frame = out.get(unit.table)
            if frame is None or frame.empty:
                continue
            frame = frame.copy()
            for col in unit.columns:
                if col not in frame:
                    continue
                values = frame[col]
                present = values.notna().to_numpy()
                mapped = np.array([unit.replacement(v) for v in values.to_numpy()[present]], dtype=object)
                changed = mapped != values.to_numpy()[present]
                replaced += int(changed.sum())
                column = values.astype(object).to_numpy().copy()
                column[present] = mapped
                frame[col] = column
            out[unit.table] = frame
        return out, replaced


def _ladder(value: str) -> list[str]:
    """Parents of a code, most specific first: before the dot, then shorter prefixes (>= 3 characters)."""
    head = value.split(".")[0]
    out = [head] if head != value else []
    out += [head[:n] for n in range(len(head) - 1, MIN_PREFIX - 1, -1)]
    return [p for p in dict.fromkeys(out) if len(p) >= MIN_PREFIX]


def _numbers(values: pd.Index) -> list[Any]:
    """The values that read as finite numbers (text such as ``97.2`` or ``-3``; not ``nan`` or ``inf``)."""
    parsed = pd.to_numeric(pd.Series(values.astype(str)), errors="coerce").to_numpy(dtype=np.float64)
    return [v for v, ok in zip(values, np.isfinite(parsed)) if ok]


def _rows(frame: pd.DataFrame, cols: list[Column], value: Any) -> int:
    """Training cells of a unit holding ``value`` (None: missing cells)."""
    present = [frame[c.name] for c in cols if c.name in frame]
    if value is None:
        return sum(int(v.isna().sum()) for v in present)
    return sum(int((v.astype(object) == value).sum()) for v in present)


def _units(schema: Schema) -> list[tuple[str, list[Column]]]:
    """(table, member columns) of every categorical, code or text column (not a direct identifier), groups as one
    unit, reference tables out."""
    units: list[tuple[str, list[Column]]] = []
    for table in schema.tables.values():
        if table.reference:
            continue
        groups: dict[str, list[Column]] = {}
        for col in table.columns.values():
            if col.type not in ("categorical", "code", "text") or col.privacy == "direct_identifier":
                continue
            if col.group is not None:
                groups.setdefault(col.group, []).append(col)
            else:
                units.append((table.name, [col]))
        units.extend((table.name, cols) for cols in groups.values())
    return units


def fit_rare(schema: Schema, frames: dict[str, pd.DataFrame], k: int) -> RareModel:
    """Count training patients per value and per code prefix of every unit; keep those held by ``k`` or more."""
    model = RareModel(k)
    patients = patient_keys(schema, frames)
    for table, cols in _units(schema):
        if table not in patients or table not in frames:
            continue
        parts = [
            pd.DataFrame({"p": patients[table], "v": frames[table][c.name].to_numpy()}) for c in cols if c.name in frames[table]
        ]
        if not parts:
            continue
        pairs = pd.concat(parts, ignore_index=True).dropna().drop_duplicates()
        held = pairs.groupby("v", sort=False)["p"].nunique()
        # a code column climbs the prefix ladder only where its vocabulary is one of prefixes (or it names none)
        is_code = all(c.type == "code" and (c.vocabulary is None or c.vocabulary in PREFIX_VOCABULARIES) for c in cols)
        unit = RareUnit(
            table, [c.name for c in cols], k, is_code, cols[0].code_pattern, all(c.nullable for c in cols),
            common=set(held.index[held >= k]),
        )
        fallback_from = list(unit.common)  # a stand-in is held by k patients, not a reading kept for being a number
        if all(c.type == "text" for c in cols) and len(held):
            unit.common |= set(_numbers(held.index))
        if is_code and len(pairs):
            text = pairs.assign(v=pairs["v"].astype(str))
            ladders = pd.DataFrame(
                [(code, prefix) for code in text["v"].unique() for prefix in _ladder(code)], columns=["v", "prefix"]
            )
            prefixes = text.merge(ladders, on="v")[["p", "prefix"]].drop_duplicates()
            counts = prefixes.groupby("prefix", sort=False)["p"].nunique()
            unit.common_prefixes = set(counts.index[counts >= k])
        counts = pairs.groupby("v", sort=False).size().reindex(fallback_from) if fallback_from else pd.Series(dtype=float)
        if not unit.nullable and not len(counts) and any(unit.replacement(v) is None for v in held.index):
            raise GeneratorError(
                f"min_patients={k}: no value of {table}.{', '.join(unit.columns)} is held by {k} or more training "
                f"patients (the most held, {held.max()} patients), and the column may not be missing, so a rare value "
                "would have nothing to stand in for it; lower min_patients or let the column be missing (nullable) "
                "in the schema"
            )
        unit.cache.clear()
        if len(counts) and (not unit.nullable or _rows(frames[table], cols, counts.idxmax()) > _rows(frames[table], cols, None)):
            unit.fallback = counts.idxmax()  # never a rare value: with no common value a nullable column goes missing
        model.units.append(unit)
    return model


__all__ = ["RareModel", "RareUnit", "fit_rare"]
