"""Reading a data folder (CSV, CSV.GZ, Parquet) or in-memory frames into DuckDB, checked against a schema.

Every file is staged as text (CSV) or native types (Parquet) with its row numbers, cast to the schema's
types, and checked; every problem goes into one ValidationReport. Code behind the loader may assume
valid data (style.md, rule 2).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from data_schemas.model import Column, Schema, Table
from data_schemas.rules import quote, violations_sql
from synth.errors import DataValidationError
from synth.validation import Problem, ValidationReport

SAMPLES = 5
_TEXT_TYPES = ("VARCHAR",)


def connect(*, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the settings synthmed relies on (UTC, ordered scans)."""
    config: dict[str, Any] = {"preserve_insertion_order": True}
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # never draw on the user's terminal or a pipe
    return con


@dataclass
class Dataset:
    """Tables conforming to a schema, held as DuckDB views named ``namespace.table``."""

    schema: Schema
    con: duckdb.DuckDBPyConnection
    namespace: str
    source: str
    files: dict[str, list[str]] = field(default_factory=dict)

    def sql_name(self, table: str) -> str:
        """The quoted SQL name of a table's view, for use in queries."""
        return f"{quote(self.namespace)}.{quote(table)}"

    def relations(self) -> dict[str, str]:
        return {t: self.sql_name(t) for t in self.schema.tables}

    def relation(self, table: str) -> duckdb.DuckDBPyRelation:
        return self.con.sql(f"SELECT * FROM {self.sql_name(table)}")

    def num_rows(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {self.sql_name(table)}").fetchall()[0][0])  # type: ignore[index]

    def row_counts(self) -> dict[str, int]:
        return {t: self.num_rows(t) for t in self.schema.tables}

    def to_arrow(self, table: str) -> pa.Table:
        return self.con.sql(f"SELECT * FROM {self.sql_name(table)}").to_arrow_table()

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write one ``<table>.parquet`` per table into ``out_dir``; returns the paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for table in self.schema.tables:
            path = out_dir / f"{table}.parquet"
            self.con.execute(
                f"COPY (SELECT * FROM {self.sql_name(table)}) TO '{_sql_str(str(path))}' (FORMAT PARQUET)"
            )
            paths[table] = path
        return paths

    def long_codes(self, table: str, group: str) -> duckdb.DuckDBPyRelation:
        """A repeated column group read as a long table: key columns, ``position``, ``code``."""
        tbl = self.schema.table(table)
        grp = tbl.groups[group]
        keys = ", ".join(quote(k) for k in tbl.primary_key)
        cols = ", ".join(quote(c) for c in grp.column_names())
        n = len(grp.prefix)
        return self.con.sql(
            f"SELECT {keys}, CAST(substr(position, {n + 1}) AS INTEGER) AS position, code "
            f"FROM (UNPIVOT (SELECT {keys}, {cols} FROM {self.sql_name(table)}) "
            f"ON {cols} INTO NAME position VALUE code) ORDER BY ALL"
        )


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def match_files(table: Table, data_dir: Path) -> list[Path]:
    """Files of ``data_dir`` for a table: the first of its patterns that matches anything."""
    for pattern in table.file_patterns():
        found = sorted(p for p in data_dir.glob(pattern) if p.is_file())
        if found:
            return found
    return []


def read_dataset(
    schema: Schema,
    data_dir: str | Path,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    namespace: str = "data",
) -> tuple[Dataset, ValidationReport]:
    """Read a folder into DuckDB and check it; returns the dataset and the report of every problem."""
    data_dir = Path(data_dir)
    con = con or connect()
    report = ValidationReport(schema=schema.name, source=str(data_dir))
    _create_namespace(con, namespace)
    if not data_dir.is_dir():
        what = "is not a folder" if data_dir.exists() else "does not exist"
        report.add(Problem("missing_folder", f"the data folder {data_dir} {what}", file=str(data_dir)))
        for table in schema.tables.values():
            _create_empty(con, namespace, table)
        return Dataset(schema, con, namespace, str(data_dir)), report
    used: set[Path] = set()
    for table in schema.tables.values():
        files = match_files(table, data_dir)
        used.update(files)
        report.files[table.name] = [f.name for f in files]
        if not files:
            if table.required:
                patterns = ", ".join(table.file_patterns())
                report.add(Problem("missing_table", f"no file found (looked for {patterns})", table=table.name))
            else:
                report.notes.append(f"optional table {table.name} has no file; treated as empty")
            _create_empty(con, namespace, table)
            continue
        staged = [s for i, f in enumerate(files) if (s := _stage_file(con, namespace, table, f, i, report))]
        _type_table(con, namespace, table, staged, report)
    ignored = sorted(p.name for p in data_dir.iterdir() if p.is_file() and p not in used and _is_data_file(p))
    if ignored:
        report.notes.append(f"files matching no table were ignored: {', '.join(ignored)}")
    _check(con, namespace, schema, report)
    dataset = Dataset(schema, con, namespace, str(data_dir), files=report.files)
    return dataset, report


def frames_to_dataset(
    schema: Schema,
    frames: Mapping[str, Any],
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    namespace: str = "data",
    source: str = "<memory>",
) -> tuple[Dataset, ValidationReport]:
    """Load in-memory tables (pyarrow or pandas) into DuckDB and check them like files."""
    con = con or connect()
    report = ValidationReport(schema=schema.name, source=source)
    _create_namespace(con, namespace)
    for table in schema.tables.values():
        frame = frames.get(table.name)
        if frame is None:
            if table.required:
                report.add(Problem("missing_table", "no data given for this table", table=table.name))
            _create_empty(con, namespace, table)
            continue
        arrow = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        raw = f"{quote(namespace)}.{quote('__raw_' + table.name + '_0')}"
        view = f"__frame_{namespace}_{table.name}"
        con.register(view, arrow)
        con.execute(f"CREATE OR REPLACE TABLE {raw} AS SELECT * FROM {quote(view)}")
        con.unregister(view)
        staged = _Staged(raw, f"<{table.name}>", _columns_of(con, raw))
        _check_header(table, staged, report)
        _type_table(con, namespace, table, [staged], report)
    _check(con, namespace, schema, report)
    return Dataset(schema, con, namespace, source), report


def load_dataset(schema: Schema, data_dir: str | Path, **kwargs: Any) -> Dataset:
    """Read and check a folder; raise DataValidationError carrying the report when anything is wrong."""
    dataset, report = read_dataset(schema, data_dir, **kwargs)
    if not report.ok:
        raise DataValidationError(report)
    return dataset


def _create_namespace(con: duckdb.DuckDBPyConnection, namespace: str) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")


def _create_empty(con: duckdb.DuckDBPyConnection, namespace: str, table: Table) -> None:
    cols = ", ".join(f"{quote(c.name)} {c.sql_type}" for c in table.columns.values())
    typed = f"{quote(namespace)}.{quote('__typed_' + table.name)}"
    con.execute(f"CREATE OR REPLACE TABLE {typed} ({cols}, __file VARCHAR, __row BIGINT)")
    _create_view(con, namespace, table)


def _create_view(con: duckdb.DuckDBPyConnection, namespace: str, table: Table) -> None:
    cols = ", ".join(quote(c) for c in table.columns)
    typed = f"{quote(namespace)}.{quote('__typed_' + table.name)}"
    con.execute(f"CREATE OR REPLACE VIEW {quote(namespace)}.{quote(table.name)} AS SELECT {cols} FROM {typed}")


def _is_data_file(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz", ".parquet", ".tsv", ".txt"))


@dataclass
class _Staged:
    """One file read into a raw table: its SQL name, file label and column types."""

    name: str
    file: str
    types: dict[str, str]


def _columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {r[0]: str(r[1]) for r in rows}


def _stage_file(
    con: duckdb.DuckDBPyConnection, namespace: str, table: Table, path: Path, index: int, report: ValidationReport
) -> _Staged | None:
    """Read one file into a raw table; report an unreadable or empty file instead of raising."""
    raw = f"{quote(namespace)}.{quote(f'__raw_{table.name}_{index}')}"
    label = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        report.add(Problem("unreadable_file", f"cannot read the file: {exc}", table=table.name, file=label))
        return None
    if size == 0:
        report.add(Problem("empty_file", "the file is empty (0 bytes): expected a header row", table=table.name, file=label))
        return None
    src = _sql_str(str(path))
    if path.name.endswith(".parquet"):
        reader = f"read_parquet('{src}')"
    else:
        reader = f"read_csv('{src}', header = true, all_varchar = true, auto_detect = true, strict_mode = true)"
    try:
        con.execute(f"CREATE OR REPLACE TABLE {raw} AS SELECT * FROM {reader}")
    except (duckdb.Error, UnicodeDecodeError) as exc:
        report.add(
            Problem("unreadable_file", f"cannot be read as {_kind(path)}: {_first_line(exc)}", table=table.name, file=label)
        )
        return None
    staged = _Staged(raw, label, _columns_of(con, raw))
    _check_header(table, staged, report)
    return staged


def _kind(path: Path) -> str:
    if path.name.endswith(".parquet"):
        return "Parquet"
    return "gzipped CSV" if path.name.endswith(".gz") else "CSV"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_header(table: Table, staged: _Staged, report: ValidationReport) -> None:
    present = set(staged.types)
    missing = [c for c in table.columns.values() if c.name not in present and c.required and not c.from_filename]
    for col in missing:
        hint = ""
        if len(present) == 1:
            hint = f"; the file has a single column {next(iter(present))!r}: check the delimiter"
        report.add(
            Problem("missing_column", f"required column is missing{hint}", table=table.name, file=staged.file, column=col.name)
        )
    for name in staged.types:
        if name not in table.columns:
            report.add(
                Problem("unexpected_column", "column is not in the schema", table=table.name, file=staged.file, column=name)
            )


def _source_expr(col: Column, staged: _Staged) -> tuple[str, str]:
    """The raw value of a column in a staged file, and its type; derived from the file name if absent."""
    if col.name in staged.types:
        src_type = staged.types[col.name]
        expr = quote(col.name)
        if src_type in _TEXT_TYPES:
            expr = f"nullif(trim({expr}), '')"
        return expr, src_type
    if col.from_filename:
        return f"nullif(regexp_extract('{_sql_str(staged.file)}', '{_sql_str(col.from_filename)}', 1), '')", "VARCHAR"
    return f"CAST(NULL AS {col.sql_type})", col.sql_type


def _cast_expr(col: Column, raw: str, src_type: str) -> str:
    """SQL that turns a raw value into the column's type, NULL when it does not parse."""
    target = col.sql_type
    text = src_type in _TEXT_TYPES
    if target == "VARCHAR":
        return raw if text else f"CAST({raw} AS VARCHAR)"
    if col.type == "datetime":
        if col.format and (text or "INT" in src_type):
            parsed = f"try_strptime(CAST({raw} AS VARCHAR), '{_sql_str(col.format)}')"
        elif text:  # offsets such as +02:00 are converted to UTC (the session time zone), not dropped
            parsed = f"CAST(try_cast({raw} AS TIMESTAMPTZ) AS TIMESTAMP)"
        else:
            parsed = f"try_cast({raw} AS TIMESTAMP)"
        return f"CAST({parsed} AS DATE)" if target == "DATE" else parsed
    if target == "BIGINT":  # DuckDB rounds '2.5' to 3 when casting: accept only integral values
        num = f"try_cast({raw} AS DOUBLE)"
        return f"CASE WHEN {num} = round({num}) THEN try_cast({num} AS BIGINT) END"
    return f"try_cast({raw} AS {target})"


def _type_table(
    con: duckdb.DuckDBPyConnection, namespace: str, table: Table, staged: list[_Staged], report: ValidationReport
) -> None:
    """Cast every staged file to the schema's types, report values that do not parse, build the view."""
    selects = []
    for st in staged:
        casts = []
        checks = []
        for col in table.columns.values():
            raw, src_type = _source_expr(col, st)
            cast = _cast_expr(col, raw, src_type)
            casts.append(f"{cast} AS {quote(col.name)}")
            checks.append((col, raw, cast))
        _report_parse_failures(con, table, st, checks, report)
        selects.append(
            f"SELECT {', '.join(casts)}, '{_sql_str(st.file)}' AS __file, rowid + 1 AS __row FROM {st.name}"
        )
    typed = f"{quote(namespace)}.{quote('__typed_' + table.name)}"
    if not selects:
        _create_empty(con, namespace, table)
        return
    con.execute(f"CREATE OR REPLACE TABLE {typed} AS {' UNION ALL '.join(selects)}")
    for st in staged:
        con.execute(f"DROP TABLE {st.name}")
    _create_view(con, namespace, table)


def _report_parse_failures(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    st: _Staged,
    checks: list[tuple[Column, str, str]],
    report: ValidationReport,
) -> None:
    candidates = [(c, raw, cast) for c, raw, cast in checks if c.sql_type != "VARCHAR"]
    if not candidates:
        return
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {raw} IS NOT NULL AND ({cast}) IS NULL)" for _, raw, cast in candidates)
        + f" FROM {st.name}"
    ).fetchall()[0]
    for (col, raw, cast), n in zip(candidates, counts or ()):
        if not n:
            continue
        samples = con.execute(
            f"SELECT rowid + 1, CAST({raw} AS VARCHAR) FROM {st.name} "
            f"WHERE {raw} IS NOT NULL AND ({cast}) IS NULL ORDER BY rowid LIMIT {SAMPLES}"
        ).fetchall()
        expected = col.type + (f" (format {col.format})" if col.format else "") + (" integer" if col.integer else "")
        report.add(
            Problem(
                "unparsable_value",
                f"{n} value(s) do not parse as {expected}",
                table=table.name,
                file=st.file,
                column=col.name,
                count=int(n),
                rows=tuple(int(r[0]) for r in samples),
                values=tuple(str(r[1]) for r in samples),
            )
        )


