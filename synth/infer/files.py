"""Files and tables: data files grouped into tables, each table read into DuckDB as the loader reads it.

Files whose names differ only in digits (``..._2008_...``, ``..._2009_...``) form one table, read by a glob
with ``*`` where the digits vary. Every file is read the way :func:`synth.load.read_dataset` reads it (CSV
as text, Parquet native) into one staged table of text values plus ``__file`` and ``__rn``.
"""
from __future__ import annotations

import glob as globlib
import re
from pathlib import Path

import duckdb

from data_schemas.model import is_valid_name
from data_schemas.rules import quote
from synth.errors import DataDirError
from synth.infer.parts import NATIVE_TEXTLIKE, Col, FileGroup, Tbl, identifier, sql_str, unique_name, words

DATA_SUFFIXES = (".csv.gz", ".tsv.gz", ".csv", ".tsv", ".parquet")

_SAMPLE_WORD = re.compile(r"(sample|part|chunk|batch|shard|split|file)[_\-. ]?$", re.IGNORECASE)
_NOISE_WORDS = {"sample", "samples", "part", "chunk", "batch", "shard", "split"}
_CONNECTORS = {"to", "and", "through", "thru"}


def suffix_of(name: str) -> str | None:
    lower = name.lower()
    for suffix in DATA_SUFFIXES:
        if lower.endswith(suffix):
            return name[len(name) - len(suffix):]
    return None


