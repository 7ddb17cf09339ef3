"""Reading schemas from YAML: built-in names or user files, every problem located by line and key."""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import yaml
from pydantic import ValidationError

from data_schemas.errors import SchemaError, UnknownSchemaError
from data_schemas.model import Schema, is_valid_name
from data_schemas.rules import RuleRefusedError, check_rule_columns, compile_check, lock_down, quote, violations_sql

BUILTIN_DIR = Path(__file__).parent / "builtin"


def builtin_names() -> list[str]:
    """Names of the schemas that ship with synthmed."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path:
    return BUILTIN_DIR / f"{name}.yaml"


def load_schema(name_or_path: str | Path) -> Schema:
    """A built-in schema by name, or a schema read from a YAML file."""
    text = str(name_or_path)
    if text in builtin_names():
        return load_schema_file(builtin_path(text))
    path = Path(text)
    if path.is_file():
        return load_schema_file(path)
    raise UnknownSchemaError(text, builtin_names())


class _Marks:
    """Line numbers of every key path in a YAML document."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                self.lines[sub] = key.start_mark.line + 1
                self._walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, str(i)))

    def locate(self, path: tuple[Any, ...]) -> str:
        keys = tuple(str(p) for p in path)
        while keys and keys not in self.lines:
            keys = keys[:-1]
        line = self.lines.get(keys)
        where = ".".join(str(p) for p in path) or "<top>"
        return f"line {line}, {where}" if line else where


def load_schema_file(path: Path) -> Schema:
    """Parse and check one YAML schema file; raise SchemaError listing every problem."""
    source = str(path)
    try:
        if path.stat().st_size > MAX_SCHEMA_BYTES:
            raise SchemaError(source, [f"the file has {path.stat().st_size:,} bytes; a schema has at most {MAX_SCHEMA_BYTES:,}"])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(source, [f"cannot read the file: {exc}"]) from None
    return parse_schema(text, source=source)


MAX_SCHEMA_BYTES = 2_000_000
MAX_YAML_DEPTH = 32