def _value_checks(col: Column) -> list[tuple[str, str, str]]:
    """(problem kind, SQL condition for a bad row, message) for one typed column."""
    q = quote(col.name)
    checks: list[tuple[str, str, str]] = []
    if not col.nullable:
        checks.append(("null_value", f"{q} IS NULL", "missing value(s) in a non-nullable column"))
    if col.values is not None:
        allowed = ", ".join(f"'{_sql_str(v)}'" for v in col.values)
        checks.append(("unknown_category", f"{q} NOT IN ({allowed})", f"value(s) outside the allowed categories ({', '.join(col.values)})"))
    if col.minimum is not None:
        checks.append(("out_of_range", f"{q} < {col.minimum}", f"value(s) below the minimum {col.minimum:g}"))
    if col.maximum is not None:
        checks.append(("out_of_range", f"{q} > {col.maximum}", f"value(s) above the maximum {col.maximum:g}"))
    pattern = col.code_pattern
    if pattern is not None and col.sql_type == "VARCHAR":
        label = f"the {col.vocabulary} code pattern" if col.vocabulary and not col.pattern else "the pattern"
        checks.append(("bad_code", f"NOT regexp_full_match({q}, '{_sql_str(pattern)}')", f"value(s) do not match {label} {pattern}"))
    return checks


