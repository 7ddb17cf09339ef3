"""Temporal fidelity of per-patient event sequences (tables with a datetime ``order_by``).

* ``fidelity.event_gaps``: days between consecutive events of the same patient;
* ``fidelity.sequence_length``: events per patient (patients with at least one event, as SDMetrics'
  SequenceLengthSimilarity);
* ``fidelity.age_at_event``: the patient's age at each event, from the patient table's birth column.

Each compares real and synthetic distributions with the KS complement (exact, all rows) and averages
over event tables. A row's patient is found by following the foreign keys up to the patient table.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from data_schemas.model import Column, Schema
from data_schemas.rules import quote, with_patient_key_sql
from evaluate.context import EvalContext
from evaluate.fidelity._common import Kind, clip01, continuous_detail, continuous_profile, mean_result, require_rows, scalar
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped


def event_tables(schema: Schema) -> tuple[list[tuple[str, Column]], list[Skipped]]:
    """(table, its datetime order_by column) for every patient-row table below the patient table."""
    found: list[tuple[str, Column]] = []
    skipped: list[Skipped] = []
    for tname in schema.topological_order():
        table = schema.tables[tname]
        if tname == schema.patient.table or table.reference:
            continue
        if table.order_by is None:
            skipped.append(Skipped("no order_by column: not an event sequence", table=tname))
        elif table.order_by not in table.columns or table.columns[table.order_by].type != "datetime":
            skipped.append(Skipped(f"order_by column {table.order_by!r} is not a datetime", table=tname))
        elif not schema.path_to_patient(tname):
            skipped.append(Skipped("no foreign-key chain to the patient table", table=tname))
        else:
            found.append((tname, table.columns[table.order_by]))
    return found, skipped


def _compare(
    ctx: EvalContext,
    name: str,
    relation_of: Callable[[dict[str, str], str, Column], str],
    kind_of: Callable[[Column], Kind],
    *,
    unit: str,
    notes: tuple[str, ...] = (),
) -> MetricResult:
    """KS complement, per event table, of the values ``relation_of`` gives (a relation with column v)."""
    require_rows(ctx, name)
    found, skipped = event_tables(ctx.schema)
    rows: list[dict[str, Any]] = []
    more_notes: list[str] = []
    for tname, col in found:
        real = relation_of(ctx.train.relations(), tname, col)
        syn = relation_of(ctx.synthetic.relations(), tname, col)
        n_real = int(scalar(ctx.con, f"SELECT count(v) FROM {real}"))
        if n_real == 0:
            skipped.append(Skipped("no values in the real data", table=tname, column=col.name))
            continue
        n_syn = int(scalar(ctx.con, f"SELECT count(v) FROM {syn}"))
        if n_syn == 0:
            rows.append({"table": tname, "column": col.name, "value": 0.0, "n_real": n_real, "n_synthetic": 0})
            more_notes.append(f"{tname}: no values in the synthetic data; scored 0")
            continue
        kind = kind_of(col)
        prof = continuous_profile(ctx.con, real, syn, "v", kind=kind)
        stats = ctx.con.execute(
            f"SELECT (SELECT median(v) FROM {real}), (SELECT median(v) FROM {syn})"
        ).fetchall()[0]
        rows.append(
            {
                "table": tname,
                "column": col.name,
                "value": clip01(prof.complement),
                "n_real": prof.n_real,
                "n_synthetic": prof.n_synthetic,
                "median_real": None if stats[0] is None else float(stats[0]),
                "median_synthetic": None if stats[1] is None else float(stats[1]),
                "unit": unit,
                "bins": continuous_detail(prof, "number" if kind == "number" else "integer"),
            }
        )
    if not found:
        skipped.append(Skipped("no event table: no table below the patient table has a datetime order_by"))
    return mean_result(name, "maximize", rows, skipped, (*notes, *more_notes))


def _with_key(schema: Schema, relations: dict[str, str], table: str) -> str:
    return f"({with_patient_key_sql(schema, table, relations)})"


@metric("fidelity.event_gaps", family="fidelity", description="Days between a patient's consecutive events (KS complement)")
def event_gaps(ctx: EvalContext) -> list[MetricResult]:
    """Mean over event tables of ``1 - KS(gaps)``, a gap being ``t_i - t_{i-1}`` in days between a patient's
    consecutive events ordered by the table's ``order_by`` (events on the same day give 0)."""

    def relation(relations: dict[str, str], table: str, col: Column) -> str:
        d = quote(col.name)
        return (
            f"(SELECT (epoch({d}) - epoch(lag({d}) OVER (PARTITION BY __patient_key ORDER BY {d}))) / 86400.0 AS v "
            f"FROM {_with_key(ctx.schema, relations, table)} e WHERE {d} IS NOT NULL AND __patient_key IS NOT NULL)"
        )

    return [
        _compare(
            ctx, "fidelity.event_gaps", relation, lambda c: "integer" if c.unit == "date" else "number", unit="days"
        )
    ]


