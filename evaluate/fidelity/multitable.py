"""Multi-table fidelity: how many children each parent row has, and whether foreign keys resolve.

* ``fidelity.children_per_parent``: for every foreign key to a patient-row table, the distribution of the
  number of child rows per parent key (parents without children count as 0) compared by the KS
  complement, as SDMetrics' CardinalityShapeSimilarity does; the mean over foreign keys.
* ``fidelity.referential_integrity``: for every foreign key, the share of the synthetic child rows whose
  key exists in the synthetic parent table (SDMetrics' ReferentialIntegrity: missing keys count as
  broken unless the real data also has missing keys); the mean over foreign keys.
"""
from __future__ import annotations

from typing import Any

from data_schemas.model import Column
from data_schemas.rules import quote
from evaluate.context import EvalContext
from evaluate.fidelity._common import clip01, continuous_detail, continuous_profile, mean_result, require_rows, row_count, scalar
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped


def foreign_keys(ctx: EvalContext, *, patient_rows_only: bool) -> list[tuple[str, Column, str, str]]:
    """(child table, foreign key column, parent table, parent column) for every declared foreign key."""
    out = []
    for tname in ctx.schema.topological_order():
        for col in ctx.schema.tables[tname].foreign_keys:
            parent, pcol = col.foreign_key  # type: ignore[misc]
            if parent not in ctx.schema.tables or parent == tname:
                continue
            if patient_rows_only and (ctx.schema.tables[parent].reference or ctx.schema.tables[tname].reference):
                continue
            out.append((tname, col, parent, pcol))
    return out


def children_sql(child: str, fk: str, parent: str, pcol: str) -> str:
    """Number of child rows per distinct parent key, 0 for parents without children, as a relation ``(v)``."""
    return (
        f"(SELECT coalesce(c.n, 0) AS v FROM (SELECT DISTINCT {quote(pcol)} AS k FROM {parent} WHERE {quote(pcol)} IS NOT NULL) p "
        f"LEFT JOIN (SELECT {quote(fk)} AS k, count(*) AS n FROM {child} WHERE {quote(fk)} IS NOT NULL GROUP BY 1) c "
        f"ON p.k = c.k)"
    )


@metric(
    "fidelity.children_per_parent",
    family="fidelity",
    description="Distribution of the number of child rows per parent (KS complement), per foreign key",
)
def children_per_parent(ctx: EvalContext) -> list[MetricResult]:
    """Mean over foreign keys of ``1 - KS(children per parent, real vs synthetic)``; parents with no
    children count as 0 (SDMetrics' CardinalityShapeSimilarity). A parent key repeated in its table (a
    summary row per year) counts once."""
    require_rows(ctx, "fidelity.children_per_parent")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    fks = foreign_keys(ctx, patient_rows_only=True)
    for child, col, parent, pcol in fks:
        real = children_sql(ctx.train.sql_name(child), col.name, ctx.train.sql_name(parent), pcol)
        syn = children_sql(ctx.synthetic.sql_name(child), col.name, ctx.synthetic.sql_name(parent), pcol)
        stats = ctx.con.execute(
            f"SELECT * FROM (SELECT count(v), min(v), max(v), avg(v) FROM {real}) r, "
            f"(SELECT count(v), min(v), max(v), avg(v) FROM {syn}) s"
        ).fetchall()[0]  # both sides' parents, range and mean in one statement: each side is a join
        n_real, n_syn = int(stats[0]), int(stats[4])
        if n_real == 0:
            skipped.append(Skipped(f"the real parent table {parent} has no rows", table=child, column=col.name))
            continue
        row: dict[str, Any] = {"table": child, "column": col.name, "parent": f"{parent}.{pcol}"}
        if n_syn == 0:
            row.update(value=0.0, mean_real=None, mean_synthetic=None)
            notes.append(f"{child}.{col.name}: the synthetic parent table {parent} has no rows; scored 0")
        else:
            span = (float(min(stats[1], stats[5])), float(max(stats[2], stats[6])))
            prof = continuous_profile(ctx.con, real, syn, "v", kind="integer", span=span)
            means = (stats[3], stats[7])
            row.update(
                value=clip01(prof.complement),
                mean_real=float(means[0]),
                mean_synthetic=float(means[1]),
                parents_real=prof.n_real,
                parents_synthetic=prof.n_synthetic,
                bins=continuous_detail(prof, "integer"),
            )
        rows.append(row)
    if not fks:
        skipped.append(Skipped("the schema declares no foreign key between patient-row tables"))
    return [mean_result("fidelity.children_per_parent", "maximize", rows, skipped, notes)]


@metric(
    "fidelity.referential_integrity",
    family="fidelity",
    description="Share of synthetic foreign keys that resolve to a synthetic parent row",
)
def referential_integrity(ctx: EvalContext) -> list[MetricResult]:
    """Mean over foreign keys of the share of synthetic child rows whose key is found in the synthetic
    parent table. Missing keys count as broken unless the real child column has missing keys too
    (SDMetrics' ReferentialIntegrity). Details also give the real data's share (1 for validated data)."""
    require_rows(ctx, "fidelity.referential_integrity")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    fks = foreign_keys(ctx, patient_rows_only=False)
    for child, col, parent, pcol in fks:
        fk, pk = quote(col.name), quote(pcol)
        real_child, syn_child = ctx.train.sql_name(child), ctx.synthetic.sql_name(child)
        real_nulls = int(scalar(ctx.con, f"SELECT count(*) FROM {real_child} WHERE {fk} IS NULL"))
        keep = f"WHERE {fk} IS NOT NULL" if real_nulls else ""

        def share(child_rel: str, parent_rel: str) -> tuple[int, int]:
            row = ctx.con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {fk} IN (SELECT {pk} FROM {parent_rel} WHERE {pk} IS NOT NULL)) "
                f"FROM {child_rel} {keep}"
            ).fetchall()[0]
            return int(row[0]), int(row[1])

        n_syn, ok_syn = share(syn_child, ctx.synthetic.sql_name(parent))
        if n_syn == 0:
            reason = "the synthetic table has no rows" if row_count(ctx.con, syn_child) == 0 else "no synthetic row has a key"
            skipped.append(Skipped(reason, table=child, column=col.name))
            continue
        n_real, ok_real = share(real_child, ctx.train.sql_name(parent))
        rows.append(
            {
                "table": child,
                "column": col.name,
                "parent": f"{parent}.{pcol}",
                "value": clip01(ok_syn / n_syn),
                "orphans": n_syn - ok_syn,
                "rows": n_syn,
                "real": (ok_real / n_real) if n_real else None,
            }
        )
    if not fks:
        skipped.append(Skipped("the schema declares no foreign key"))
    return [mean_result("fidelity.referential_integrity", "maximize", rows, skipped)]