def _check(con: duckdb.DuckDBPyConnection, namespace: str, schema: Schema, report: ValidationReport) -> None:
    """Value, key and rule checks over the typed tables; rows counted into the report."""
    typed = {t: f"{quote(namespace)}.{quote('__typed_' + t)}" for t in schema.tables}
    for table in schema.tables.values():
        rel = typed[table.name]
        report.rows[table.name] = int(con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0])  # type: ignore[index]
        _check_values(con, table, rel, report)
        _check_primary_key(con, table, rel, report)
        _check_foreign_keys(con, table, rel, typed, report)
    for table in schema.tables.values():
        for rule in table.rules:
            _check_rule(con, schema, table, rule, typed, report)


def _check_values(con: duckdb.DuckDBPyConnection, table: Table, rel: str, report: ValidationReport) -> None:
    checks = [(col, kind, cond, msg) for col in table.columns.values() for kind, cond, msg in _value_checks(col)]
    if not checks:
        return
    counts = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond})" for _, _, cond, _ in checks) + f" FROM {rel}"
    ).fetchall()[0]
    for (col, kind, cond, msg), n in zip(checks, counts or ()):
        if n:
            _add_with_samples(con, report, rel, cond, kind, f"{n} {msg}", table.name, col.name, int(n), quote(col.name))


