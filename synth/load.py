"""Reading a data folder (CSV, CSV.GZ, Parquet) or in-memory frames into DuckDB, checked against a schema.

Every file is staged as text (CSV) or native types (Parquet) with its row numbers, cast to the schema's
types, and checked; every problem goes into one ValidationReport. Code behind the loader may assume
valid data (style.md, rule 2).
"""
from __future__ import annotations

import csv
import fnmatch
import gzip
import itertools
import os
import stat
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_schemas.io import file_pattern_problem
from data_schemas.model import Column, Schema, Table
from data_schemas.rules import quote, violations_sql
from synth import packed as packed_tables
from synth import spill
from synth.engine import is_spark
from synth.errors import CheckTimeoutError, DataValidationError
from synth.validation import Problem, ValidationReport

SAMPLES = 5
TABLE_PREFIX = "table:"
"""``--data table:<prefix>`` (Spark engine): the schema's tables are the catalog tables ``<prefix><table>``."""
STREAM_ROWS = 500_000
_TEXT_TYPES = ("VARCHAR",)
CHECK_TIMEOUT_ENV = "SYNTHMED_CHECK_TIMEOUT"  # seconds one check (a rule, a key) may run; default 1800
DEFAULT_CHECK_TIMEOUT = 1800.0


def connect(
    *, threads: int | None = None, read_dirs: Sequence[str | Path] = (), config: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the settings synthmed relies on (UTC, ordered scans), locked down.

    It touches files only under ``read_dirs`` (DuckDB's ``allowed_directories``, which cannot tell reading
    from writing; by default none at all: synthmed writes Parquet through pyarrow, and ``read_dataset``
    reads files with a connection of its own that runs none of the schema's SQL), installs and loads no
    extension on demand, and its configuration is locked, so no SQL reaching it can widen what it may
    touch. Past its memory budget it spills to a private folder (``synth.spill``: ``SYNTHMED_MEMORY_LIMIT``,
    ``SYNTHMED_TEMP_DIR``) instead of failing. Other settings go in ``config``: they cannot be SET later.
    """
    settings: dict[str, Any] = {"preserve_insertion_order": True, **spill.settings(), **(config or {})}
    settings.update(autoinstall_known_extensions=False, autoload_known_extensions=False)
    if threads:
        settings["threads"] = threads
    con = duckdb.connect(":memory:", config=settings)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # never draw on the user's terminal or a pipe
    dirs = sorted({str(Path(d).resolve()).rstrip(os.sep) + os.sep for d in read_dirs})
    if dirs:
        con.execute(f"SET allowed_directories = [{', '.join(repr_sql(d) for d in dirs)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def repr_sql(text: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def check_timeout() -> float:
    raw = os.environ.get(CHECK_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_CHECK_TIMEOUT
    except ValueError:
        raise CheckTimeoutError(f"The '{CHECK_TIMEOUT_ENV}' setting must be a number of seconds; got {raw!r} instead.") from None


@contextmanager
def interrupt_after(con: duckdb.DuckDBPyConnection, what: str, seconds: float | None = None) -> Iterator[None]:
    """Run the enclosed queries, interrupting them after ``seconds`` (default $SYNTHMED_CHECK_TIMEOUT) with
    a CheckTimeoutError naming ``what``, so no check can hang a command."""
    limit = check_timeout() if seconds is None else seconds
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(limit, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        if fired.is_set():
            raise CheckTimeoutError(
                f"{what} took longer than {limit:g} s and was stopped; raise {CHECK_TIMEOUT_ENV} if the data is that large"
            ) from None
        raise
    finally:
        timer.cancel()


@dataclass
class Dataset:
    """Tables conforming to a schema, held as DuckDB views named ``namespace.table``."""

    schema: Schema
    con: duckdb.DuckDBPyConnection
    namespace: str
    source: str
    files: dict[str, list[str]] = field(default_factory=dict)
    arrow: dict[str, pa.Table] = field(default_factory=dict, repr=False)
    """Typed Arrow tables behind some views (tables the loader read from typed Parquet): the fidelity metrics
    count their dictionary codes directly instead of reading the rows back out of DuckDB."""
    child_counts: dict[str, str] = field(default_factory=dict)
    """Per table, the SQL name of a relation ``(key, n)``: how many rows of that table each parent row had before
    a per-patient cap dropped some (clipped at a public limit), keyed by the parent's key value. Set by
    ``synth.engine.local.bounded`` so a DP generator fitted on bounded rows still counts children past the cap."""
    sample_rate: float | None = None
    """The rate of the Poisson sample of patients these tables hold (``bounded(..., sample_rate=)``), None for all."""

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
        """Write one ``<table>.parquet`` per table into ``out_dir``; returns the paths.

        Streamed through pyarrow in record batches: the DuckDB connection itself may not write files.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for table in self.schema.tables:
            path = out_dir / f"{table}.parquet"
            if is_spark(self.con):  # written by the executors: a folder of part files, read back as one table
                from synth.engine.spark import write_parquet_folder

                write_parquet_folder(self.con, self.namespace, table, list(self.schema.tables[table].columns), path)
                paths[table] = path
                continue
            write_parquet(self.con.sql(f"SELECT * FROM {self.sql_name(table)}"), path)
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


def write_parquet(relation: duckdb.DuckDBPyRelation, path: Path, *, batch_rows: int = 1_000_000) -> None:
    """A relation to one Parquet file, batch by batch (an empty relation still gets its schema)."""
    reader = relation.to_arrow_reader(batch_rows)
    with pq.ParquetWriter(str(path), reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def match_files(table: Table, data_dir: Path, report: ValidationReport | None = None) -> list[Path]:
    """Files of ``data_dir`` for a table: those of the first of its patterns that matches anything.

    Every match must be a regular file whose real path lies inside ``data_dir``; anything else (a folder,
    a FIFO, a device, a broken link or a link loop, a link leading out) is reported as a problem and not
    read. Files that other patterns of the same table match (``x.csv`` beside ``x.csv.gz``) are problems
    too, since one of the two would silently be ignored.
    """
    root = data_dir.resolve()
    chosen: list[Path] = []
    chosen_pattern = None
    for pattern in table.file_patterns():
        if file_pattern_problem(pattern):
            continue  # refused when the schema was loaded; never globbed
        found = _expand_parquet_folders(_glob(data_dir, pattern), data_dir)
        if not found:
            continue
        if chosen_pattern is None:
            chosen_pattern = pattern
            chosen = [p for p in found if _usable(p, root, table, report)]
            continue
        others = [p for p in found if p not in chosen and p.is_file()]
        if others and report is not None:
            report.add(Problem(
                "ambiguous_files",
                f"{', '.join(p.name for p in others[:5])} also match this table (pattern {pattern!r}) but only the "
                f"files matching {chosen_pattern!r} are read ({', '.join(p.name for p in chosen[:3])}); "
                "remove one of the two, or list the files to read under the table's files:",
                table=table.name, file=", ".join(p.name for p in others[:5]), count=len(others),
            ))
    return chosen


PARQUET_SIDECARS = ("_SUCCESS", "_committed_", "_started_", ".")


def _expand_parquet_folders(found: list[Path], data_dir: Path) -> list[Path]:
    """A folder named ``<x>.parquet`` (what Spark and other lake engines write: part files, ``_SUCCESS``,
    ``.crc`` sidecars) stands for its ``*.parquet`` part files; anything else is kept as found, so that
    ``_usable`` reports it. A folder that is a link, or lies outside the data folder, is not opened."""
    out: list[Path] = []
    root = data_dir.resolve()
    for path in found:
        if path.name.endswith(".parquet") and path.is_dir() and not path.is_symlink() and path.resolve().is_relative_to(root):
            parts = sorted(p for p in path.iterdir()
                           if p.name.endswith(".parquet") and not p.name.startswith(PARQUET_SIDECARS))
            out.extend(parts or [path])
        else:
            out.append(path)
    return out


def _glob(data_dir: Path, pattern: str) -> list[Path]:
    """Paths matching ``pattern``, broken links and link loops included (``Path.glob`` skips those)."""
    if "/" in pattern or "**" in pattern:
        return sorted(data_dir.glob(pattern))
    try:
        names = os.listdir(data_dir)
    except OSError:
        return []
    hidden_ok = pattern.startswith(".")
    return sorted(data_dir / n for n in names if fnmatch.fnmatchcase(n, pattern) and (hidden_ok or not n.startswith(".")))


def _usable(path: Path, root: Path, table: Table, report: ValidationReport | None) -> bool:
    """True for a regular file inside ``root``; otherwise a problem saying what the path is."""
    def problem(message: str) -> bool:
        if report is not None:
            report.add(Problem("not_a_file", message, table=table.name, file=path.name))
        return False

    try:
        real = path.resolve(strict=True)
        info = real.stat()
    except RuntimeError:
        return problem("is a symbolic link loop, not a data file")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return problem("is a symbolic link loop, not a data file")
        return problem(f"cannot be opened ({exc.strerror or exc}): a broken symbolic link?")
    if not real.is_relative_to(root):
        return problem(f"leads outside the data folder (to {real}); data files must lie inside it")
    if stat.S_ISDIR(info.st_mode):
        return problem("is a folder, not a data file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a socket or device"
        return problem(f"is {kind}, not a regular data file")
    return True


def read_dataset(
    schema: Schema,
    data_dir: str | Path,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    namespace: str = "data",
    progress: Callable[[str], None] | None = None,
) -> tuple[Dataset, ValidationReport]:
    """Read a folder into DuckDB and check it; returns the dataset and the report of every problem.

    Files are read by a separate connection that may read ``data_dir`` only and runs no SQL from the
    schema; their rows stream into ``con`` (which needs no file access at all), where the checks and
    the schema's rules run. ``progress`` hears a line per table read and per table checked (at 100M
    rows reading and checking are minutes each).
    """
    con = con or connect()
    say = progress or (lambda _m: None)
    if is_spark(con) and str(data_dir).startswith(TABLE_PREFIX):  # tables of the Spark catalog, not files
        report = ValidationReport(schema=schema.name, source=str(data_dir))
        _create_namespace(con, namespace)
        say(f"reading the tables {data_dir}* on Spark")
        read_tables_spark(con, schema, str(data_dir)[len(TABLE_PREFIX):], namespace, report)
        _check(con, namespace, schema, report, say=say)
        return Dataset(schema, con, namespace, str(data_dir), files=report.files), report
    data_dir = Path(data_dir)
    report = ValidationReport(schema=schema.name, source=str(data_dir))
    _create_namespace(con, namespace)
    if not data_dir.is_dir():
        what = "is not a folder" if data_dir.exists() else "does not exist"
        report.add(Problem("missing_folder", f"the data folder {data_dir} {what}", file=str(data_dir)))
        for table in schema.tables.values():
            _create_empty(con, namespace, table)
        return Dataset(schema, con, namespace, str(data_dir)), report
    used: set[Path] = set()
    arrow: dict[str, pa.Table] = {}
    _read_tables(con, schema, data_dir, namespace, report, used, arrow, say)
    named = {f.strip() for p in report.problems if p.file for f in p.file.split(",")}
    ignored = sorted(p.name for p in data_dir.iterdir()
                     if p.is_file() and p not in used and _is_data_file(p) and p.name not in named)
    if ignored:
        report.notes.append(f"files matching no table were ignored: {', '.join(ignored)}")
    _check(con, namespace, schema, report, arrow, say=say)
    dataset = Dataset(schema, con, namespace, str(data_dir), files=report.files, arrow=arrow)
    return dataset, report


def _read_tables(con: duckdb.DuckDBPyConnection, schema: Schema, data_dir: Path, namespace: str,
                 report: ValidationReport, used: set[Path], arrow_out: dict[str, pa.Table],
                 say: Callable[[str], None]) -> None:
    for table in schema.tables.values():
        files = match_files(table, data_dir, report)
        used.update(files)
        if files:
            say(f"reading {_files_said(files, data_dir)} as table {table.name}")
        report.files[table.name] = [str(f.relative_to(data_dir)) if f.parent != data_dir else f.name for f in files]
        if not files and any(p.table == table.name and p.kind in ("not_a_file", "ambiguous_files") for p in report.problems):
            _create_empty(con, namespace, table)
            continue
        if not files:
            if table.required:
                patterns = ", ".join(table.file_patterns())
                report.add(Problem("missing_table", f"no file found (looked for {patterns})", table=table.name))
            else:
                report.notes.append(f"optional table {table.name} has no file; treated as empty")
            _create_empty(con, namespace, table)
            continue
        if is_spark(con):  # the same staging, typing and checks, run on Spark
            staged = [s for i, f in enumerate(files) if (s := _stage_spark(con, namespace, table, f, i, report, data_dir))]
            _type_table(con, namespace, table, staged, report)
            continue
        parquet = all(f.name.endswith(".parquet") for f in files)
        arrow = _typed_parquet(table, files, data_dir) if parquet and _fits_in_memory(table, files, report) else None
        if arrow is not None:  # typed Parquet: read once, dictionary-encoded, no staging copy and no cast
            _register_typed(con, namespace, table, arrow)
            _hold(arrow)
            arrow_out[table.name] = arrow
            continue
        if parquet and _typed_columns(table, files):  # typed Parquet too large for Arrow: one copy, in one pass
            _stream_typed(con, namespace, table, files, report, data_dir)
            continue
        staged = [s for i, f in enumerate(files) if (s := _stage_file(con, namespace, table, f, i, report, data_dir))]
        _type_table(con, namespace, table, staged, report)


DICTIONARY_TYPES = ("categorical", "code", "text")
ARROW_SHARE = 4
"""Typed Parquet is held as Arrow tables (outside DuckDB's budget, never spilled) only while all the Arrow tables
this process holds stay within 1/ARROW_SHARE of ``SYNTHMED_MEMORY_LIMIT``; larger tables are staged in DuckDB,
which spills past its budget: slower (about 1.5-2x for validation) but bounded."""
_arrow_held = [0]  # bytes of the Arrow tables read by this process and still alive


def _hold(arrow: pa.Table) -> None:
    """Count an Arrow table against the in-memory share until it is freed."""
    _arrow_held[0] += arrow.nbytes
    weakref.finalize(arrow, _release, arrow.nbytes)


def _release(nbytes: int) -> None:
    _arrow_held[0] -= nbytes


def arrow_bytes_estimate(table: Table, files: list[Path]) -> int:
    """About how many bytes ``_typed_parquet`` would hold for these files, from their Parquet footers only.

    Per row: 4 bytes for a column read as a dictionary, the value's width for numbers and dates, 4 plus the
    mean length of the column's min and max statistics for other text; plus the ``__file`` and ``__row`` columns.
    """
    total = 0
    for path in files:
        meta = pq.ParquetFile(str(path)).metadata
        arrow_schema = meta.schema.to_arrow_schema()
        width = 12  # __file (dictionary index) and __row
        for i, name in enumerate(arrow_schema.names):
            col = table.columns.get(name)
            typ = arrow_schema.field(i).type
            if col is not None and col.type in DICTIONARY_TYPES:
                width += 4
            elif pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
                lengths = [len(v) for g in range(meta.num_row_groups)
                           if (st := meta.row_group(g).column(i).statistics) is not None and st.has_min_max
                           for v in (st.min, st.max) if isinstance(v, (str, bytes))]
                width += 4 + (sum(lengths) // len(lengths) if lengths else 32)
            elif pa.types.is_boolean(typ):
                width += 1
            elif pa.types.is_date32(typ):
                width += 4
            else:
                width += 8
        total += meta.num_rows * width
    return total


def _fits_in_memory(table: Table, files: list[Path], report: ValidationReport) -> bool:
    """Whether a table's typed Parquet may be held in memory as Arrow (see ``ARROW_SHARE``); notes it when not."""
    try:
        need = arrow_bytes_estimate(table, files)
    except (OSError, pa.ArrowException, ValueError):
        return True  # unreadable footer: _typed_parquet declines it and the staged path reports the problem
    share = spill.memory_limit_bytes() // ARROW_SHARE
    if _arrow_held[0] + need <= share:
        return True
    report.notes.append(
        f"table {table.name} (about {need / 2**20:,.0f} MiB in memory) is staged in DuckDB (compressed where its "
        f"Parquet is already typed), which spills to disk past its budget: it does not fit in 1/{ARROW_SHARE} of the memory budget ({spill.MEMORY_ENV}, now "
        f"{spill.memory_limit()}) beside the {_arrow_held[0] / 2**20:,.0f} MiB already held"
    )
    return False


def _arrow_target(col: Column, typ: pa.DataType) -> pa.DataType | None:
    """The Arrow type a Parquet column of type ``typ`` is held as for ``col`` without any parsing (None: the
    value needs DuckDB's cast and checks, so the file takes the staged path)."""
    target = col.sql_type
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if target == "VARCHAR":
        return pa.string() if pa.types.is_string(typ) or pa.types.is_large_string(typ) else None
    if target == "BIGINT":
        return pa.int64() if pa.types.is_integer(typ) else None
    if target == "DOUBLE":
        return pa.float64() if pa.types.is_floating(typ) or pa.types.is_integer(typ) else None
    if target == "BOOLEAN":
        return pa.bool_() if pa.types.is_boolean(typ) else None
    if col.format is not None:
        return None
    if target == "DATE":
        return pa.date32() if pa.types.is_date(typ) else None
    if target == "TIMESTAMP" and pa.types.is_timestamp(typ):
        return pa.timestamp("us")
    return None


def _typed_parquet(table: Table, files: list[Path], data_dir: Path) -> pa.Table | None:
    """The files of a table as one typed Arrow table (with ``__file`` and ``__row``) when they hold exactly the
    schema's columns in types that need no parsing; None otherwise, and for anything unusual (the staged path
    then reads them and reports every problem as before).

    Files are read by pyarrow in this process (the paths were checked by ``match_files``: regular files inside
    the data folder); no SQL touches them. Category and code columns are read as Arrow dictionaries, so they
    are stored once per distinct value and counted on their integer codes by the fidelity metrics.
    """
    wanted = {c.name for c in table.columns.values()}
    parts = []
    try:
        for path in files:
            dictionary = [c for c in table.columns if table.columns[c].type in DICTIONARY_TYPES]
            info = pq.ParquetFile(str(path), read_dictionary=dictionary)
            fields = {f.name: f.type for f in info.schema_arrow}
            if set(fields) != wanted:
                return None
            targets = {c: _arrow_target(table.columns[c], t) for c, t in fields.items()}
            if any(t is None for t in targets.values()):
                return None
            data = info.read(use_threads=True)  # ParquetFile, not pq.read_table: no pyarrow.dataset (nor pandas) import
            columns = []
            for name in table.columns:
                column = data.column(name)
                target = targets[name]
                if pa.types.is_dictionary(column.type):
                    if not pa.types.is_string(column.type.value_type):
                        column = column.cast(pa.dictionary(pa.int32(), pa.string()))
                elif column.type != target:
                    column = column.cast(target)  # safe cast: a value that would change raises -> staged path
                if target == pa.string() and _needs_trim(column):
                    return None  # the staged path reads '' as missing and trims spaces (nullif(trim(x), ''))
                columns.append(column)
            label = str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else path.name
            n = data.num_rows
            columns.append(pa.DictionaryArray.from_arrays(_numpy_array(np.zeros(n, dtype=np.int32)), _one_string(label)))
            columns.append(_numpy_array(np.arange(1, n + 1, dtype=np.int64)))
            parts.append(pa.Table.from_arrays(columns, names=[*table.columns, "__file", "__row"]))
    except (OSError, pa.ArrowException, ValueError):
        return None
    if not parts:
        return None
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def _typed_columns(table: Table, files: list[Path]) -> bool:
    """Whether every file holds exactly the schema's columns in its types, so no value needs parsing (footers only).

    Such a table may skip the staged copy: its rows stream straight into the typed table (``_stream_typed``).
    Integers are widened to BIGINT, numbers cast to DOUBLE as the staged path casts them; anything else a cast
    would change (other timestamp units, zones) takes the staged path, which reports what does not parse."""
    wanted = set(table.columns)
    for path in files:
        try:
            fields = {f.name: f.type for f in pq.ParquetFile(str(path)).schema_arrow}
        except (OSError, pa.ArrowException, ValueError):
            return False  # the staged path reports the unreadable file
        if set(fields) != wanted or STREAM_ROW_COLUMN in fields:
            return False
        for name, typ in fields.items():
            target = _arrow_target(table.columns[name], typ)
            value = typ.value_type if pa.types.is_dictionary(typ) else typ
            if target is None:
                return False
            if target == pa.int64() and pa.types.is_integer(value) and value != pa.uint64():
                continue  # widened exactly
            if target == pa.float64() and (pa.types.is_integer(value) or pa.types.is_floating(value)):
                continue  # DuckDB's cast, as the staged path's try_cast(x AS DOUBLE)
            if target == pa.string() and (pa.types.is_string(value) or pa.types.is_large_string(value)):
                continue
            if value != target:
                return False
    return True


STREAM_ROW_COLUMN = "file_row_number"
"""The row number DuckDB's Parquet reader adds (``file_row_number = true``); a file with such a column is staged."""


PACK_BATCHES = 8
"""Record batches (of ``STREAM_ROWS``) per compressed slice: rows are held uncompressed (in Arrow and in DuckDB)
until their slice's CHECKPOINT, so at most one slice's worth (4M rows) is."""


def _stream_typed(con: duckdb.DuckDBPyConnection, namespace: str, table: Table, files: list[Path],
                  report: ValidationReport, data_dir: Path) -> None:
    """Typed Parquet that does not fit in memory as Arrow, streamed file by file into one compressed table.

    The same rows, ``__file`` and ``__row`` as the staged path (text trimmed, '' read as missing), without its
    raw copy and uncompressed cast copy: one pass over each file, slice by slice (``PACK_BATCHES``), each slice
    compressed as it lands. A file that fails while being read is reported and its rows taken out again, as
    the staged path leaves such a file out. The typed name is a view over the table, as for Arrow tables."""
    packed = packed_tables.table_name(con, namespace, f"__typed_{table.name}")
    _create_typed(con, packed, table)
    packed_tables.view_over(con, namespace, f"__typed_{table.name}", packed)
    _create_view(con, namespace, table)
    for index, path in enumerate(files):
        label = _readable_file(table, path, data_dir, report)
        if label is None:
            continue
        source = connect(read_dirs=[data_dir])
        view = f"__stream_{namespace}_{table.name}_{index}"
        try:
            stream = source.sql(f"SELECT * FROM read_parquet('{_sql_str(str(path))}', "
                                f"{STREAM_ROW_COLUMN} = true)").to_arrow_reader(STREAM_ROWS)
            values = None  # the same for every slice of a file: worked out on the first
            try:
                while batches := list(itertools.islice(stream, PACK_BATCHES)):
                    con.register(view, pa.RecordBatchReader.from_batches(stream.schema, batches))
                    try:
                        if values is None:
                            staged = _Staged(quote(view), label, _columns_of(con, quote(view)))
                            values = ", ".join(_source_expr(col, staged)[0] for col in table.columns.values())
                        con.execute(f"INSERT INTO {packed} SELECT {values}, '{_sql_str(label)}', "
                                    f"{STREAM_ROW_COLUMN} + 1 FROM {quote(view)}")
                    finally:
                        con.unregister(view)
                    packed_tables.checkpoint(con)
            finally:
                stream.close()
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            con.execute(f"DELETE FROM {packed} WHERE __file = '{_sql_str(label)}'")  # the slices before the failure
            report.add(Problem("unreadable_file", f"cannot be read as {_kind(path)}: {_first_line(exc)}",
                               table=table.name, file=label))
        finally:
            source.close()


def _numpy_array(values: np.ndarray) -> pa.Array:
    """An Arrow array over a numpy integer array's buffer (``pa.array`` would import pandas to inspect it)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _strings(texts: Sequence[str]) -> pa.Array:
    """An Arrow string array built from its buffers (see ``_numpy_array``)."""
    encoded = [t.encode() for t in texts]
    offsets = np.cumsum([0, *(len(b) for b in encoded)]).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _one_string(text: str) -> pa.Array:
    return _strings([text])


def _needs_trim(column: pa.ChunkedArray) -> bool:
    """True when a text column holds a value with leading/trailing spaces or an empty string."""
    for chunk in column.chunks:
        values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
        if len(values) and (pc.any(pc.not_equal(pc.utf8_trim(values, " "), values)).as_py()
                            or pc.min(pc.utf8_length(values)).as_py() == 0):
            return True
    return False


def _register_typed(con: duckdb.DuckDBPyConnection, namespace: str, table: Table, arrow: pa.Table) -> None:
    """Make an Arrow table the typed table of ``table`` (a view over it; DuckDB scans it without a copy)."""
    name = f"__arrow_{namespace}_{table.name}"
    con.register(name, arrow)
    typed = f"{quote(namespace)}.{quote('__typed_' + table.name)}"
    con.execute(f"DROP TABLE IF EXISTS {typed}")
    con.execute(f"CREATE OR REPLACE VIEW {typed} AS SELECT * FROM {quote(name)}")
    _create_view(con, namespace, table)


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
    _create_typed(con, f"{quote(namespace)}.{quote('__typed_' + table.name)}", table)
    _create_view(con, namespace, table)


def _create_typed(con: duckdb.DuckDBPyConnection, name: str, table: Table) -> None:
    """An empty typed table: the schema's columns in their types, then ``__file`` and ``__row``."""
    cols = ", ".join(f"{quote(c.name)} {c.sql_type}" for c in table.columns.values())
    con.execute(f"CREATE OR REPLACE TABLE {name} ({cols}, __file VARCHAR, __row BIGINT)")


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


def _readable_file(table: Table, path: Path, data_dir: Path | None, report: ValidationReport) -> str | None:
    """The file's label in problems (its path under the data folder), or None after reporting an unreadable
    or empty file: the check both engines make before staging a file."""
    label = str(path.relative_to(data_dir)) if data_dir is not None and path.is_relative_to(data_dir) else path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        report.add(Problem("unreadable_file", f"cannot read the file: {exc}", table=table.name, file=label))
        return None
    if size == 0:
        report.add(Problem("empty_file", "the file is empty (0 bytes): expected a header row", table=table.name, file=label))
        return None
    return label


def _stage_file(
    con: duckdb.DuckDBPyConnection, namespace: str, table: Table, path: Path, index: int, report: ValidationReport,
    data_dir: Path | None = None,
) -> _Staged | None:
    """Read one file into a raw table; report an unreadable or empty file instead of raising.

    A CSV is read with an explicit dialect (the schema's ``csv:`` settings, the rest sniffed once), its
    header checked for duplicates and case mismatches, and every line DuckDB cannot parse kept in a
    reject table and reported with its line, column and error (wrong field count, bad quoting, invalid
    encoding); NUL bytes in values are reported too.
    """
    raw = f"{quote(namespace)}.{quote(f'__raw_{table.name}_{index}')}"
    label = _readable_file(table, path, data_dir, report)
    if label is None:
        return None
    src = _sql_str(str(path))
    header: list[str] | None = None
    rejects = None
    if path.name.endswith(".parquet"):
        reader = f"read_parquet('{src}')"
    else:
        try:
            options, header = _csv_options(path, table)
        except (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError) as exc:
            report.add(Problem("unreadable_file", f"cannot be read as {_kind(path)}: {_first_line(exc)}{_encoding_hint(exc, table)}",
                               table=table.name, file=label))
            return None
        rejects = (f"__rejects_{namespace}_{table.name}_{index}", f"__rejscan_{namespace}_{table.name}_{index}")
        columns = ", ".join(f"{repr_sql(n)}: 'VARCHAR'" for n in _unique_names(header))
        reader = (
            f"read_csv('{src}', {options}, header = true, auto_detect = false, columns = {{{columns}}}, "
            f"store_rejects = true, rejects_table = '{_sql_str(rejects[0])}', rejects_scan = '{_sql_str(rejects[1])}')"
        )
    # a connection of its own reads the file (it may read this folder only, and runs no SQL of the schema);
    # the rows stream into ``con`` as Arrow record batches
    source = connect(read_dirs=[data_dir if data_dir is not None else path.parent])
    try:
        stream = source.sql(f"SELECT * FROM {reader}").to_arrow_reader(STREAM_ROWS)
        view = f"__stream_{namespace}_{table.name}_{index}"
        con.register(view, stream)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {raw} AS SELECT * FROM {quote(view)}")
        finally:
            con.unregister(view)
            stream.close()
    except (duckdb.Error, pa.ArrowException, UnicodeDecodeError) as exc:
        report.add(
            Problem("unreadable_file", f"cannot be read as {_kind(path)}: {_first_line(exc)}{_encoding_hint(exc, table)}",
                    table=table.name, file=label)
        )
        source.close()
        return None
    try:
        if rejects is not None:
            _report_rejects(source, rejects, table, label, report)
    finally:
        source.close()
    staged = _Staged(raw, label, _columns_of(con, raw))
    if header is not None:
        _check_duplicate_header(table, header, label, report)
        _report_nul_bytes(con, table, staged, report)
    _check_header(table, staged, report)
    return staged


def _stage_spark(con: Any, namespace: str, table: Table, path: Path, index: int, report: ValidationReport,
                 data_dir: Path) -> _Staged | None:
    """``_stage_file`` on Spark: the file read by the executors into a temporary view with ``rowid``, CSV
    with the dialect ``_csv_dialect`` fixes; malformed CSV lines are left out and counted in one problem."""
    from synth.engine.spark import stage_file
    from synth.engine.transpile import view_name

    raw_name = f"__raw_{table.name}_{index}"
    label = _readable_file(table, path, data_dir, report)
    if label is None:
        return None
    header = dialect = None
    if not path.name.endswith(".parquet"):
        try:
            dialect, header = _csv_dialect(path, table)
        except (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError) as exc:
            report.add(Problem("unreadable_file", f"cannot be read as {_kind(path)}: {_first_line(exc)}{_encoding_hint(exc, table)}",
                               table=table.name, file=label))
            return None
        header = _unique_names(header)
    try:
        types, bad = stage_file(con, path, header, dialect, view_name(namespace, raw_name))
    except duckdb.Error as exc:
        report.add(Problem("unreadable_file", f"cannot be read as {_kind(path)}: {_first_line(exc)}", table=table.name, file=label))
        return None
    if bad:
        report.add(Problem("bad_line", f"{bad} line(s) could not be parsed with the file's dialect (wrong number of fields or "
                                       "quoting); not read", table=table.name, file=label, count=bad))
    staged = _Staged(f"{quote(namespace)}.{quote(raw_name)}", label, types)
    if header is not None:
        _check_duplicate_header(table, header, label, report)
        _report_nul_bytes(con, table, staged, report)
    _check_header(table, staged, report)
    return staged


def read_tables_spark(con: Any, schema: Schema, prefix: str, namespace: str, report: ValidationReport) -> None:
    """Stage the catalog tables ``<prefix><table>`` (Hive, Delta...) on Spark and type them."""
    from synth.engine.spark import stage_table
    from synth.engine.transpile import view_name

    for table in schema.tables.values():
        qualified = f"{prefix}{table.name}"
        raw_name = f"__raw_{table.name}_0"
        try:
            types = stage_table(con, qualified, view_name(namespace, raw_name))
        except Exception as exc:  # noqa: BLE001 - Spark raises several unrelated classes for a missing table
            if table.required:
                report.add(Problem("missing_table", f"cannot read the table {qualified}: {_first_line(exc)}", table=table.name))
            else:
                report.notes.append(f"optional table {table.name} has no table {qualified}; treated as empty")
            _create_empty(con, namespace, table)
            continue
        report.files[table.name] = [qualified]
        staged = _Staged(f"{quote(namespace)}.{quote(raw_name)}", qualified, types)
        _check_header(table, staged, report)
        _type_table(con, namespace, table, [staged], report)


CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
HEADER_BYTES = 1 << 20


def _csv_options(path: Path, table: Table) -> tuple[str, list[str]]:
    """DuckDB's read_csv options for ``_csv_dialect``'s dialect, and the header's fields."""
    dialect, header = _csv_dialect(path, table)
    options = (f"delim = {repr_sql(dialect['delimiter'])}, quote = {repr_sql(dialect['quote'])}, "
               f"escape = {repr_sql(dialect['escape'])}, encoding = '{dialect['encoding']}'")
    return options, header


def _csv_dialect(path: Path, table: Table) -> tuple[dict[str, str], list[str]]:
    """read_csv options fixing the dialect, and the header's fields exactly as written.

    The schema's ``csv:`` settings win; otherwise the delimiter is the one that splits the header line
    into the most of the table's column names (a bad line further down cannot change it, as it can
    DuckDB's sniffer), the quote and escape character are the double quote (RFC 4180), the encoding UTF-8.
    """
    given = table.csv
    encoding = given.encoding if given is not None and given.encoding else "utf-8"
    quote_char = given.quote if given is not None and given.quote is not None else '"'
    escape = given.escape if given is not None and given.escape is not None else quote_char
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        first = fh.readline(HEADER_BYTES)
    try:
        line = first.decode(encoding.replace("latin-1", "latin_1")).lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end,
                                 f"the header line is not valid {encoding}") from None
    wanted = {c.lower() for c in table.columns}

    def fields(delim: str) -> list[str]:
        return next(csv.reader([line], delimiter=delim, quotechar=quote_char or None), [])

    if given is not None and given.delimiter:
        delim = given.delimiter
    else:
        delim = max(CANDIDATE_DELIMITERS,
                    key=lambda d: (sum(f.strip().lower() in wanted for f in fields(d)), len(fields(d)), d == ","))
    dialect = {"delimiter": delim, "quote": quote_char, "escape": escape, "encoding": encoding}
    return dialect, fields(delim) if len(delim) == 1 else line.split(delim)


def _unique_names(header: list[str]) -> list[str]:
    """Header fields as column names: blanks named ``column<i>``, repeats suffixed ``_1``, ``_2`` (as DuckDB does)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(header):
        name = name.strip() or f"column{i}"
        base, n = name, 0
        while name.lower() in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name.lower())
        out.append(name)
    return out


def _encoding_hint(exc: BaseException, table: Table) -> str:
    text = str(exc).lower()
    if isinstance(exc, UnicodeDecodeError) or "invalid unicode" in text or "not utf-8 encoded" in text:
        return (f"; the file is not valid {table.csv.encoding if table.csv and table.csv.encoding else 'UTF-8'}: "
                "if it was written as latin-1 (Windows-1252), say so in the schema with csv: {encoding: latin-1}")
    return ""


def _report_rejects(con: duckdb.DuckDBPyConnection, rejects: tuple[str, str], table: Table, label: str,
                    report: ValidationReport) -> None:
    """One problem per kind of CSV error, with the line numbers, columns and (shortened) lines."""
    errors_table, scan_table = (quote(r) for r in rejects)
    try:
        kinds = con.execute(
            f"SELECT error_type, count(DISTINCT line) FROM {errors_table} GROUP BY error_type ORDER BY min(line)"
        ).fetchall()
    except duckdb.CatalogException:
        return  # the read failed before DuckDB made the tables
    for error_type, n in kinds:
        samples = con.execute(
            f"SELECT line, any_value(column_name), any_value(column_idx), any_value(csv_line), any_value(error_message) "
            f"FROM {errors_table} WHERE error_type = ? GROUP BY line ORDER BY line LIMIT {SAMPLES}", [error_type]
        ).fetchall()
        kind = str(error_type).upper()
        if "ENCODING" in kind or "UNICODE" in kind:
            enc = table.csv.encoding if table.csv and table.csv.encoding else "UTF-8"
            message = (f"{n} line(s) are not valid {enc} (a byte such as latin-1's é): declare the file's encoding in the "
                       "schema, e.g. csv: {encoding: latin-1}, or convert the file to UTF-8")
        elif "TOO MANY" in kind:
            message = f"{n} line(s) have more fields than the header (an extra delimiter or an unquoted delimiter inside a value)"
        elif "MISSING" in kind or "TOO FEW" in kind:
            message = f"{n} line(s) have fewer fields than the header"
        elif "QUOTE" in kind:
            message = f"{n} line(s) have a quote that is never closed (or stray quote characters)"
        else:
            message = f"{n} line(s) could not be parsed ({str(error_type).lower()}: {_first_line(Exception(samples[0][4]))})"
        columns = sorted({str(c) for _, c, _, _, _ in samples if c})
        lines = ", ".join(str(int(r[0])) for r in samples) + (", ..." if n > len(samples) else "")
        report.add(Problem(
            "bad_line", f"{message}; not read: line {lines}", table=table.name, file=label,
            column=", ".join(columns) or None, count=int(n), values=tuple(str(r[3])[:80] for r in samples),
        ))
    for name in (errors_table, scan_table):
        con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()  # drained: DuckDB keeps an unread result open


def _check_duplicate_header(table: Table, header: list[str], label: str, report: ValidationReport) -> None:
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().lower()
        if key in seen:
            same = "twice" if seen[key] == name else f"twice, as {seen[key]!r} and {name!r} (names are compared ignoring case)"
            report.add(Problem("duplicate_column", f"the header names column {name!r} {same}; each column once",
                               table=table.name, file=label, column=name))
        else:
            seen[key] = name


def _report_nul_bytes(con: duckdb.DuckDBPyConnection, table: Table, staged: _Staged, report: ValidationReport) -> None:
    cols = [c for c, t in staged.types.items() if t in _TEXT_TYPES]
    if not cols:
        return
    counts = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE contains({quote(c)}, chr(0)))" for c in cols) + f" FROM {staged.name}"
    ).fetchall()[0]
    for col, n in zip(cols, counts or ()):
        if n:
            rows = con.execute(
                f"SELECT rowid + 1 FROM {staged.name} WHERE contains({quote(col)}, chr(0)) ORDER BY rowid LIMIT {SAMPLES}"
            ).fetchall()
            report.add(Problem("nul_byte", f"{n} value(s) hold a NUL byte (\\0): a binary or truncated export?",
                               table=table.name, file=staged.file, column=col, count=int(n), rows=tuple(int(r[0]) for r in rows)))


def _kind(path: Path) -> str:
    if path.name.endswith(".parquet"):
        return "Parquet"
    return "gzipped CSV" if path.name.endswith(".gz") else "CSV"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_header(table: Table, staged: _Staged, report: ValidationReport) -> None:
    present = set(staged.types)
    by_lower = {n.lower(): n for n in present if n not in table.columns}
    case_only = {c.name: by_lower[c.name.lower()] for c in table.columns.values()
                 if c.name not in present and c.name.lower() in by_lower}
    if case_only:
        shown = ", ".join(f"{have!r} for {want!r}" for want, have in list(case_only.items())[:5])
        report.add(Problem(
            "header_case", f"{len(case_only)} header name(s) differ from the schema only in letter case ({shown}"
            f"{', ...' if len(case_only) > 5 else ''}): names are matched exactly; rename the header or the schema's columns",
            table=table.name, file=staged.file, column=", ".join(case_only), count=len(case_only),
        ))
        present = present | set(case_only)  # reported once here, not again as missing and unexpected
    missing = [c for c in table.columns.values() if c.name not in present and c.required and not c.from_filename]
    for col in missing:
        hint = ""
        if len(present) == 1:
            hint = f"; the file has a single column {next(iter(present))!r}: check the delimiter"
        report.add(
            Problem("missing_column", f"required column is missing{hint}", table=table.name, file=staged.file, column=col.name)
        )
    for name in staged.types:
        if name not in table.columns and name not in case_only.values():
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
    if target == "BIGINT":  # DuckDB rounds '2.5' to 3 when casting: accept only integral values, and take the
        # integer itself where it is one (through DOUBLE alone, ids past 2**53 would change and could collide)
        num = f"try_cast({raw} AS DOUBLE)"
        return f"CASE WHEN {num} = round({num}) THEN coalesce(try_cast({raw} AS BIGINT), try_cast({num} AS BIGINT)) END"
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


def _files_said(files: Sequence[Path], data_dir: Path) -> str:
    """Files as a progress line names them: the one file (or how many), and their size on disk."""
    size = f"{sum(f.stat().st_size for f in files) / 1e6:,.1f} MB"  # match_files gives regular files only
    return f"{files[0]} ({size})" if len(files) == 1 else f"{len(files)} files in {data_dir} ({size})"


def _check(con: duckdb.DuckDBPyConnection, namespace: str, schema: Schema, report: ValidationReport,
           arrow: Mapping[str, pa.Table] | None = None, *, say: Callable[[str], None] = lambda _m: None) -> None:
    """Value, key and rule checks over the typed tables; rows counted into the report.

    Tables held as Arrow (``arrow``) are screened there first: a value check that cannot fail (no null,
    every dictionary value matches its pattern...) skips its SQL; any that can runs in SQL as for other
    tables, so the report is the same either way. Keys are checked in SQL: one multi-threaded GROUP BY."""
    typed = {t: f"{quote(namespace)}.{quote('__typed_' + t)}" for t in schema.tables}
    # columns a file lacks are NULL there: checking them would only add follow-on noise (all-NULL keys
    # "duplicated", non-nullable columns "empty", rules "broken"), so checks that read them are skipped
    absent: dict[str, set[str]] = {t: set() for t in schema.tables}
    for p in report.problems:
        if p.kind in ("missing_column", "header_case") and p.table in absent and p.column:
            absent[p.table].update(c.strip() for c in p.column.split(","))
    for table in schema.tables.values():
        rel = typed[table.name]
        report.rows[table.name] = int(con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0])  # type: ignore[index]
        what = f"checking the values and keys of table {table.name}"
        say(f"{what} ({report.rows[table.name]:,} rows)")
        held = (arrow or {}).get(table.name)
        with interrupt_after(con, what):
            _check_values(con, table, rel, report, skip=absent[table.name], arrow=held)
            if not absent[table.name] & set(table.primary_key):
                _check_primary_key(con, table, rel, report)
            _check_foreign_keys(con, table, rel, typed, report, absent=absent)
    n_rules = sum(len(t.rules) for t in schema.tables.values())
    if n_rules:
        say(f"checking the schema's {n_rules} rules")
    for table in schema.tables.values():
        for rule in table.rules:
            if _reads_absent(schema, table, rule, absent):
                continue
            with interrupt_after(con, f"checking rule {rule.name!r} of table {table.name}"):
                _check_rule(con, schema, table, rule, typed, report)


def _reads_absent(schema: Schema, table: Table, rule: Any, absent: dict[str, set[str]]) -> bool:
    """True when a rule reads a column some file of its table (or its parent or patient table) lacks."""
    from data_schemas.rules import compile_check

    path = schema.path_to_patient(table.name)
    scopes = {"": table.name, "parent": path[0][2] if path else None, "patient": schema.patient.table}
    for scope, column in compile_check(rule.check).columns:
        owner = scopes.get(scope)
        if owner is not None and column.lower() in {c.lower() for c in absent.get(owner, ())}:
            return True
    return False


def _check_values(
    con: duckdb.DuckDBPyConnection, table: Table, rel: str, report: ValidationReport, *, skip: set[str] = frozenset(),
    arrow: pa.Table | None = None,
) -> None:
    checks = [(col, kind, cond, msg) for col in table.columns.values() if col.name not in skip
              for kind, cond, msg in _value_checks(col)
              if arrow is None or _arrow_may_fail(col, kind, arrow.column(col.name))]
    if not checks:
        return
    counts = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond})" for _, _, cond, _ in checks) + f" FROM {rel}"
    ).fetchall()[0]
    for (col, kind, cond, msg), n in zip(checks, counts or ()):
        if n:
            _add_with_samples(con, report, rel, cond, kind, f"{n} {msg}", table.name, col.name, int(n), quote(col.name))


def _arrow_may_fail(col: Column, kind: str, column: pa.ChunkedArray) -> bool:
    """False when a value check of ``_value_checks`` surely finds nothing in an Arrow column (checked on the
    dictionary for categories and codes); True when it may, and SQL then counts and samples exactly."""
    if kind == "null_value":
        return column.null_count > 0
    if kind == "out_of_range":
        present = pc.drop_null(column)
        if not len(present):
            return False
        bounds = pc.min_max(present).as_py()
        return (col.minimum is not None and bounds["min"] < col.minimum) or (col.maximum is not None and bounds["max"] > col.maximum)
    if not pa.types.is_dictionary(column.type):
        return True
    used = [chunk.dictionary.take(pc.unique(pc.drop_null(chunk.indices))) for chunk in column.chunks]
    values = pa.chunked_array(used, type=column.type.value_type)
    if kind == "unknown_category" and col.values is not None:
        return pc.any(pc.invert(pc.is_in(values, value_set=_strings(col.values)))).as_py() or False
    if kind == "bad_code" and col.code_pattern is not None:
        return not (pc.all(pc.match_substring_regex(values, pattern=f"^(?:{col.code_pattern})$")).as_py() in (True, None))
    return True


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
    con: duckdb.DuckDBPyConnection, table: Table, rel: str, typed: dict[str, str], report: ValidationReport,
    *, absent: dict[str, set[str]] | None = None,
) -> None:
    for col in table.foreign_keys:
        ref_table, ref_col = col.foreign_key  # type: ignore[misc]
        if absent and (col.name in absent.get(table.name, ()) or ref_col in absent.get(ref_table, ())):
            continue
        q = quote(col.name)
        ref = quote(ref_col)
        # the orphan values (this column's values EXCEPT the parent's), then the rows holding one: a NOT IN subquery
        # is a null-aware anti join, which Spark broadcasts through its driver (10M parent keys ran it out of memory)
        cond = (f"{q} IN (SELECT {q} FROM {rel} WHERE {q} IS NOT NULL "
                f"EXCEPT SELECT {ref} FROM {typed[ref_table]} WHERE {ref} IS NOT NULL)")
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
    except duckdb.InterruptException:
        raise
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