def file_groups(folder: Path) -> list[FileGroup]:
    if not folder.exists():
        raise DataDirError(f"the data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataDirError(f"the data folder {folder} is not a folder")
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise DataDirError(f"cannot list the data folder {folder}: {exc}") from None
    data = [p for p in entries if suffix_of(p.name) is not None]
    if not data:
        found = f"; it holds {', '.join(p.name for p in entries[:10])}" if entries else "; it is empty"
        raise DataDirError(f"the data folder {folder} has no data files (.csv, .csv.gz, .tsv, .parquet){found}")
    by_key: dict[tuple[tuple[str, ...], str], FileGroup] = {}  # (text around the digits, suffix)
    for path in data:
        suffix = suffix_of(path.name) or ""
        stem = path.name[: len(path.name) - len(suffix)]
        parts = re.split(r"([0-9]+)", stem)
        literals, runs = tuple(parts[0::2]), parts[1::2]
        key = (literals, suffix)
        group = by_key.setdefault(key, FileGroup(files=[], suffix=suffix, literals=literals, runs=[]))
        group.files.append(path)
        group.runs.append(runs)
    groups = list(by_key.values())
    used: set[str] = set()
    for group in groups:
        _glob_for(folder, group)
        group.table = unique_name(_table_name(group), used)
    return groups


def _glob_for(folder: Path, group: FileGroup) -> None:
    """The group's glob: ``*`` where digits vary (or number a sample/part), checked to match only its files."""
    n_runs = len(group.literals) - 1
    group.wildcard = [
        len({runs[i] for runs in group.runs}) > 1 or bool(_SAMPLE_WORD.search(group.literals[i]))
        for i in range(n_runs)
    ]

    def build(precise: bool) -> str:
        out = []
        for i, literal in enumerate(group.literals):
            out.append(globlib.escape(literal))
            if i < n_runs:
                values = [runs[i] for runs in group.runs]
                if not group.wildcard[i]:
                    out.append(values[0])
                elif precise and len({len(v) for v in values}) == 1:
                    out.append("[0-9]" * len(values[0]))
                else:
                    out.append("[0-9]*" if precise else "*")
        return "".join(out) + globlib.escape(group.suffix)

    wanted = set(group.files)
    for precise in (False, True):
        pattern = build(precise)
        if {p for p in folder.glob(pattern) if p.is_file()} == wanted:
            group.pattern = pattern
            return
    if len(group.files) == 1:
        group.pattern = globlib.escape(group.files[0].name)
        group.wildcard = [False] * n_runs
        return
    raise DataDirError(
        f"the data folder {folder}: files {', '.join(p.name for p in group.files)} look like one table, but no "
        "file pattern matches exactly them; rename them apart"
    )


def _table_name(group: FileGroup) -> str:
    """snake_case of the file name without its wildcard digits, version prefixes (``DE1_0``), year spans
    (``2008_to_2010``) and sample/part numbers: ``DE1_0_2008_Beneficiary_Summary_File_Sample_1.csv.gz``
    gives ``beneficiary_summary_file``."""
    stem = "".join(
        literal + ("" if i >= len(group.wildcard) else "_" if group.wildcard[i] else group.runs[0][i])
        for i, literal in enumerate(group.literals)
    )
    ws = words(stem)
    digit = [w.isdigit() for w in ws]
    keep = []
    for i, w in enumerate(ws):
        nxt_digit = i + 1 < len(ws) and digit[i + 1]
        prev_digit = i > 0 and digit[i - 1]
        if digit[i]:
            continue
        if any(ch.isdigit() for ch in w) and nxt_digit:  # a version prefix such as DE1_0
            continue
        if w in _NOISE_WORDS and (nxt_digit or i == len(ws) - 1):
            continue
        if w in _CONNECTORS and prev_digit and nxt_digit:
            continue
        keep.append(w)
    return identifier("_".join(keep)) or identifier(stem) or "table"


def stage_group(con: duckdb.DuckDBPyConnection, folder: Path, group: FileGroup, index: int) -> Tbl:
    """Read every file of a group into one table of text values plus ``__file`` and ``__rn``."""
    order: list[str] = []
    natives: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    selects: list[str] = []
    bad_names: list[str] = []
    for i, path in enumerate(group.files):
        raw = quote(f"__infer_raw_{index}_{i}")
        _read_file(con, folder, path, raw)
        described = con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()
        types = {str(r[0]): str(r[1]) for r in described}
        bad_names += [f"{path.name}: {c!r}" for c in types if not is_valid_name(c) or c.startswith("__")]
        exprs = []
        for col, typ in types.items():
            if col not in natives:
                order.append(col)
                natives[col] = set()
            natives[col].add(typ)
            present[col] = present.get(col, 0) + 1
            value = f"nullif(trim({quote(col)}), '')" if typ in NATIVE_TEXTLIKE else f"CAST({quote(col)} AS VARCHAR)"
            exprs.append(f"{value} AS {quote(col)}")
        exprs += [f"'{sql_str(path.name)}' AS __file", "rowid + 1 AS __rn"]
        selects.append(f"SELECT {', '.join(exprs)} FROM {raw}")
    if bad_names:
        shown = "; ".join(bad_names[:10])
        raise DataDirError(
            f"the data folder {folder}: column names must be plain identifiers (letters, digits, _; not starting "
            f"with a digit or __) so a schema can name them; rename these columns: {shown}"
        )
    staged = quote(f"__infer_{index}")
    con.execute(f"CREATE TABLE {staged} AS {' UNION ALL BY NAME '.join(selects)}")
    for i in range(len(group.files)):
        con.execute(f"DROP TABLE {quote(f'__infer_raw_{index}_{i}')}")
    rows = int(con.execute(f"SELECT count(*) FROM {staged}").fetchall()[0][0])
    columns = {}
    for col in order:
        native = next(iter(natives[col])) if len(natives[col]) == 1 else "VARCHAR"
        columns[col] = Col(name=col, native=native, required=present[col] == len(group.files))
    return Tbl(name=group.table, group=group, sql=staged, rows=rows, columns=columns)


def _read_file(con: duckdb.DuckDBPyConnection, folder: Path, path: Path, raw: str) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataDirError(f"the data folder {folder}: cannot read {path.name}: {exc}") from None
    if size == 0:
        raise DataDirError(f"the data folder {folder}: {path.name} is empty (0 bytes); expected a header row")
    src = sql_str(str(path))
    if path.name.lower().endswith(".parquet"):
        reader, kind = f"read_parquet('{src}')", "Parquet"
    else:
        reader = f"read_csv('{src}', header = true, all_varchar = true, auto_detect = true, strict_mode = true)"
        kind = "gzipped CSV" if path.name.lower().endswith(".gz") else "CSV"
    try:
        con.execute(f"CREATE TABLE {raw} AS SELECT * FROM {reader}")
    except (duckdb.Error, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataDirError(f"the data folder {folder}: {path.name} cannot be read as {kind}: {first}") from None