@metric("fidelity.sequence_length", family="fidelity", description="Number of events per patient (KS complement)")
def sequence_length(ctx: EvalContext) -> list[MetricResult]:
    """Mean over event tables of ``1 - KS(events per patient)`` over patients with at least one event
    (SDMetrics' SequenceLengthSimilarity)."""

    def relation(relations: dict[str, str], table: str, col: Column) -> str:
        return (
            f"(SELECT count(*) AS v FROM {_with_key(ctx.schema, relations, table)} e "
            f"WHERE __patient_key IS NOT NULL GROUP BY __patient_key)"
        )

    return [_compare(ctx, "fidelity.sequence_length", relation, lambda c: "integer", unit="events per patient")]


def birth_column(ctx: EvalContext) -> tuple[Column | None, str]:
    """The patient table's birth column: option ``birth`` of fidelity.age_at_event, else the first
    numerical (a year) or datetime column of the patient table whose name contains "birth"."""
    table = ctx.schema.patient_table
    wanted = ctx.options.param("fidelity.age_at_event", "birth", None)
    if wanted:
        name = str(wanted).split(".")[-1]
        if name not in table.columns:
            raise ValueError(
                f"The 'birth' parameter of fidelity.age_at_event must name a column of {table.name}; got {wanted!r} instead."
            )
        return table.columns[name], f"birth column {table.name}.{name} (from the 'birth' option)"
    for col in table.columns.values():
        if "birth" in col.name.lower() and col.type in ("numerical", "datetime"):
            return col, f"birth column {table.name}.{col.name} (the patient table's column named like 'birth')"
    return None, ""


@metric("fidelity.age_at_event", family="fidelity", description="Patients' age at each event (KS complement)")
def age_at_event(ctx: EvalContext) -> list[MetricResult]:
    """Mean over event tables of ``1 - KS(age at event)``: full years between birth and the event date,
    or ``year(event) - birth year`` when the birth column is a numerical year."""
    birth, how = birth_column(ctx)
    if birth is None:
        return [
            MetricResult(
                name="fidelity.age_at_event",
                family="fidelity",
                value=None,
                goal="maximize",
                skipped=(
                    Skipped(
                        f"the patient table {ctx.schema.patient.table} has no birth column (a numerical or datetime column "
                        "named like 'birth'); give one with params {'fidelity.age_at_event': {'birth': 'column'}}"
                    ),
                ),
            )
        ]
    pk = quote(ctx.schema.patient.column)
    b = quote(birth.name)

    def relation(relations: dict[str, str], table: str, col: Column) -> str:
        d = f"e.{quote(col.name)}"
        age = f"year({d}) - p.__birth" if birth.type == "numerical" else f"date_sub('year', p.__birth, {d})"
        patients = relations[ctx.schema.patient.table]
        return (
            f"(SELECT {age} AS v FROM {_with_key(ctx.schema, relations, table)} e JOIN "
            f"(SELECT DISTINCT ON ({pk}) {pk} AS __k, {b} AS __birth FROM {patients} WHERE {b} IS NOT NULL ORDER BY {pk}, {b}) p "
            f"ON e.__patient_key = p.__k WHERE {d} IS NOT NULL)"
        )

    return [_compare(ctx, "fidelity.age_at_event", relation, lambda c: "integer", unit="years", notes=(how,))]
