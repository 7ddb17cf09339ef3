"""Clinical validity: how often synthetic rows break the schema's table rules.

Rules are SQL booleans declared in the schema (``discharge_date >= admission_date``, ``paid <= charged``,
sex-specific codes, ``parent.X`` and ``patient.X`` for the joined parent and patient rows); a NULL
result passes, as in validation. The real data's rate is reported beside it for reference.
"""
from __future__ import annotations

from typing import Any

import duckdb

from data_schemas.rules import violations_sql
from evaluate.context import EvalContext
from evaluate.fidelity._common import mean_result, require_rows, row_count, scalar
from evaluate.registry import metric
from evaluate.result import MetricResult, Skipped


@metric(
    "fidelity.rule_violations",
    family="fidelity",
    description="Share of synthetic rows breaking each schema rule (mean over rules; lower is better)",
)
def rule_violations(ctx: EvalContext) -> list[MetricResult]:
    """Mean over rules of ``violating rows / rows`` in the synthetic table the rule belongs to."""
    require_rows(ctx, "fidelity.rule_violations")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    n_rules = 0
    for tname in ctx.schema.topological_order():
        for rule in ctx.schema.tables[tname].rules:
            n_rules += 1
            n_syn = row_count(ctx.con, ctx.synthetic.sql_name(tname))
            if n_syn == 0:
                skipped.append(Skipped(f"rule {rule.name!r}: the synthetic table has no rows", table=tname))
                continue
            try:
                bad_syn = int(scalar(ctx.con, violations_sql(ctx.schema, tname, rule, ctx.synthetic.relations(), select="count(*)")))
                bad_real = int(scalar(ctx.con, violations_sql(ctx.schema, tname, rule, ctx.train.relations(), select="count(*)")))
            except duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                skipped.append(Skipped(f"rule {rule.name!r} could not be evaluated: {first}", table=tname))
                continue
            n_real = row_count(ctx.con, ctx.train.sql_name(tname))
            rows.append(
                {
                    "table": tname,
                    "rule": rule.name,
                    "check": " ".join(rule.check.split()),
                    "value": bad_syn / n_syn,
                    "violations": bad_syn,
                    "rows": n_syn,
                    "real": (bad_real / n_real) if n_real else None,
                }
            )
    if n_rules == 0:
        skipped.append(Skipped("the schema declares no table rules"))
    return [mean_result("fidelity.rule_violations", "minimize", rows, skipped,
                        ("a rule whose check is NULL for a row counts as satisfied",))]
