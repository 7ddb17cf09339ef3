"""SQL for table rules: the rows of a table that break a rule, with ``parent`` and ``patient`` joined.

A rule is a boolean SQL expression over the table's columns. ``parent.X`` and ``patient.X`` are
struct fields of the joined parent row and patient root row, so bare names never become ambiguous.
"""
from __future__ import annotations

from collections.abc import Mapping

from data_schemas.model import Rule, Schema


def quote(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _uses(rule: Rule, alias: str) -> bool:
    return f"{alias}." in rule.check


def rule_frame_sql(schema: Schema, table: str, relations: Mapping[str, str], *, parent: bool, patient: bool) -> str:
    """A SELECT of ``table`` with the parent row as struct ``parent`` and the root row as ``patient``."""
    rel = relations[table]
    selects = ["t.*"]
    joins: list[str] = []
    path = schema.path_to_patient(table)
    if parent:
        if path:
            _, fk, ptable, pcol = path[0]
            joins.append(
                f"LEFT JOIN (SELECT DISTINCT ON ({quote(pcol)}) {quote(pcol)} AS __k, p AS s "
                f"FROM {relations[ptable]} p) jp ON t.{quote(fk)} = jp.__k"
            )
            selects.append("jp.s AS parent")
        else:
            selects.append("NULL AS parent")
    if patient:
        if table == schema.patient.table:
            selects.append("t AS patient")
        elif path:
            # walk key by key up to the root, then join the root row as a struct
            key_expr = f"t.{quote(path[0][1])}"
            for i, (_, _fk, ptable, pcol) in enumerate(path[:-1]):
                next_fk = path[i + 1][1]
                joins.append(
                    f"LEFT JOIN (SELECT DISTINCT ON ({quote(pcol)}) {quote(pcol)} AS __k, {quote(next_fk)} AS __up "
                    f"FROM {relations[ptable]}) w{i} ON {key_expr} = w{i}.__k"
                )
                key_expr = f"w{i}.__up"
            root, root_col = path[-1][2], path[-1][3]
            joins.append(
                f"LEFT JOIN (SELECT DISTINCT ON ({quote(root_col)}) {quote(root_col)} AS __k, r AS s "
                f"FROM {relations[root]} r) jr ON {key_expr} = jr.__k"
            )
            selects.append("jr.s AS patient")
        else:
            selects.append("NULL AS patient")
    return f"SELECT {', '.join(selects)} FROM {rel} t {' '.join(joins)}"


def violations_sql(schema: Schema, table: str, rule: Rule, relations: Mapping[str, str], *, select: str = "*") -> str:
    """SQL returning ``select`` for every row of ``table`` whose rule check is FALSE (NULL passes)."""
    frame = rule_frame_sql(
        schema, table, relations, parent=_uses(rule, "parent"), patient=_uses(rule, "patient")
    )
    return f"SELECT {select} FROM ({frame}) q WHERE NOT coalesce(({rule.check}), TRUE)"