def _refuse_yaml_bombs(text: str, source: str) -> None:
    """Size, anchors/aliases and nesting depth checked on the event stream, before anything is built.

    Aliases are refused outright (a schema never needs one; "billion laughs" is built from them), and a
    depth limit keeps the recursive composer away from deep documents.
    """
    if len(text) > MAX_SCHEMA_BYTES:
        raise SchemaError(source, [f"the file has {len(text):,} characters; a schema has at most {MAX_SCHEMA_BYTES:,}"])
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line = event.start_mark.line + 1
            raise SchemaError(source, [f"line {line}: YAML anchors and aliases (&name, *name) are not allowed in a schema"])
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                line = event.start_mark.line + 1
                raise SchemaError(source, [f"line {line}: nested deeper than {MAX_YAML_DEPTH} levels; a schema is not that deep"])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_schema(text: str, *, source: str = "<string>") -> Schema:
    """Parse YAML text into a checked Schema; every failure is a SchemaError."""
    try:
        _refuse_yaml_bombs(text, source)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SchemaError(source, [f"{where}not valid YAML: {problem}"]) from None
    except (RecursionError, MemoryError) as exc:
        raise SchemaError(source, [f"the YAML is too large or too deep to read ({type(exc).__name__})"]) from None
    marks = _Marks(root)
    if not isinstance(data, dict):
        raise SchemaError(source, ["the document must be a mapping with name, patient and tables"])
    if any(not isinstance(k, str) for k in data):
        raise SchemaError(source, ["every top-level key must be a string (name, description, version, patient, tables)"])
    try:
        schema = Schema.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = [f"{marks.locate(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise SchemaError(source, problems) from None
    except (TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise SchemaError(source, [f"the schema's structure cannot be read ({type(exc).__name__}: {exc})"]) from None
    problems = [f"{marks.locate(loc)}: {msg}" for loc, msg in check_schema(schema)]
    if problems:
        raise SchemaError(source, problems)
    return schema


def check_schema(schema: Schema) -> list[tuple[tuple[str, ...], str]]:
    """Cross-table checks pydantic cannot do alone: keys, references, names and rule SQL."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if not is_valid_name(schema.name):
        problems.append((("name",), f"schema name {schema.name!r} must be a plain identifier (letters, digits, _): "
                                    "it becomes part of release ids and folder names"))
    for table in schema.tables.values():
        for i, pattern in enumerate(table.files):
            problem = file_pattern_problem(pattern)
            if problem:
                problems.append((("tables", table.name, "files", str(i)), problem))
    if schema.patient.table not in schema.tables:
        problems.append((("patient", "table"), f"patient table {schema.patient.table!r} is not a table of the schema"))
        return problems
    if schema.patient.column not in schema.patient_table.columns:
        problems.append(
            (("patient", "column"), f"column {schema.patient.column!r} is not in table {schema.patient.table!r}")
        )
    for table in schema.tables.values():
        tloc = ("tables", table.name)
        if not is_valid_name(table.name):
            problems.append((tloc, f"table name {table.name!r} must be a plain identifier"))
        for key in table.primary_key:
            if key not in table.columns:
                problems.append(((*tloc, "primary_key"), f"primary key column {key!r} is not a column of the table"))
        if table.order_by is not None and table.order_by not in table.columns:
            problems.append(((*tloc, "order_by"), f"order_by column {table.order_by!r} is not a column of the table"))
        for col in table.columns.values():
            cloc = (*tloc, "columns", col.name)
            if not is_valid_name(col.name):
                problems.append((cloc, f"column name {col.name!r} must be a plain identifier"))
            if col.foreign_key is not None:
                ref_table, ref_col = col.foreign_key
                if ref_table not in schema.tables:
                    problems.append(((*cloc, "references"), f"references unknown table {ref_table!r}"))
                elif ref_col not in schema.tables[ref_table].columns:
                    problems.append(((*cloc, "references"), f"references unknown column {ref_table}.{ref_col}"))
        if table.name != schema.patient.table and not table.reference and not schema.path_to_patient(table.name) and not problems:
            problems.append((tloc, "no chain of foreign keys leads from this table to the patient table"))
    if not problems:
        problems.extend(_check_rules(schema))
    return problems


def file_pattern_problem(pattern: str) -> str | None:
    """Why a ``files:`` pattern could match outside its data folder (absolute, ``..``, home), or None."""
    if not isinstance(pattern, str) or not pattern.strip():
        return "a file pattern must be a non-empty string"
    if "\x00" in pattern:
        return f"file pattern {pattern!r} holds a NUL character"
    posix = PurePosixPath(pattern.replace("\\", "/"))
    if posix.is_absolute() or pattern.startswith("~") or re.match(r"^[A-Za-z]:", pattern):
        return f"file pattern {pattern!r} is absolute; patterns are relative to the data folder"
    if ".." in posix.parts:
        return f"file pattern {pattern!r} climbs out of the data folder with '..'; patterns stay inside it"
    return None


def _check_rules(schema: Schema) -> list[tuple[tuple[str, ...], str]]:
    """Allow-list every rule (one scalar expression over known columns), then compile it against empty
    tables of the schema's types, so both hostile and mistyped rules fail at load time, before any data."""
    problems: list[tuple[tuple[str, ...], str]] = []
    patient_cols = set(schema.patient_table.columns)
    compiled_ok: set[tuple[str, int]] = set()
    for table in schema.tables.values():
        path = schema.path_to_patient(table.name)
        parent_cols = set(schema.tables[path[0][2]].columns) if path else None
        own_patient = patient_cols if (path or table.name == schema.patient.table) else None
        for i, rule in enumerate(table.rules):
            loc = ("tables", table.name, "rules", str(i), "check")
            try:
                compiled = compile_check(rule.check)
            except RuleRefusedError as exc:
                problems.append((loc, f"rule {rule.name!r} is refused: {exc}"))
                continue
            bad = check_rule_columns(compiled, own=set(table.columns), parent=parent_cols, patient=own_patient)
            problems += [(loc, f"rule {rule.name!r} is refused: {p}") for p in bad]
            if not bad:
                compiled_ok.add((table.name, i))
    con = lock_down(duckdb.connect(":memory:"))
    try:
        for table in schema.tables.values():
            cols = ", ".join(f"{quote(c.name)} {c.sql_type}" for c in table.columns.values())
            con.execute(f"CREATE TABLE {quote(table.name)} ({cols})")
        relations = {t: quote(t) for t in schema.tables}
        for table in schema.tables.values():
            for i, rule in enumerate(table.rules):
                if (table.name, i) not in compiled_ok:
                    continue
                try:
                    con.execute(violations_sql(schema, table.name, rule, relations, select="count(*)")).fetchall()
                except duckdb.Error as exc:
                    first = str(exc).splitlines()[0]
                    problems.append(
                        (("tables", table.name, "rules", str(i), "check"), f"rule {rule.name!r} does not compile: {first}")
                    )
    finally:
        con.close()
    return problems


def schema_to_yaml(schema: Schema) -> str:
    """Serialise a schema back to YAML in the same shape the loader reads."""
    tables: dict[str, Any] = {}
    for table in schema.tables.values():
        columns: dict[str, Any] = {}
        for col in table.columns.values():
            if col.group is not None:
                continue
            spec = col.model_dump(exclude_defaults=True, exclude={"name"})
            columns[col.name] = spec if set(spec) != {"type"} else spec["type"]
        spec_t: dict[str, Any] = {}
        if table.description:
            spec_t["description"] = table.description
        if not table.required:
            spec_t["required"] = False
        if table.reference:
            spec_t["reference"] = True
        if table.files:
            spec_t["files"] = list(table.files)
        if table.primary_key:
            spec_t["primary_key"] = table.primary_key[0] if len(table.primary_key) == 1 else list(table.primary_key)
        if table.order_by:
            spec_t["order_by"] = table.order_by
        spec_t["columns"] = columns
        if table.groups:
            spec_t["groups"] = {g.name: g.model_dump(exclude_defaults=True, exclude={"name"}) for g in table.groups.values()}
        if table.rules:
            spec_t["rules"] = [r.model_dump(exclude_defaults=True) for r in table.rules]
        if table.csv is not None:
            spec_t["csv"] = table.csv.model_dump(exclude_none=True)
        tables[table.name] = spec_t
    doc = {
        "name": schema.name,
        "description": schema.description,
        "version": schema.version,
        "patient": {"table": schema.patient.table, "column": schema.patient.column},
        "tables": tables,
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)
