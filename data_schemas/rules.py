"""SQL for table rules: the rows of a table that break a rule, with ``parent`` and ``patient`` joined.

A rule is a boolean SQL expression over the table's columns. ``parent.X`` and ``patient.X`` are
struct fields of the joined parent row and patient root row, so bare names never become ambiguous.
"""
from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from data_schemas.model import Rule, Schema


def quote(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


_ALIASES = {"parent": "__sm_parent", "patient": "__sm_patient"}
_ALIAS_RE = re.compile(r"(?<![\w\".])(parent|patient)\.")

MAX_CHECK_CHARS = 4000
MAX_CHECK_DEPTH = 64
# Scalar functions a rule may call (DuckDB names, lower case; operators such as + and LIKE's ~~ included).
# Nothing that reads files or settings (read_*, getenv, current_setting), raises with a chosen text (error),
# builds large values (range, repeat, lpad, list_*), aggregates or calls a macro.
ALLOWED_FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "||", "~~", "!~~", "~~*", "!~~*", "^@",
    "abs", "sign", "round", "floor", "ceil", "ceiling", "trunc", "greatest", "least", "sqrt", "ln", "log", "log10",
    "log2", "exp", "pow", "power", "isnan", "isinf", "isfinite", "mod",
    "year", "month", "day", "quarter", "week", "weekofyear", "dayofweek", "isodow", "dayofyear", "dayofmonth",
    "hour", "minute", "second", "epoch", "date_part", "datepart", "date_diff", "datediff", "date_sub", "datesub",
    "date_trunc", "datetrunc", "date_add", "make_date", "last_day", "dayname", "monthname", "age", "today",
    "to_years", "to_months", "to_weeks", "to_days", "to_hours", "to_minutes", "to_seconds", "to_milliseconds",
    "to_microseconds", "strftime", "strptime", "try_strptime",
    "length", "len", "strlen", "lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim", "substr", "substring",
    "left", "right", "starts_with", "prefix", "suffix", "ends_with", "contains", "instr", "strpos", "position",
    "concat", "regexp_matches", "regexp_full_match", "nullif", "ifnull", "coalesce",
})
# Expression kinds a rule may hold (DuckDB's parser classes); SUBQUERY, WINDOW, STAR, LAMBDA, PARAMETER... are not.
ALLOWED_NODES = frozenset({"COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "OPERATOR", "FUNCTION", "CAST",
                           "TYPE", "CASE", "BETWEEN"})
SPECIAL_NAMES = frozenset({"current_date"})  # parsed as column references, bound as values


class RuleRefusedError(ValueError):
    """A rule's check is not one allowed boolean expression; the message says what and where."""


@dataclass(frozen=True)
class CompiledCheck:
    """A rule's check parsed by DuckDB's own parser and allow-listed: its normalised SQL and what it reads."""

    sql: str
    columns: frozenset[tuple[str, str]]  # (scope, column): scope "" (own row), "parent" or "patient"

    def uses(self, scope: str) -> bool:
        return any(s == scope for s, _ in self.columns)


_PARSER_LOCK = threading.Lock()
_PARSER: duckdb.DuckDBPyConnection | None = None


def _parser() -> duckdb.DuckDBPyConnection:
    global _PARSER
    if _PARSER is None:
        con = duckdb.connect(":memory:")
        lock_down(con)
        _PARSER = con
    return _PARSER