def _add_with_samples(
    con: duckdb.DuckDBPyConnection,
    report: ValidationReport,
    rel: str,
    cond: str,
    kind: str,
    message: str,
    table: str,
    column: str | None,
    count: int,
    value_expr: str,
) -> None:
    """Report a problem with up to SAMPLES (file, row, value) examples, one problem per file."""
    rows = con.execute(
        f"SELECT __file, __row, CAST({value_expr} AS VARCHAR) FROM {rel} WHERE {cond} ORDER BY __file, __row LIMIT {SAMPLES}"
    ).fetchall()
    files = sorted({r[0] for r in rows})
    report.add(
        Problem(
            kind,  # type: ignore[arg-type]
            message,
            table=table,
            file=", ".join(files) if files else None,
            column=column,
            count=count,
            rows=tuple(int(r[1]) for r in rows),
            values=tuple("NULL" if r[2] is None else str(r[2]) for r in rows),
        )
    )


def _check_primary_key(con: duckdb.DuckDBPyConnection, table: Table, rel: str, report: ValidationReport) -> None:
    if not table.primary_key:
        return
    keys = ", ".join(quote(k) for k in table.primary_key)
    dup = con.execute(f"SELECT count(*) FROM (SELECT {keys} FROM {rel} GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]  # type: ignore[index]
    if dup:
        key_expr = " || '|' || ".join(f"coalesce(CAST({quote(k)} AS VARCHAR), 'NULL')" for k in table.primary_key)
        cond = f"({keys}) IN (SELECT ({keys}) FROM {rel} GROUP BY ALL HAVING count(*) > 1)"
        if len(table.primary_key) == 1:
            cond = f"{keys} IN (SELECT {keys} FROM {rel} GROUP BY ALL HAVING count(*) > 1)"
        _add_with_samples(
            con, report, rel, cond, "duplicate_key", f"{dup} primary key value(s) ({', '.join(table.primary_key)}) occur more than once",
            table.name, ", ".join(table.primary_key), int(dup), key_expr,
        )


def _check_foreign_keys(
    con: duckdb.DuckDBPyConnection, table: Table, rel: str, typed: dict[str, str], report: ValidationReport
) -> None:
    for col in table.foreign_keys:
        ref_table, ref_col = col.foreign_key  # type: ignore[misc]
        q = quote(col.name)
        cond = f"{q} IS NOT NULL AND {q} NOT IN (SELECT {quote(ref_col)} FROM {typed[ref_table]} WHERE {quote(ref_col)} IS NOT NULL)"
        n = con.execute(f"SELECT count(*) FROM {rel} WHERE {cond}").fetchall()[0][0]  # type: ignore[index]
        if n:
            _add_with_samples(
                con, report, rel, cond, "orphan_key", f"{n} value(s) have no matching {ref_table}.{ref_col}",
                table.name, col.name, int(n), q,
            )


def _check_rule(
    con: duckdb.DuckDBPyConnection, schema: Schema, table: Table, rule: Any, typed: dict[str, str], report: ValidationReport
) -> None:
    base = violations_sql(schema, table.name, rule, typed, select="__file, __row")
    try:
        n = con.execute(f"SELECT count(*) FROM ({base})").fetchall()[0][0]  # type: ignore[index]
    except duckdb.Error as exc:
        report.add(Problem("rule_violation", f"rule {rule.name!r} could not be evaluated: {_first_line(exc)}", table=table.name))
        return
    if n:
        rows = con.execute(f"{base} ORDER BY __file, __row LIMIT {SAMPLES}").fetchall()
        files = sorted({r[0] for r in rows})
        report.add(
            Problem(
                "rule_violation",
                f"{n} row(s) break rule {rule.name!r}: {' '.join(rule.check.split())}",
                table=table.name,
                file=", ".join(files),
                count=int(n),
                rows=tuple(int(r[1]) for r in rows),
            )
        )
