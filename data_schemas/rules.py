"""SQL for table rules: the rows of a table that break a rule, with ``parent`` and ``patient`` joined.

A rule is a boolean SQL expression over the table's columns. ``parent.X`` and ``patient.X`` are
struct fields of the joined parent row and patient root row, so bare names never become ambiguous.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from data_schemas.model import Rule, Schema


def quote(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


_ALIASES = {"parent": "__sm_parent", "patient": "__sm_patient"}
_ALIAS_RE = re.compile(r"(?<![\w\".])(parent|patient)\.")


def _uses(rule: Rule, alias: str) -> bool:
    return any(m.group(1) == alias for m in _ALIAS_RE.finditer(rule.check))


def is_row_local(rule: Rule) -> bool:
    """True when a rule reads only its own row (no ``parent.`` or ``patient.``)."""
    return not (_uses(rule, "parent") or _uses(rule, "patient"))


def expand_check(check: str) -> str:
    """Rewrite ``parent.X`` / ``patient.X`` to the internal struct names, so tables may have such columns."""
    return _ALIAS_RE.sub(lambda m: _ALIASES[m.group(1)] + ".", check)


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
            selects.append("jp.s AS __sm_parent")
        else:
            selects.append("NULL AS __sm_parent")
    if patient:
        if table == schema.patient.table:
            selects.append("t AS __sm_patient")
        elif path:
            chain, key_expr = patient_key_joins(schema, table, relations)
            root, root_col = path[-1][2], path[-1][3]
            joins.extend(chain)
            joins.append(
                f"LEFT JOIN (SELECT DISTINCT ON ({quote(root_col)}) {quote(root_col)} AS __k, r AS s "
                f"FROM {relations[root]} r) jr ON {key_expr} = jr.__k"
            )
            selects.append("jr.s AS __sm_patient")
        else:
            selects.append("NULL AS __sm_patient")
    return f"SELECT {', '.join(selects)} FROM {rel} t {' '.join(joins)}"


def patient_key_joins(schema: Schema, table: str, relations: Mapping[str, str]) -> tuple[list[str], str]:
    """Joins from ``t`` (a row of ``table``) up its foreign keys, and the SQL expression of its patient key.

    Intermediate tables are joined one key at a time, so the root table itself is never needed.
    """
    if table == schema.patient.table:
        return [], f"t.{quote(schema.patient.column)}"
    path = schema.path_to_patient(table)
    if not path:
        raise ValueError(f"table {table!r} has no foreign-key chain to the patient table")
    joins: list[str] = []
    key_expr = f"t.{quote(path[0][1])}"
    for i, (_, _fk, ptable, pcol) in enumerate(path[:-1]):
        next_fk = path[i + 1][1]
        joins.append(
            f"LEFT JOIN (SELECT DISTINCT ON ({quote(pcol)}) {quote(pcol)} AS __k, {quote(next_fk)} AS __up "
            f"FROM {relations[ptable]}) w{i} ON {key_expr} = w{i}.__k"
        )
        key_expr = f"w{i}.__up"
    return joins, key_expr


def with_patient_key_sql(schema: Schema, table: str, relations: Mapping[str, str]) -> str:
    """A SELECT of every column of ``table`` plus ``__patient_key``, the key of the row's patient."""
    joins, key_expr = patient_key_joins(schema, table, relations)
    return f"SELECT t.*, {key_expr} AS __patient_key FROM {relations[table]} t {' '.join(joins)}"


def violations_sql(schema: Schema, table: str, rule: Rule, relations: Mapping[str, str], *, select: str = "*") -> str:
    """SQL returning ``select`` for every row of ``table`` whose rule check is FALSE (NULL passes)."""
    frame = rule_frame_sql(
        schema, table, relations, parent=_uses(rule, "parent"), patient=_uses(rule, "patient")
    )
    return f"SELECT {select} FROM ({frame}) q WHERE NOT coalesce(({expand_check(rule.check)}), TRUE)"
