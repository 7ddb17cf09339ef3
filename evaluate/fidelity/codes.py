"""Code hierarchies: frequencies of medical codes compared at chapter, category and full-code level.

A synthetic cohort can miss the exact codes yet keep the case mix (the chapters), or the reverse; the TV
complement ``1 - 0.5 * sum_k |p_k - q_k|`` at each level shows which. Levels by vocabulary:

============  ====================================  ==========================  ==========
vocabulary    chapter                               category                    full
============  ====================================  ==========================  ==========
ICD10, KCD    ICD-10 chapter (I..XXII, code ranges)  3 characters (A00)          code
ICD9CM        ICD-9-CM chapter (001-139, ..., V, E)  3 characters (4 for E)      code
ICD9PCS       ICD-9-CM vol. 3 chapter (00, 01-05..)  2 digits                    code
ATC           anatomical main group (1 character)   therapeutic subgroup (3)    code
HCPCS         first character (section)             -                           code
NDC           -                                     labeler (first 5 digits)    code
other         -                                     -                           code
============  ====================================  ==========================  ==========

Dots are ignored (``I10.9`` = ``I109``). Code columns of a repeated group (``ICD9_DGNS_CD_1..10``) are
compared together as one bag of codes; other code columns one by one.
"""
from __future__ import annotations

from typing import Any

from data_schemas.model import ColumnGroup
from data_schemas.rules import quote
from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.fidelity._common import clip01, discrete_detail, discrete_profile, mean, never_scored_reason, require_rows
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped

LEVELS = ("chapter", "category", "full")

_ICD10_CHAPTERS = (  # (first code of the next chapter, this chapter), ICD-10 (WHO 2019) blocks
    ("C00", "I"), ("D50", "II"), ("E00", "III"), ("F00", "IV"), ("G00", "V"), ("H00", "VI"), ("H60", "VII"),
    ("I00", "VIII"), ("J00", "IX"), ("K00", "X"), ("L00", "XI"), ("M00", "XII"), ("N00", "XIII"), ("O00", "XIV"),
    ("P00", "XV"), ("Q00", "XVI"), ("R00", "XVII"), ("S00", "XVIII"), ("U00", "XIX"), ("V00", "XXII"),
    ("Z00", "XX"),
)
_ICD9_CHAPTERS = ((140, "1"), (240, "2"), (280, "3"), (290, "4"), (320, "5"), (390, "6"), (460, "7"), (520, "8"),
                  (580, "9"), (630, "10"), (680, "11"), (710, "12"), (740, "13"), (760, "14"), (780, "15"), (800, "16"),
                  (1000, "17"))
_ICD9PCS_CHAPTERS = ((1, "00"), (6, "01-05"), (8, "06-07"), (17, "08-16"), (18, "17"), (21, "18-20"), (30, "21-29"),
                     (35, "30-34"), (40, "35-39"), (42, "40-41"), (55, "42-54"), (60, "55-59"), (65, "60-64"),
                     (72, "65-71"), (76, "72-75"), (85, "76-84"), (87, "85-86"), (100, "87-99"))


def _icd10_chapter(c: str) -> str:
    whens = " ".join(f"WHEN substr({c}, 1, 3) < '{nxt}' THEN '{chap}'" for nxt, chap in _ICD10_CHAPTERS)
    return f"CASE {whens} ELSE 'XXI' END"


def _numeric_chapter(num: str, table: tuple[tuple[int, str], ...]) -> str:
    whens = " ".join(f"WHEN {num} < {nxt} THEN '{chap}'" for nxt, chap in table)
    return f"CASE WHEN {num} IS NULL THEN 'other' {whens} ELSE 'other' END"


def level_expr(vocabulary: str | None, level: str, value: str) -> str | None:
    """SQL for a code at ``level`` (None where the vocabulary has no such level); value is the raw code."""
    c = f"upper(replace({value}, '.', ''))"
    voc = (vocabulary or "").upper()
    if level == "full":
        return c
    if voc in ("ICD10", "KCD"):
        return _icd10_chapter(c) if level == "chapter" else f"substr({c}, 1, 3)"
    if voc == "ICD9CM":
        if level == "chapter":
            num = f"try_cast(substr({c}, 1, 3) AS INTEGER)"
            return (
                f"CASE WHEN starts_with({c}, 'V') THEN 'V' WHEN starts_with({c}, 'E') THEN 'E' "
                f"ELSE {_numeric_chapter(num, _ICD9_CHAPTERS)} END"
            )
        return f"CASE WHEN starts_with({c}, 'E') THEN substr({c}, 1, 4) ELSE substr({c}, 1, 3) END"
    if voc == "ICD9PCS":
        if level == "chapter":
            return _numeric_chapter(f"try_cast(substr({c}, 1, 2) AS INTEGER)", _ICD9PCS_CHAPTERS)
        return f"substr({c}, 1, 2)"
    if voc == "ATC":
        return f"substr({c}, 1, 1)" if level == "chapter" else f"substr({c}, 1, 3)"
    if voc == "HCPCS":
        return f"substr({c}, 1, 1)" if level == "chapter" else None
    if voc == "NDC":
        return f"substr({c}, 1, 5)" if level == "category" else None
    return None


