"""Rare-code leakage: codes held by fewer than ``k`` training patients that appear in the synthetic data.

A rare diagnosis, procedure or drug code (a rare disease) held by one or two training patients points
at them; a generator that reproduces it may reveal that someone in the training data has it. The code
columns are those of type ``code`` and the ``sensitive`` categorical columns, in every table linked
to the patient (a repeated column group counts as one column). All in SQL over all patients.

``privacy.rare_code_leakage`` is the share of the rare training codes (pooled over columns) that
appear in the synthetic data. Appearing is not proof of a leak (the code may be rare in the training
data but not in the population), so the same share is measured, size-matched, for a seeded sample of
synthetic patients as large as the holdout (``attack_rate``) and for the holdout (``baseline_rate``):
fresh patients of the same population. Only counts are reported, never the codes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from data_schemas.model import Schema
from data_schemas.rules import quote, with_patient_key_sql
from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.inputs import rng_for, sample_keys
from evaluate.privacy.params import check_int, confidence_param, get_param
from evaluate.privacy.records import event_tables, patient_keys, registered_keys
from evaluate.privacy.stats import wilson_interval
from evaluate.registry import metric
from evaluate.result import MetricResult, skipped_result
from synth.load import Dataset

NAME = "privacy.rare_code_leakage"


def code_units(schema: Schema) -> list[tuple[str, str, list[str]]]:
    """(table, unit name, member columns) of every code column or group, and sensitive categorical one."""
    units: list[tuple[str, str, list[str]]] = []
    for tname in [schema.patient.table, *event_tables(schema)[0]]:
        table = schema.tables[tname]
        seen: set[str] = set()
        for col in table.columns.values():
            if col.privacy == "direct_identifier" or col.type == "id":
                continue
            if not (col.type == "code" or (col.privacy == "sensitive" and col.type == "categorical")):
                continue
            if col.group is not None:
                if col.group not in seen:
                    seen.add(col.group)
                    units.append((tname, col.group, table.groups[col.group].column_names()))
            else:
                units.append((tname, col.name, [col.name]))
    return units


def codes_sql(dataset: Dataset, table: str, members: list[str]) -> str:
    """SQL of ``(k, v)``: patient key and code, one row per non-missing code value."""
    schema = dataset.schema
    rel = dataset.relations()
    if table == schema.patient.table:
        source = f"{rel[table]} q"
        key = f"CAST(q.{quote(schema.patient.column)} AS VARCHAR)"
    else:
        source = f"({with_patient_key_sql(schema, table, rel)}) q"
        key = "CAST(q.__patient_key AS VARCHAR)"
    lst = ", ".join(f"CAST(q.{quote(m)} AS VARCHAR)" for m in members)
    value = f"CAST(q.{quote(members[0])} AS VARCHAR)" if len(members) == 1 else f"unnest([{lst}])"
    return f"SELECT k, v FROM (SELECT {key} AS k, {value} AS v FROM {source}) WHERE v IS NOT NULL AND k IS NOT NULL"


def leakage_counts(train: Dataset, others: dict[str, tuple[Dataset, str | None]], units: list[tuple[str, str, list[str]]],
                   *, k: int) -> list[dict[str, Any]]:
    """Per code column: rare training codes, and how many of them appear in each other dataset (optionally key-filtered)."""
    con = train.con
    rows = []
    for table, unit, members in units:
        rare = (f"(SELECT v FROM ({codes_sql(train, table, members)}) GROUP BY v "
                f"HAVING count(DISTINCT k) < {int(k)})")
        row: dict[str, Any] = {"kind": "column", "table": table, "column": unit}
        row["rare_codes"] = int(con.execute(f"SELECT count(*) FROM {rare}").fetchall()[0][0])  # type: ignore[index]
        for label, (ds, keys_view) in others.items():
            where = f"WHERE k IN (SELECT k FROM {keys_view})" if keys_view else ""
            got = con.execute(
                f"SELECT count(*) FROM {rare} r WHERE r.v IN (SELECT v FROM ({codes_sql(ds, table, members)}) {where})"
            ).fetchall()[0][0]  # type: ignore[index]
            row[f"in_{label}"] = int(got)
        rows.append(row)
    return rows


@metric(NAME, family="privacy", description="share of codes held by fewer than k training patients that appear in the synthetic data",
        produces=(NAME,))
def rare_code_leakage(ctx: EvalContext) -> list[MetricResult]:
    k = check_int(get_param(ctx, NAME, "k", 5), "k", NAME, low=2, high=1_000_000)
    confidence = confidence_param(ctx, NAME)
    units = code_units(ctx.schema)
    if not units:
        return [skipped_result(NAME, "privacy", "minimize", "the schema has no code column and no sensitive categorical column")]
    syn_keys = patient_keys(ctx.synthetic)
    if syn_keys.size == 0:
        raise EmptyInputError("the synthetic data has no patients")
    others: dict[str, tuple[Dataset, str | None]] = {"synthetic": (ctx.synthetic, None)}
    n_hold = 0
    matched = np.empty(0, dtype=object)
    if ctx.holdout is not None:
        n_hold = int(patient_keys(ctx.holdout).size)
        others["holdout"] = (ctx.holdout, None)
        matched = sample_keys(syn_keys, n_hold, rng_for(ctx.options.seed, 91))
    with registered_keys(ctx.con, matched) as view:
        if ctx.holdout is not None:
            others["synthetic_matched"] = (ctx.synthetic, view)
        rows = leakage_counts(ctx.train, others, units, k=k)
    n_rare = sum(r["rare_codes"] for r in rows)
    leaked = sum(r["in_synthetic"] for r in rows)
    notes = [f"code columns: {', '.join(f'{t}.{u}' for t, u, _ in units)}; rare = held by fewer than {k} training patients; "
             "all patients, no sampling; codes themselves are never reported"]
    if n_rare == 0:
        return [MetricResult(name=NAME, family="privacy", value=0.0, goal="minimize", n=0, details=tuple(rows),
                             notes=(*notes, "the training data has no rare code"), seed=ctx.options.seed)]
    rate = {"kind": "rates", "attack_rate": None, "baseline_rate": None, "rare_codes": n_rare, "in_synthetic": leaked,
            "n_synthetic": int(syn_keys.size), "n_holdout": n_hold or None}
    if ctx.holdout is not None:
        rate["attack_rate"] = sum(r["in_synthetic_matched"] for r in rows) / n_rare
        rate["baseline_rate"] = sum(r["in_holdout"] for r in rows) / n_rare
        notes.append(f"size-matched: {rate['attack_rate']:.4f} of rare codes appear in {matched.size} sampled synthetic "
                     f"patients, {rate['baseline_rate']:.4f} in the {n_hold} holdout patients")
    return [MetricResult(name=NAME, family="privacy", value=leaked / n_rare, goal="minimize",
                         ci=wilson_interval(leaked, n_rare, confidence=confidence), n=n_rare,
                         details=(rate, *rows), notes=tuple(notes), seed=ctx.options.seed)]