def lock_down(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """External access off, no extension installed or loaded on demand, and the settings locked."""
    for setting in ("enable_external_access = false", "autoinstall_known_extensions = false",
                    "autoload_known_extensions = false", "lock_configuration = true"):
        con.execute(f"SET {setting}")
    return con


@functools.lru_cache(maxsize=4096)
def compile_check(check: str) -> CompiledCheck:
    """Parse ``check`` as ``SELECT <check>`` and accept it only as one allow-listed scalar expression.

    Raises RuleRefusedError naming the first thing refused: more than one statement or expression, a
    FROM/WHERE/..., a subquery, a table function or a function outside ``ALLOWED_FUNCTIONS``, a column
    reference that is not ``X``, ``parent.X`` or ``patient.X``. The SQL returned is DuckDB's own
    rendering of the checked tree (comments and layout gone), with ``parent``/``patient`` renamed to the
    internal struct names, so what runs is exactly what was checked.
    """
    if not isinstance(check, str) or not check.strip():
        raise RuleRefusedError("the check is empty")
    if len(check) > MAX_CHECK_CHARS:
        raise RuleRefusedError(f"the check has {len(check):,} characters; at most {MAX_CHECK_CHARS:,} are allowed")
    with _PARSER_LOCK:
        con = _parser()
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", ["SELECT " + check]).fetchall()[0][0])
        if tree.get("error"):
            raise RuleRefusedError(f"it is not one SQL expression: {str(tree.get('error_message', '')).splitlines()[0]}")
        statements = tree.get("statements") or []
        if len(statements) != 1:
            raise RuleRefusedError(f"it holds {len(statements)} statements; a rule is one boolean expression")
        node = statements[0].get("node", {})
        _refuse_clauses(node)
        columns: set[tuple[str, str]] = set()
        _walk(node["select_list"][0], columns, depth=0)
        rendered = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
    if not rendered.startswith("SELECT "):
        raise RuleRefusedError("it could not be rendered back as one expression")
    return CompiledCheck(rendered[len("SELECT "):], frozenset(columns))


def _refuse_clauses(node: dict[str, Any]) -> None:
    if node.get("type") != "SELECT_NODE":
        raise RuleRefusedError("it is not a plain expression (a set operation or another statement)")
    select = node.get("select_list") or []
    if len(select) != 1:
        raise RuleRefusedError(f"it holds {len(select)} expressions separated by commas; a rule is one expression")
    if (node.get("from_table") or {}).get("type") not in (None, "EMPTY"):
        raise RuleRefusedError("it has a FROM clause (reads a table); a rule reads only its row")
    for clause in ("where_clause", "having", "qualify", "sample"):
        if node.get(clause):
            raise RuleRefusedError(f"it has a {clause.replace('_clause', '').upper()} clause; a rule is one expression")
    if node.get("group_expressions") or node.get("group_sets") or node.get("modifiers"):
        raise RuleRefusedError("it has GROUP BY, ORDER BY, LIMIT or DISTINCT; a rule is one expression")
    if (node.get("cte_map") or {}).get("map"):
        raise RuleRefusedError("it has a WITH clause; a rule is one expression")


def _walk(node: Any, columns: set[tuple[str, str]], *, depth: int) -> None:
    if depth > MAX_CHECK_DEPTH:
        raise RuleRefusedError(f"it nests deeper than {MAX_CHECK_DEPTH} levels")
    if isinstance(node, list):
        for item in node:
            _walk(item, columns, depth=depth + 1)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("class")
    if kind is not None:
        if kind == "SUBQUERY":
            raise RuleRefusedError("it holds a subquery (SELECT, EXISTS, IN (SELECT ...)); a rule reads only its row")
        if kind not in ALLOWED_NODES:
            raise RuleRefusedError(f"it holds a {kind.lower().replace('_', ' ')} expression, which rules may not use")
        if kind == "FUNCTION":
            _check_function(node)
        elif kind == "COLUMN_REF":
            columns.add(_column(node.get("column_names") or []))
    for key, value in node.items():
        if isinstance(value, (dict, list)):
            _walk(value, columns, depth=depth + 1)


def _check_function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") or node.get("catalog"):
        raise RuleRefusedError(f"it calls {node.get('schema') or node.get('catalog')}.{name}(); rules call plain scalar functions")
    if name not in ALLOWED_FUNCTIONS:
        raise RuleRefusedError(
            f"it calls {name}(), which is not an allowed scalar function (allowed: arithmetic, comparisons, "
            "date parts and intervals, string tests, coalesce/nullif, casts; see data_schemas.rules.ALLOWED_FUNCTIONS)"
        )
    if node.get("distinct") or node.get("filter") or (node.get("order_bys") or {}).get("orders") or node.get("export_state"):
        raise RuleRefusedError(f"it calls {name}() with DISTINCT, FILTER or ORDER BY, as an aggregate")


def _column(names: list[str]) -> tuple[str, str]:
    if len(names) == 1:
        return ("", names[0])
    if len(names) == 2 and names[0].lower() in _ALIASES:
        names[0] = _ALIASES[names[0].lower()]  # renamed in the tree, so the rendered SQL reads the joined struct
        return ({v: k for k, v in _ALIASES.items()}[names[0]], names[1])
    raise RuleRefusedError(
        f"it refers to {'.'.join(names)}; a rule reads its own columns (X), parent.X or patient.X only"
    )


def check_rule_columns(
    compiled: CompiledCheck, *, own: set[str], parent: set[str] | None, patient: set[str] | None
) -> list[str]:
    """The column references of a compiled check that are not columns of its table, parent or patient table."""
    lower = {"": {c.lower() for c in own} | SPECIAL_NAMES,
             "parent": None if parent is None else {c.lower() for c in parent},
             "patient": None if patient is None else {c.lower() for c in patient}}
    problems = []
    for scope, name in sorted(compiled.columns):
        known = lower[scope]
        label = f"{scope}.{name}" if scope else name
        if known is None:
            problems.append(f"it refers to {label}, but the table has no {scope} table")
        elif name.lower() not in known:
            problems.append(f"it refers to {label}, which is not a column of {'the table' if not scope else 'the ' + scope + ' table'}")
    return problems


def _uses(rule: Rule, alias: str) -> bool:
    return compile_check(rule.check).uses(alias)


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
    return f"SELECT {select} FROM ({frame}) q WHERE NOT coalesce(({compile_check(rule.check).sql}), TRUE)"