def code_sources(ctx: EvalContext) -> tuple[list[tuple[str, str, str | None, list[str]]], list[Skipped]]:
    """(table, label, vocabulary, columns) for each code column and each group of code columns."""
    sources: list[tuple[str, str, str | None, list[str]]] = []
    skipped: list[Skipped] = []
    for tname in ctx.schema.topological_order():
        table = ctx.schema.tables[tname]
        groups: dict[str, ColumnGroup] = {g.name: g for g in table.groups.values() if g.type == "code"}
        for col in table.columns.values():
            if col.type != "code" or col.group in groups:
                continue
            reason = never_scored_reason(col)
            if reason is not None:
                skipped.append(Skipped(reason, table=tname, column=col.name))
                continue
            sources.append((tname, col.name, col.vocabulary, [col.name]))
        for group in groups.values():
            if group.privacy == "direct_identifier":
                skipped.append(Skipped("direct identifier: never scored", table=tname, column=group.name))
                continue
            sources.append((tname, group.name, group.vocabulary, group.column_names()))
    return sources, skipped


def _codes_relation(relation: str, columns: list[str]) -> str:
    """The non-null codes of one or several columns of a relation, as a relation ``(v)``."""
    if len(columns) == 1:
        return f"(SELECT {quote(columns[0])} AS v FROM {relation})"
    cols = ", ".join(quote(c) for c in columns)
    return f"(SELECT v FROM (UNPIVOT (SELECT {cols} FROM {relation}) ON {cols} INTO NAME position VALUE v))"


@metric(
    "fidelity.code_hierarchy",
    family="fidelity",
    description="Code frequencies at chapter, category and full-code level (TV complement)",
    produces=tuple(f"fidelity.code_hierarchy.{level}" for level in LEVELS),
)
def code_hierarchy(ctx: EvalContext) -> list[MetricResult]:
    """One result per level: the mean over code columns (and groups) that have the level of the TV
    complement of the code frequencies at that level."""
    require_rows(ctx, "fidelity.code_hierarchy")
    sources, role_skips = code_sources(ctx)
    per_level: dict[str, list[dict[str, Any]]] = {lv: [] for lv in LEVELS}
    skips: dict[str, list[Skipped]] = {lv: list(role_skips) for lv in LEVELS}
    notes: dict[str, list[str]] = {lv: [] for lv in LEVELS}
    for tname, label, vocabulary, columns in sources:
        real = _codes_relation(ctx.train.sql_name(tname), columns)
        syn = _codes_relation(ctx.synthetic.sql_name(tname), columns)
        for level in LEVELS:
            expr = level_expr(vocabulary, level, "v")
            if expr is None:
                skips[level].append(Skipped(f"vocabulary {vocabulary or 'none'} has no {level} level", table=tname, column=label))
                continue
            try:
                prof = discrete_profile(ctx.con, real, syn, expr)
            except EmptyInputError as exc:
                if "real" in str(exc):
                    skips[level].append(Skipped("no codes in the real data", table=tname, column=label))
                else:
                    per_level[level].append({"table": tname, "column": label, "value": 0.0, "vocabulary": vocabulary})
                    notes[level].append(f"{tname}.{label}: no codes in the synthetic data; scored 0")
                continue
            per_level[level].append(
                {
                    "table": tname,
                    "column": label,
                    "vocabulary": vocabulary,
                    "value": clip01(prof.complement),
                    "n_real": prof.n_real,
                    "n_synthetic": prof.n_synthetic,
                    "codes_real": prof.categories_real,
                    "codes_covered": prof.categories_covered,
                    "frequencies": discrete_detail(prof),
                }
            )
    if not sources:
        for level in LEVELS:
            skips[level].append(Skipped("the schema declares no code column"))
    return [
        MetricResult(
            name=f"fidelity.code_hierarchy.{level}",
            family="fidelity",
            value=mean(r["value"] for r in per_level[level]),
            goal="maximize",
            n=len(per_level[level]),
            details=tuple(per_level[level]),
            skipped=tuple(skips[level]),
            notes=tuple(notes[level]),
        )
        for level in LEVELS
    ]
