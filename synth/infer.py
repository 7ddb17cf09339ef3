"""Drafting a schema for a data folder: tables, column types, keys, the patient table and privacy tags.

``synthmed schemas infer DATA_DIR`` runs :func:`infer_schema_yaml`. The steps:

1. files whose names differ only in digits (``..._2008_...``, ``..._2009_...``) form one table, read by a
   glob pattern with ``*`` where the digits vary;
2. every file is read the way :func:`synth.load.read_dataset` reads it (CSV as text, Parquet native);
   column types are guessed from the first ``sample_rows`` rows of each file, then checked on every row
   and weakened where a row disagrees;
3. primary keys, foreign keys, the patient table and ``reference`` tables are found on all rows;
4. column names flag likely direct identifiers, quasi-identifiers and sensitive columns;
5. the draft is loaded with the loader itself; any problem left weakens the draft until the folder
   validates with none.

The result is a draft for a person to review, not a finished schema: it knows only the rows it saw.
"""
from __future__ import annotations

import glob as globlib
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from data_schemas.io import parse_schema, schema_to_yaml
from data_schemas.model import VOCABULARY_PATTERNS, Schema, is_valid_name
from data_schemas.rules import quote
from synth.errors import DataDirError
from synth.load import connect, read_dataset
from synth.validation import ValidationReport

DATA_SUFFIXES = (".csv.gz", ".tsv.gz", ".csv", ".tsv", ".parquet")
MAX_REPAIRS = 6

# Value shapes, as RE2 patterns matched against whole trimmed values.
_INT_RE = r"[+-]?[0-9]+"
_NUM_RE = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_DATE_RE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_TS_RE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? ?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
_UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_HEX_RE = r"[0-9A-Fa-f]{12,64}"
_CODEISH_RE = r"[A-Za-z0-9][A-Za-z0-9._/:+\-]{0,19}"
_CODE_PUNCT = set("._/:+-")

_NATIVE_TIMESTAMP = re.compile(r"TIMESTAMP(_S|_MS|_NS| WITH TIME ZONE)?")
_NATIVE_NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                   "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE"}
_NATIVE_TEXTLIKE = ("VARCHAR",)

# Column-name hints. Long hints match anywhere in the name; short ones must start a word of the name.
_CODE_HINTS_LONG = ("DGNS", "DIAG", "PRCDR", "HCPCS", "CODE", "LOINC", "SNOMED", "RXNORM")
_CODE_HINTS_SHORT = ("icd", "atc", "ndc", "kcd", "drg", "cpt", "dx")
_NOT_CODE_WORDS = {"type", "class", "status", "category", "kind", "flag", "ind", "yn", "desc", "description", "name",
                   "system", "text", "label", "date", "dt", "count", "cnt"}
_GEO_WORDS = {"state", "county", "zip", "zipcode", "postal", "postcode", "region", "city", "country", "fips",
              "sido", "sigungu"}
_CATEGORY_WORDS = {"sex", "gender", "race", "ethnicity", "ethnic", "marital", "status", "type", "class",
                   "category", "kind", "flag", "ind", "cd", "specialty", "speciality", "modality", "method",
                   "ownership", "severity", "yn"} | _GEO_WORDS
_NUMBER_PARTS = ("amt", "amount", "cost", "price", "payment", "paid", "cnt", "count", "qty", "quant", "day",
                 "mons", "month", "year", "dose", "value", "income", "expense", "coverage", "revenue", "weight",
                 "height", "score", "decile", "total", "balance", "outstanding", "segment", "seq", "line",
                 "stay", "util", "dispense", "covered", "share", "units")
_NUMBER_WORDS = {"age", "los", "num", "no", "n"}
_DATE_WORDS = {"dt", "date", "dob", "dod"}
_SEQ_WORDS = ("segment", "seq", "line", "no", "num", "number", "position", "pos", "order", "rank", "idx",
              "index", "version", "sub")
_ID_NOT = ("paid", "aid", "valid", "fluid", "acid", "void", "oid", "lipid", "liquid", "rapid", "solid",
           "hybrid", "humid", "avid", "vivid", "lucid", "rigid")
_NUMBERED_THINGS = {"patient", "member", "person", "bene", "beneficiary", "subject", "claim", "clm", "visit",
                    "encounter", "record", "case", "episode", "admission", "prescription", "order"}
_GENERIC_KEYS = {"id", "key", "uid", "uuid", "guid", "pk", "code", "index", "idx", "rowid", "row_id", "name",
                 "value", "no", "num", "number", "seq"}
_PATIENT_WORDS = r"patient|person|people|beneficiar|member|enrollee|subject|individual|insured|client|bene"
_PATIENT_TABLE = re.compile(rf"(^|_)({_PATIENT_WORDS})")
_PERSON_TABLE = re.compile(rf"(^|_)({_PATIENT_WORDS}|provider|physician|doctor|practitioner|staff|employee|nurse|"
                           r"caregiver|user|contact)")
_CLINICAL_TABLE = re.compile(r"condition|diagnos|problem|procedure|medication|prescription|drug|allerg|"
                             r"immuni|observation|lab|careplan")
_SAMPLE_WORD = re.compile(r"(sample|part|chunk|batch|shard|split|file)[_\-. ]?$", re.IGNORECASE)
_NOISE_WORDS = {"sample", "samples", "part", "chunk", "batch", "shard", "split"}
_CONNECTORS = {"to", "and", "through", "thru"}

PrivacyTag = Literal["direct_identifier", "quasi_identifier", "sensitive"]


@dataclass(frozen=True)
class Flag:
    """A privacy tag the draft set on a column (or a column group), and why."""

    table: str
    column: str
    tag: PrivacyTag
    reason: str


@dataclass(frozen=True)
class Draft:
    """An inferred schema with what it flagged and notes for the person reviewing it."""

    schema: Schema
    flags: tuple[Flag, ...]
    notes: tuple[str, ...]
    source: str

    def to_yaml(self) -> str:
        """The schema as YAML, under a comment header saying it is a draft and listing every flag."""
        return _header(self) + schema_to_yaml(self.schema)


def infer_schema(data_dir: str | Path, *, name: str | None = None, sample_rows: int = 100_000) -> Schema:
    """Draft a schema for a folder of CSV / CSV.GZ / Parquet files; the draft validates that folder."""
    return draft_schema(data_dir, name=name, sample_rows=sample_rows).schema


def infer_schema_yaml(data_dir: str | Path, name: str | None = None, *, sample_rows: int = 100_000) -> str:
    """The drafted schema as YAML with a header comment: it is a draft, what was flagged and why."""
    return draft_schema(data_dir, name=name, sample_rows=sample_rows).to_yaml()


def draft_schema(data_dir: str | Path, *, name: str | None = None, sample_rows: int = 100_000) -> Draft:
    """Draft a schema for ``data_dir`` with its privacy flags and review notes (see the module docstring)."""
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise ValueError(
            f"The 'sample_rows' parameter of infer_schema must be an int >= 1; got {sample_rows!r} instead."
        )
    folder = Path(data_dir)
    groups = _file_groups(folder)
    con = connect()
    con.execute("SET enable_progress_bar = false")
    try:
        tables = [_stage_group(con, folder, g, i) for i, g in enumerate(groups)]
        for t in tables:
            _infer_types(con, t, sample_rows)
        for t in tables:
            _find_primary_key(con, t, tables)
        structure = _Structure(tables)
        structure.find_foreign_keys(con)
        structure.choose_patient()
        structure.settle_references()
        for t in tables:
            _find_groups(con, t)
        flags = _flag_privacy(structure)
        draft_name = name or _slug(folder.resolve().name) or "inferred"
        schema = _verified(con, folder, structure, draft_name)
        flags = [f for f in flags if _still_flagged(schema, f)]
        notes = structure.notes
    finally:
        con.close()
    return Draft(schema=schema, flags=tuple(flags), notes=tuple(notes), source=str(folder))


# --------------------------------------------------------------------------------------------------
# Files and tables


@dataclass
class _FileGroup:
    """Files that differ only in digit runs: one table."""

    files: list[Path]
    suffix: str
    literals: tuple[str, ...]
    runs: list[list[str]]  # runs[i] = digit runs of files[i]
    pattern: str = ""
    table: str = ""
    wildcard: list[bool] = field(default_factory=list)


def _suffix(name: str) -> str | None:
    lower = name.lower()
    for suffix in DATA_SUFFIXES:
        if lower.endswith(suffix):
            return name[len(name) - len(suffix):]
    return None


def _file_groups(folder: Path) -> list[_FileGroup]:
    if not folder.exists():
        raise DataDirError(f"the data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataDirError(f"the data folder {folder} is not a folder")
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise DataDirError(f"cannot list the data folder {folder}: {exc}") from None
    data = [p for p in entries if _suffix(p.name) is not None]
    if not data:
        found = f"; it holds {', '.join(p.name for p in entries[:10])}" if entries else "; it is empty"
        raise DataDirError(f"the data folder {folder} has no data files (.csv, .csv.gz, .tsv, .parquet){found}")
    by_key: dict[tuple[tuple[str, ...], str], _FileGroup] = {}  # (text around the digits, suffix)
    for path in data:
        suffix = _suffix(path.name) or ""
        stem = path.name[: len(path.name) - len(suffix)]
        parts = re.split(r"([0-9]+)", stem)
        literals, runs = tuple(parts[0::2]), parts[1::2]
        key = (literals, suffix)
        group = by_key.setdefault(key, _FileGroup(files=[], suffix=suffix, literals=literals, runs=[]))
        group.files.append(path)
        group.runs.append(runs)
    groups = list(by_key.values())
    used: set[str] = set()
    for group in groups:
        _glob_for(folder, group)
        group.table = _unique(_table_name(group), used)
    return groups


def _glob_for(folder: Path, group: _FileGroup) -> None:
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


def _words(text: str) -> list[str]:
    """Lower-case words of a name: split at non-alphanumerics and camelCase boundaries."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def _table_name(group: _FileGroup) -> str:
    """snake_case of the file name without its wildcard digits, version prefixes (``DE1_0``), year spans
    (``2008_to_2010``) and sample/part numbers: ``DE1_0_2008_Beneficiary_Summary_File_Sample_1.csv.gz``
    gives ``beneficiary_summary_file``."""
    stem = "".join(
        literal + ("" if i >= len(group.wildcard) else "_" if group.wildcard[i] else group.runs[0][i])
        for i, literal in enumerate(group.literals)
    )
    words = _words(stem)
    digit = [w.isdigit() for w in words]
    keep = []
    for i, w in enumerate(words):
        nxt_digit = i + 1 < len(words) and digit[i + 1]
        prev_digit = i > 0 and digit[i - 1]
        if digit[i]:
            continue
        if any(ch.isdigit() for ch in w) and nxt_digit:  # a version prefix such as DE1_0
            continue
        if w in _NOISE_WORDS and (nxt_digit or i == len(words) - 1):
            continue
        if w in _CONNECTORS and prev_digit and nxt_digit:
            continue
        keep.append(w)
    return _identifier("_".join(keep)) or _identifier(stem) or "table"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug


def _identifier(text: str) -> str:
    slug = _slug(text)
    return f"t_{slug}" if slug and slug[0].isdigit() else slug


def _unique(name: str, used: set[str]) -> str:
    name = name or "table"
    candidate, i = name, 2
    while candidate in used:
        candidate, i = f"{name}_{i}", i + 1
    used.add(candidate)
    return candidate


# --------------------------------------------------------------------------------------------------
# Staging: every file read as the loader reads it, values kept as the text the loader would see


@dataclass
class _Stats:
    nn: int = 0
    nd: int = 0
    minlen: int = 0
    maxlen: int = 0
    n_int: int = 0
    n_num: int = 0
    n_lead0: int = 0
    n_date: int = 0
    n_ts: int = 0
    n_ymd: int = 0
    n_uuid: int = 0
    n_hex: int = 0
    n_af: int = 0
    n_space: int = 0
    n_codeish: int = 0


@dataclass
class _Col:
    name: str
    native: str = "VARCHAR"
    type: str = "categorical"
    integer: bool = False
    format: str | None = None
    unit: Literal["date", "timestamp"] = "timestamp"
    vocabulary: str | None = None
    pattern: str | None = None
    required: bool = True
    nullable: bool = True
    privacy: PrivacyTag | None = None
    references: str | None = None
    from_filename: str | None = None
    description: str = ""
    group: str | None = None
    stats: _Stats = field(default_factory=_Stats)

    @property
    def text_source(self) -> bool:
        return self.native in _NATIVE_TEXTLIKE


@dataclass
class _Group:
    name: str
    prefix: str
    count: int
    vocabulary: str | None
    pattern: str | None
    required: bool
    privacy: PrivacyTag | None = None


@dataclass
class _Tbl:
    name: str
    group: _FileGroup
    sql: str
    rows: int
    columns: dict[str, _Col]
    primary_key: list[str] = field(default_factory=list)
    reference: bool = False
    order_by: str | None = None
    groups: dict[str, _Group] = field(default_factory=dict)

    def typed(self, col: str) -> str:
        """SQL for a column's value as the loader types it (text for id/categorical/code/text)."""
        c = self.columns[col]
        q = quote(col)
        if c.from_filename:
            q = f"nullif(regexp_extract(__file, '{_sql_str(c.from_filename)}', 1), '')"
        if c.type == "numerical" and c.integer:
            return f"try_cast({q} AS BIGINT)"
        return q

    @property
    def key_column(self) -> str | None:
        """The column other tables refer to: the single key, or the id column of a composite key."""
        if len(self.primary_key) == 1:
            return self.primary_key[0]
        ids = [k for k in self.primary_key if self.columns[k].type == "id"]
        return ids[0] if len(ids) == 1 else None


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _stage_group(con: duckdb.DuckDBPyConnection, folder: Path, group: _FileGroup, index: int) -> _Tbl:
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
            value = f"nullif(trim({quote(col)}), '')" if typ in _NATIVE_TEXTLIKE else f"CAST({quote(col)} AS VARCHAR)"
            exprs.append(f"{value} AS {quote(col)}")
        exprs += [f"'{_sql_str(path.name)}' AS __file", "rowid + 1 AS __rn"]
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
        columns[col] = _Col(name=col, native=native, required=present[col] == len(group.files))
    return _Tbl(name=group.table, group=group, sql=staged, rows=rows, columns=columns)


def _read_file(con: duckdb.DuckDBPyConnection, folder: Path, path: Path, raw: str) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataDirError(f"the data folder {folder}: cannot read {path.name}: {exc}") from None
    if size == 0:
        raise DataDirError(f"the data folder {folder}: {path.name} is empty (0 bytes); expected a header row")
    src = _sql_str(str(path))
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


# --------------------------------------------------------------------------------------------------
# Column types


def _shaped(shape: str, parses: str) -> str:
    """SQL true where a value has the shape and parses; the costly parse runs only on the right shapes."""
    return f"CASE WHEN {shape} THEN {parses} ELSE false END"


def _stat_sql(v: str) -> list[str]:
    """Aggregates giving the _Stats of text column ``v``, in field order.

    Length guards in CASE keep the regular expressions and parses off values that cannot match.
    """

    def n(condition: str) -> str:
        return f"count(*) FILTER (WHERE {condition})"

    def shape(regex: str) -> str:
        return f"regexp_full_match({v}, '{regex}')"

    length = f"length({v})"
    as_timestamp = f"try_cast({v} AS TIMESTAMP) IS NOT NULL"
    return [
        f"count({v})",
        f"count(DISTINCT {v})",
        f"coalesce(min({length}), 0)",
        f"coalesce(max({length}), 0)",
        n(_shaped(f"{length} <= 20", shape(_INT_RE))),
        n(_shaped(f"{length} <= 40 AND {shape(_NUM_RE)}", f"try_cast({v} AS DOUBLE) IS NOT NULL")),
        n(f"{length} > 1 AND starts_with({v}, '0')"),
        n(_shaped(f"{length} BETWEEN 8 AND 10 AND {shape(_DATE_RE)}", as_timestamp)),
        n(_shaped(f"{length} BETWEEN 12 AND 40 AND {shape(_TS_RE)}", as_timestamp)),
        n(_shaped(f"{length} = 8 AND {shape('(19|20)[0-9]{6}|21000101')}", f"try_strptime({v}, '%Y%m%d') IS NOT NULL")),
        n(_shaped(f"{length} = 36", shape(_UUID_RE))),
        n(_shaped(f"{length} BETWEEN 12 AND 64", shape(_HEX_RE))),
        n(_shaped(f"{length} BETWEEN 12 AND 64", f"regexp_matches({v}, '[A-Fa-f]')")),
        n(f"contains({v}, ' ') OR contains({v}, chr(9)) OR contains({v}, chr(10))"),
        n(_shaped(f"{length} <= 20", shape(_CODEISH_RE))),
    ]


def _infer_types(con: duckdb.DuckDBPyConnection, t: _Tbl, sample_rows: int) -> None:
    """Guess each column's type from a sample of every file, then check it on all rows."""
    cols = list(t.columns.values())
    if cols:
        # one long (column, value) relation grouped by column: far faster than one wide aggregate
        on = ", ".join(quote(c.name) for c in cols)
        rows = con.execute(
            f"SELECT __col, {', '.join(_stat_sql('__v'))} FROM (UNPIVOT (SELECT {on} FROM {t.sql} "
            f"WHERE __rn <= {sample_rows}) ON {on} INTO NAME __col VALUE __v) GROUP BY __col"
        ).fetchall()
        stats = {str(r[0]): _Stats(*(int(x) for x in r[1:])) for r in rows}
        for c in cols:
            c.stats = stats.get(c.name, _Stats())  # a column with no value has no row here
            _decide_type(c)
    _check_types_on_all_rows(con, t)
    codes = [c for c in cols if c.type == "code"]
    found = _code_constraints(
        con,
        {c.name: f"SELECT {quote(c.name)} AS v FROM {t.sql}" for c in codes},
        {c.name: _vocab_hints(c.name) for c in codes},
    )
    for c in codes:
        c.vocabulary, c.pattern = found[c.name]


def _decide_type(c: _Col) -> None:
    """Pick a column's type from its name and the shapes of its sampled values (checked later on all rows).

    Order: native Parquet types; ids (uuid/hex values, id-like names); ISO dates and timestamps; codes
    (code-like names and values); YYYYMMDD dates; numbers (categorical when few or zero-padded codes);
    free text; categorical.
    """
    s, words, flat = c.stats, _words(c.name), c.name.lower()
    native = c.native.upper()
    if native == "BOOLEAN":
        c.type = "boolean"
        return
    if native == "DATE":
        c.type, c.unit = "datetime", "date"
        return
    if _NATIVE_TIMESTAMP.fullmatch(native):
        c.type, c.unit = "datetime", "timestamp"
        return
    numeric_native = _is_numeric_native(native)
    if not numeric_native and not c.text_source and native != "UUID":
        c.type = "text"  # lists, structs, blobs: kept as their text
        return
    if s.nn == 0:
        c.type = "code" if _code_hint(c.name) else "categorical"
        return
    all_ = s.nn
    decimals = s.n_num == all_ and s.n_int < all_
    strength = _id_strength(c.name)
    if s.n_space == 0 and s.maxlen <= 64 and not decimals:
        if s.n_uuid == all_ or (s.n_hex == all_ and s.n_af > 0 and s.nd * 2 >= all_):
            c.type = "id"
            return
        if strength == "strong" or (strength == "weak" and (s.nd >= max(20, all_ // 10) or s.nd == all_)):
            c.type = "id"
            return
        if strength == "weak":  # named like an id but with few values: a code of a small set
            c.type = "categorical"
            return
    if not numeric_native and s.n_date == all_:
        c.type, c.unit = "datetime", "date"
        return
    if not numeric_native and s.n_ts + s.n_date == all_ and s.n_ts > 0:
        c.type, c.unit = "datetime", "timestamp"
        return
    geo = bool(set(words) & _GEO_WORDS) or "zip" in flat or "postcode" in flat
    code_hint = _code_hint(c.name) and not geo
    if code_hint and s.n_codeish == all_:
        c.type = "code"
        return
    number_hint = _number_hint(words, flat)
    date_hint = bool(set(words) & _DATE_WORDS) or flat.endswith(("date", "_dt"))
    if s.n_ymd == all_ and s.maxlen == 8 and (date_hint or not (number_hint or code_hint)):
        c.type, c.format, c.unit = "datetime", "%Y%m%d", "date"
        return
    category_hint = bool(set(words) & _CATEGORY_WORDS) and not number_hint
    if s.n_num == all_:
        if s.n_int == all_:
            fixed_width_padded = s.n_lead0 > 0 and s.minlen == s.maxlen and s.maxlen >= 3
            if category_hint or fixed_width_padded or (s.nd <= 2 and not number_hint):
                c.type = "categorical"
            else:
                c.type, c.integer = "numerical", True
            return
        c.type = "numerical"
        return
    if s.maxlen > 200 or (s.n_space > 0 and s.nd >= 10 and s.nd * 2 > all_):
        c.type = "text"
        return
    c.type = "categorical"


def _is_numeric_native(native: str) -> bool:
    return native in _NATIVE_NUMERIC or bool(re.fullmatch(r"DECIMAL\(\d+,\s*\d+\)", native))


def _id_strength(name: str) -> str | None:
    """How surely a name says "identifier": strong (``_id``, ``Id``, ``KEY``), weak (``PATIENTID``) or not."""
    words = _words(re.sub(r"[0-9]+$", "", name))
    if not words:
        return None
    last = words[-1]
    if last in ("id", "key", "uuid", "guid", "uid", "pk", "mrn"):
        return "strong"
    if last in ("no", "num", "nbr", "number") and len(words) > 1 and words[-2] in _NUMBERED_THINGS:
        return "strong"  # patient_no, claim_number, member_num
    if len(last) > 2 and last.endswith("id") and not last.endswith(_ID_NOT):
        return "weak"
    return None


def _code_hint(name: str) -> bool:
    words = _words(name)
    if words and words[-1] in _NOT_CODE_WORDS:  # dx_type, code_system, code_description
        return False
    upper = name.upper()
    if any(h in upper for h in _CODE_HINTS_LONG):
        return True
    return any(re.fullmatch(rf"{h}[0-9]*", w) for w in _words(name) for h in _CODE_HINTS_SHORT)


def _number_hint(words: list[str], flat: str) -> bool:
    if set(words) & _NUMBER_WORDS:
        return True
    return any(p in flat for p in _NUMBER_PARTS)


def _vocab_hints(name: str) -> tuple[list[str], bool]:
    """Vocabularies the column name points at, and whether the hint is specific (ICD9 rather than DIAG)."""
    words = _words(name)
    upper = name.upper()
    proc = "PRCDR" in upper or "PROC" in upper or "PCS" in upper or "SRGCL" in upper
    specific: list[str] = []
    for w in words:
        if re.fullmatch(r"icd9(cm)?", w):
            specific.append("ICD9PCS" if proc else "ICD9CM")
        elif re.fullmatch(r"icd10(cm)?", w) and not proc:
            specific.append("ICD10")
        elif w in ("kcd", "kcd7", "kcd8"):
            specific.append("KCD")
        elif w == "atc":
            specific.append("ATC")
        elif w == "ndc":
            specific.append("NDC")
        elif w == "loinc":
            specific.append("LOINC")
        elif w in ("snomed", "sct", "snomedct"):
            specific.append("SNOMED")
        elif w in ("rxnorm", "rxcui"):
            specific.append("RXNORM")
        elif w == "drg":
            specific.append("DRG")
        elif w in ("hcpcs", "cpt"):
            specific.append("HCPCS")
    for key in ("LOINC", "SNOMED", "RXNORM", "HCPCS"):
        if key in upper and key not in specific:
            specific.append(key)
    if specific:
        return specific, True
    if "icd" in words or ((("DIAG" in upper or "DGNS" in upper) or "dx" in words) and not proc):
        return ["ICD10", "ICD9CM"], False
    return [], False


def _code_constraints(
    con: duckdb.DuckDBPyConnection, sources: dict[str, str], hints: dict[str, tuple[list[str], bool]]
) -> dict[str, tuple[str | None, str | None]]:
    """For each code column (or group of columns), on all rows: a vocabulary its values fit and its name
    points at, else a pattern of the values' shape (their characters and lengths), else nothing.

    ``sources`` maps a label to a SELECT giving its values as column ``v``.
    """
    if not sources:
        return {}
    vocabs = sorted({x for label in sources for x in hints[label][0]})
    aggs = [
        "count(v)",
        "coalesce(min(length(v)), 0)",
        "coalesce(max(length(v)), 0)",
        "count(*) FILTER (WHERE regexp_matches(v, '[0-9]'))",
        "count(*) FILTER (WHERE regexp_matches(v, '[A-Z]'))",
        "count(*) FILTER (WHERE regexp_matches(v, '[a-z]'))",
        "count(*) FILTER (WHERE regexp_matches(v, '\\s'))",
        "coalesce(string_agg(DISTINCT regexp_replace(v, '[A-Za-z0-9]', '', 'g'), ''), '')",
    ] + [f"count(*) FILTER (WHERE regexp_full_match(v, '{_sql_str(VOCABULARY_PATTERNS[x])}'))" for x in vocabs]
    labelled = " UNION ALL ".join(f"SELECT '{_sql_str(label)}' AS __label, v FROM ({sql})" for label, sql in sources.items())
    rows = con.execute(
        f"SELECT __label, {', '.join(aggs)} FROM ({labelled}) WHERE v IS NOT NULL GROUP BY __label"
    ).fetchall()
    found = {str(r[0]): r[1:] for r in rows}
    out: dict[str, tuple[str | None, str | None]] = {}
    for label in sources:
        row = found.get(label, (0, 0, 0, 0, 0, 0, 0, "") + (0,) * len(vocabs))
        nn, minlen, maxlen, n_digit, n_upper, n_lower, n_space, punct = row[:8]
        matches = dict(zip(vocabs, row[8:]))
        wanted, specific = hints[label]
        vocab = next((x for x in wanted if matches[x] == nn and (nn > 0 or specific)), None)
        if vocab is not None:
            out[label] = (vocab, None)
        elif nn == 0 or n_space or not set(punct) <= _CODE_PUNCT:
            out[label] = (None, None)
        else:
            classes = ("0-9" if n_digit else "") + ("A-Z" if n_upper else "") + ("a-z" if n_lower else "")
            classes += "".join("\\" + ch if ch in "-\\]^" else ch for ch in sorted(set(punct)))
            span = f"{{{minlen}}}" if minlen == maxlen else f"{{{minlen},{maxlen}}}"
            out[label] = (None, f"^[{classes}]{span}$")
    return out


def _check_types_on_all_rows(con: duckdb.DuckDBPyConnection, t: _Tbl) -> None:
    """Count, on every row, the values that would not load as the guessed type; weaken those types."""
    checks: list[tuple[_Col, str]] = []
    for c in t.columns.values():
        q = quote(c.name)
        if c.type == "numerical" and c.text_source:
            checks.append((c, _shaped(f"regexp_full_match({q}, '{_NUM_RE}')", f"try_cast({q} AS DOUBLE) IS NOT NULL")))
            if c.integer:
                checks.append((c, _shaped(f"regexp_full_match({q}, '{_INT_RE}')", f"try_cast({q} AS BIGINT) IS NOT NULL")))
        elif c.type == "numerical" and c.integer and not c.native.upper().startswith(("FLOAT", "DOUBLE", "DECIMAL")):
            checks.append((c, f"try_cast({q} AS BIGINT) IS NOT NULL"))
        elif c.type == "datetime" and c.format:
            checks.append((c, _shaped(f"regexp_full_match({q}, '[0-9]{{8}}')", f"try_strptime({q}, '{c.format}') IS NOT NULL")))
        elif c.type == "datetime" and c.text_source:
            checks.append((c, f"try_cast({q} AS TIMESTAMP) IS NOT NULL"))
            if c.unit == "date":
                checks.append((c, f"regexp_full_match({q}, '{_DATE_RE}')"))
    if not checks:
        return
    sql = ", ".join(f"count(*) FILTER (WHERE {quote(c.name)} IS NOT NULL AND NOT coalesce({ok}, false))" for c, ok in checks)
    counts = con.execute(f"SELECT {sql} FROM {t.sql}").fetchall()[0]
    failed: dict[str, list[int]] = {}
    for (c, _), n in zip(checks, counts):
        failed.setdefault(c.name, []).append(int(n))
    for c in t.columns.values():
        bad = failed.get(c.name)
        if not bad or not any(bad):
            continue
        if c.type == "numerical" and c.integer and len(bad) == 2 and bad[0] == 0:
            c.integer = False
        elif c.type == "datetime" and c.unit == "date" and not c.format and len(bad) == 2 and bad[0] == 0:
            c.unit = "timestamp"
        else:
            _weaken_to_text(c)


def _weaken_to_text(c: _Col) -> None:
    s = c.stats
    c.type = "text" if s.maxlen > 200 or s.n_space > 0 else "categorical"
    c.integer, c.format, c.unit, c.vocabulary, c.pattern = False, None, "timestamp", None, None


# --------------------------------------------------------------------------------------------------
# Keys


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("oses"):
        return word[:-2] + "is"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _flat(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _stem(name: str) -> str:
    flat = _flat(re.sub(r"[0-9]+$", "", name))
    for suffix in ("uuid", "guid", "key", "id"):
        if flat.endswith(suffix) and len(flat) > len(suffix):
            return flat[: -len(suffix)]
    return flat


def _names_table(col: str, table: str) -> bool:
    """Does a column name point at a table (``PATIENT``/``patient_id`` at ``patients``)?"""
    stem, tflat = _stem(col), _flat(table)
    sing = _singular(tflat)
    if len(sing) < 3:
        return False
    return stem in (sing, tflat) or stem.endswith(sing)


def _find_primary_key(con: duckdb.DuckDBPyConnection, t: _Tbl, tables: list[_Tbl]) -> None:
    """A unique, non-null, id-like column (or pair) on all rows; a year from the file name when needed."""
    if t.rows == 0:
        return
    others = [u.name for u in tables if u is not t]
    ids = [c for c in t.columns.values() if c.type == "id"]
    singles = [c for c in ids if not any(_names_table(c.name, o) for o in others) or _names_table(c.name, t.name)]
    stats = _distinct_counts(con, t, [[c.name] for c in singles])
    unique = [c for c, (nd, nn) in zip(singles, stats) if nd == t.rows and nn == t.rows]
    if unique:
        best = max(unique, key=lambda c: (_key_score(c.name, t.name), -list(t.columns).index(c.name)))
        t.primary_key = [best.name]
        t.columns[best.name].nullable = False
        return
    if _try_year_key(con, t, ids):
        return
    # pairs: an id with a sequence number (CLM_ID, SEGMENT) first, then two ids of which at most one
    # names another table
    order = list(t.columns)
    seqs = [c for c in t.columns.values() if c.type == "numerical" and c.integer and
            any(w.startswith(_SEQ_WORDS) for w in _words(c.name))]
    pairs = [[a.name, b.name] for a in ids for b in seqs]
    pairs += [
        [a.name, b.name] for a in ids for b in ids
        if order.index(b.name) > order.index(a.name)
        and sum(any(_names_table(x.name, o) for o in others) for x in (a, b)) < 2
    ]
    pairs = pairs[:60]
    for pair, (nd, nn) in zip(pairs, _distinct_counts(con, t, pairs)):
        if nd == t.rows and nn == t.rows:
            t.primary_key = pair
            for k in pair:
                t.columns[k].nullable = False
            return


def _key_score(col: str, table: str) -> int:
    flat = _flat(col)
    if flat == "id":
        return 100
    if _names_table(col, table):
        return 90
    strength = _id_strength(col)
    return 80 if strength == "strong" else 70 if strength == "weak" else 50


def _distinct_counts(con: duckdb.DuckDBPyConnection, t: _Tbl, keys: list[list[str]]) -> list[tuple[int, int]]:
    """(distinct non-null key values, rows with no null in the key) for each key, on all rows."""
    if not keys:
        return []
    aggs = []
    for key in keys:
        exprs = [t.typed(k) for k in key]
        value = exprs[0] if len(exprs) == 1 else f"row({', '.join(exprs)})"
        notnull = " AND ".join(f"{e} IS NOT NULL" for e in exprs)
        aggs += [f"count(DISTINCT {value}) FILTER (WHERE {notnull})", f"count(*) FILTER (WHERE {notnull})"]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {t.sql}").fetchall()[0]
    return [(int(row[2 * i]), int(row[2 * i + 1])) for i in range(len(keys))]


def _try_year_key(con: duckdb.DuckDBPyConnection, t: _Tbl, ids: list[_Col]) -> bool:
    """Files per year (``..._2008_...``) repeat the key: add the year from the file name to the key."""
    g = t.group
    if len(g.files) < 2:
        return False
    year_run = next(
        (i for i, wild in enumerate(g.wildcard)
         if wild and all(len(r[i]) == 4 and 1900 <= int(r[i]) <= 2100 for r in g.runs)
         and len({r[i] for r in g.runs}) > 1),
        None,
    )
    if year_run is None or not ids:
        return False
    upper = sum(c.name.isupper() for c in t.columns.values()) * 2 >= len(t.columns)
    name = "YEAR" if upper else "year"
    if name.lower() in {c.lower() for c in t.columns}:
        name = "FILE_YEAR" if upper else "file_year"
    regex = _year_regex(g, year_run)
    t.columns[name] = _Col(
        name=name, type="numerical", integer=True, from_filename=regex, nullable=False,
        description="Year taken from the file name (the files hold one year each)",
    )
    best = sorted(ids, key=lambda c: (-_key_score(c.name, t.name), list(t.columns).index(c.name)))
    stats = _distinct_counts(con, t, [[c.name, name] for c in best])
    for c, (nd, nn) in zip(best, stats):
        if nd == t.rows and nn == t.rows:
            t.primary_key = [c.name, name]
            c.nullable = False
            return True
    del t.columns[name]
    return False


def _year_regex(g: _FileGroup, year_run: int) -> str:
    """A regex capturing the year: the constant text around it, back to the previous wildcard."""
    parts = [_re_escape(g.literals[year_run])]
    i = year_run - 1
    while i >= 0 and not g.wildcard[i]:
        parts[:0] = [_re_escape(g.literals[i]), g.runs[0][i]]
        i -= 1
    start = "^" if i < 0 else ""
    return f"{start}{''.join(parts)}([0-9]{{4}}){_re_escape(g.literals[year_run + 1])}"


def _re_escape(text: str) -> str:
    """Escape regex metacharacters only (Python's re.escape also escapes spaces, which RE2 may refuse)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


# --------------------------------------------------------------------------------------------------
# Foreign keys, the patient table, reference tables


class _Structure:
    """The tables with their links: foreign keys, the patient table, which tables are references."""

    def __init__(self, tables: list[_Tbl]) -> None:
        self.tables = {t.name: t for t in tables}
        self.patient: tuple[str, str] | None = None
        self.notes: list[str] = []

    def find_foreign_keys(self, con: duckdb.DuckDBPyConnection) -> None:
        """A column refers to another table's key when its name points there and, on all rows, every
        non-null value of it is a value of that key."""
        for t in self.tables.values():
            for c in t.columns.values():
                keyish = c.type in ("id", "categorical", "code") or (
                    c.type == "numerical" and c.integer and _id_strength(c.name) is not None
                )
                if c.from_filename or not keyish:
                    continue
                target = self._target_for(con, t, c)
                if target is not None:
                    u, k = target
                    c.references = f"{u.name}.{k}"
                    c.type, c.integer, c.vocabulary, c.pattern = "id", False, None, None

    def _target_for(self, con: duckdb.DuckDBPyConnection, t: _Tbl, c: _Col) -> tuple[_Tbl, str] | None:
        candidates: list[tuple[float, _Tbl, str]] = []
        for u in self.tables.values():
            key = u.key_column
            if u is t or key is None or u.columns[key].type != "id":
                continue
            if any(x.references == f"{t.name}.{c.name}" for x in u.columns.values()):
                continue  # the other direction is already a foreign key
            same = c.name.lower() == key.lower() and key.lower() not in _GENERIC_KEYS
            named = _names_table(c.name, u.name)
            if same or named:
                candidates.append((2 * same + named + len(_singular(_flat(u.name))) / 1000, u, key))
        for _, u, key in sorted(candidates, key=lambda x: -x[0]):
            q, k = quote(c.name), u.typed(key)  # a foreign key becomes an id: compared as text
            n_values, n_orphans = con.execute(
                f"SELECT count({q}), count(*) FILTER (WHERE {q} IS NOT NULL AND {q} NOT IN "
                f"(SELECT {k} FROM {u.sql} WHERE {k} IS NOT NULL)) FROM {t.sql}"
            ).fetchall()[0]
            if n_values and not n_orphans:
                return u, key
        return None

    def choose_patient(self) -> None:
        """The root: the table most other tables lead to through foreign keys (directly or through other
        tables); a patient-like name (patients, person, beneficiary...) counts as 1.5 more tables."""
        children: dict[str, set[str]] = {name: set() for name in self.tables}
        for t in self.tables.values():
            for c in t.columns.values():
                if c.references and c.references.split(".")[0] != t.name:
                    children[c.references.split(".")[0]].add(t.name)

        def below(name: str) -> set[str]:
            seen: set[str] = set()
            frontier = [name]
            while frontier:
                for child in children[frontier.pop()]:
                    if child not in seen and child != name:
                        seen.add(child)
                        frontier.append(child)
            return seen

        reach = {name: len(below(name)) for name in self.tables}
        order = list(self.tables)

        def score(u: _Tbl) -> tuple[float, bool, int]:
            hinted = bool(_PATIENT_TABLE.search(u.name))
            return (reach[u.name] + 1.5 * hinted, u.key_column is not None, -order.index(u.name))

        best = max(self.tables.values(), key=score)
        column = best.key_column
        reason = f"{reach[best.name]} other table(s) lead to its key through foreign keys"
        if column is None:
            ids = sorted(
                (c for c in best.columns.values() if c.type == "id"),
                key=lambda c: -_key_score(c.name, best.name),
            )
            column = ids[0].name if ids else next(iter(best.columns), None)
            reason = "no table has a key other tables refer to; chosen by its name and columns"
            self.notes.append(f"the patient table {best.name} has no unique key; check the patient column {column}")
        if column is None:
            raise DataDirError(f"the data folder {best.group.files[0].parent}: {best.group.files[0].name} has no columns")
        self.patient = (best.name, column)
        self.notes.insert(0, f"patient table: {best.name}, key {column} ({reason})")

    def parent_of(self, name: str) -> tuple[_Col, str] | None:
        for c in self.tables[name].columns.values():
            if c.references:
                parent = c.references.split(".")[0]
                if parent != name and not self.tables[parent].reference:
                    return c, parent
        return None

    def path_ok(self, name: str) -> bool:
        assert self.patient is not None
        seen, current = {name}, name
        while current != self.patient[0]:
            link = self.parent_of(current)
            if link is None or link[1] in seen:
                return False
            seen.add(link[1])
            current = link[1]
        return True

    def settle_references(self) -> None:
        """Tables with no chain of foreign keys to the patient table become reference tables."""
        assert self.patient is not None
        linked = {self.patient[0]}
        changed = True
        while changed:
            changed = False
            for t in self.tables.values():
                if t.name not in linked and any(
                    c.references and c.references.split(".")[0] in linked for c in t.columns.values()
                ):
                    linked.add(t.name)
                    changed = True
        for t in self.tables.values():
            t.reference = t.name not in linked
        for _ in range(sum(len(t.columns) for t in self.tables.values()) + 1):
            broken = [n for n in self.tables if not self.tables[n].reference and not self.path_ok(n)]
            if not broken:
                break
            link = self.parent_of(broken[0])
            if link is None:
                self.tables[broken[0]].reference = True
            else:  # the first link leads round in a circle: drop it so the next one is used
                col = link[0]
                self.notes.append(f"dropped the foreign key {broken[0]}.{col.name} -> {col.references}: it made a cycle")
                col.references = None
        refs = sorted(t.name for t in self.tables.values() if t.reference)
        if refs:
            self.notes.append(
                "reference tables (no chain of foreign keys to the patient table, not split by patient): "
                + ", ".join(refs)
            )
        for t in self.tables.values():
            if t.name != self.patient[0] and not t.reference:
                t.order_by = next((c.name for c in t.columns.values() if c.type == "datetime"), None)


# --------------------------------------------------------------------------------------------------
# Column groups (``ICD9_DGNS_CD_1..10``)


def _find_groups(con: duckdb.DuckDBPyConnection, t: _Tbl) -> None:
    """Code columns ``PREFIX1..PREFIXn`` become a column group, with one vocabulary or pattern for all."""
    by_prefix: dict[str, dict[int, _Col]] = {}
    for c in t.columns.values():
        m = re.fullmatch(r"(.*?[A-Za-z_])([0-9]+)", c.name)
        if m and c.type == "code" and not c.references:
            by_prefix.setdefault(m.group(1), {})[int(m.group(2))] = c
    used: set[str] = set()
    for prefix, members in by_prefix.items():
        n = len(members)
        if n < 2 or set(members) != set(range(1, n + 1)):
            continue
        cols = [members[i] for i in range(1, n + 1)]
        if any(c.name != f"{prefix}{i}" for i, c in enumerate(cols, start=1)):
            continue  # zero-padded numbers (_01) cannot be named by a group
        if len({c.required for c in cols}) != 1:
            continue
        union = " UNION ALL ".join(f"SELECT {quote(c.name)} AS v FROM {t.sql}" for c in cols)
        vocab, pattern = _code_constraints(con, {prefix: union}, {prefix: _vocab_hints(prefix)})[prefix]
        name = _unique(_identifier(prefix) or "codes", used)
        t.groups[name] = _Group(name=name, prefix=prefix, count=n, vocabulary=vocab, pattern=pattern,
                                required=cols[0].required)
        for c in cols:
            c.group = name
            c.vocabulary, c.pattern = vocab, pattern


# --------------------------------------------------------------------------------------------------
# Privacy


# (pattern on the snake_case column name, reason, which column types it applies to)
_ANY = ("id", "categorical", "code", "text", "numerical", "boolean")
_STRINGS = ("id", "categorical", "text")
_DIRECT_ANYWHERE: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    (re.compile(r"(^|_)(ssn|social_?security(_?(number|no|num))?)(_|$)"), "social security number", _ANY),
    (re.compile(r"(^|_)(rrn|jumin|resident_?reg[a-z]*(_?(number|no|num))?)(_|$)"), "resident registration number", _ANY),
    (re.compile(r"(^|_)passport"), "passport number", _ANY),
    (re.compile(r"(^|_)drivers?(_?licen[cs]e)?(_|$)|(^|_)driving_?licen[cs]e"), "driver's licence number", _ANY),
    (re.compile(r"(^|_)e_?mail"), "e-mail address", _ANY),
    (re.compile(r"(^|_)(mrn|medical_?record_?(number|no|num)?)(_|$)"), "medical record number", _ANY),
    (re.compile(r"^(first|last|middle|maiden|given|family|sur|fore)_?name$|^(first|last|middle|maiden|surname|forename)$"),
     "person's name", _STRINGS),
    (re.compile(r"^(name_)?(prefix|suffix)$"), "part of a person's name", _STRINGS),
]
_DIRECT_PERSON: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    (re.compile(r"(^|_)name(_|$)|^(full|patient|person|member|owner|given|family|user|nick)_?name$"),
     "name on a person table", _STRINGS),
    (re.compile(r"(^|_)(phone|telephone|tel|mobile|fax)(_|$)|phone"), "phone number", _ANY),
    (re.compile(r"(^|_)(address|addr|street)[0-9]*(_|$)"), "street address", _STRINGS),
    (re.compile(r"(^|_)(lat|lon|lng|latitude|longitude)$"), "exact location of a person", ("numerical", "text", "categorical")),
]
_QUASI: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"birth|(^|_)(dob|bday)(_|$)"), "birth date, year or place"),
    (re.compile(r"(^|_)age(_|$)"), "age"),
    (re.compile(r"(^|_)(sex|gender)(_|$)"), "sex / gender"),
    (re.compile(r"(^|_)race(_|$)"), "race"),
    (re.compile(r"ethnic"), "ethnicity"),
    (re.compile(r"(^|_)(zip|zipcode|zip_code|postal|postcode|post_code)(_|$)"), "postal code"),
    (re.compile(r"(^|_)(county|city|state|region|sido|sigungu|fips|district|province)(_|$)"), "place of residence"),
    (re.compile(r"marital"), "marital status"),
    (re.compile(r"(^|_)income"), "income"),
]
_CLINICAL_CODE = re.compile(r"dgns|diag|prcdr|procedure|rxnorm|(^|_)(dx|icd[0-9]*|kcd[0-9]*|atc|ndc)(_|$)")


def _snake(name: str) -> str:
    return "_".join(_words(name))


def _flag_privacy(structure: _Structure) -> list[Flag]:
    """Privacy tags from column names: direct identifiers, quasi-identifiers, sensitive columns."""
    assert structure.patient is not None
    p_table, p_col = structure.patient
    flags: list[Flag] = []

    def tag(t: _Tbl, c: _Col, level: PrivacyTag, reason: str) -> None:
        c.privacy = level
        flags.append(Flag(t.name, c.name, level, reason))

    for t in structure.tables.values():
        linked = t.name == p_table or not t.reference  # rows about patients
        person = linked or bool(_PERSON_TABLE.search(t.name))
        for c in t.columns.values():
            snake = _snake(c.name)
            if t.name == p_table and c.name == p_col and c.type == "id":
                tag(t, c, "direct_identifier", "the patient key (pseudonymised with a keyed hash)")
                continue
            if c.references == f"{p_table}.{p_col}":
                tag(t, c, "direct_identifier", f"refers to the patient key {p_table}.{p_col}")
                continue
            rules = _DIRECT_ANYWHERE + (_DIRECT_PERSON if person else [])
            reason = next((r for rx, r, types in rules if rx.search(snake) and c.type in types), None)
            if reason is not None:
                if c.type != "numerical":
                    _weaken_to_text(c)
                    c.type = "text"
                tag(t, c, "direct_identifier", reason)
                continue
            reason = next((r for rx, r in _QUASI if rx.search(snake)), None) if linked else None
            if reason is not None:
                tag(t, c, "quasi_identifier", reason)
            elif "death" in snake:
                tag(t, c, "sensitive", "death date or cause")
            elif c.type == "code" and (_CLINICAL_CODE.search(snake) or _CLINICAL_TABLE.search(t.name)):
                tag(t, c, "sensitive", "clinical code (diagnosis, procedure or drug)")
    order: list[PrivacyTag | None] = ["direct_identifier", "quasi_identifier", "sensitive", None]
    for t in structure.tables.values():
        for g in t.groups.values():
            members = [c for c in t.columns.values() if c.group == g.name]
            g.privacy = min((c.privacy for c in members), key=order.index)  # the strictest tag of the group
            for c in members:
                c.privacy = g.privacy
    out: list[Flag] = []
    seen_groups: set[tuple[str, str]] = set()
    for f in flags:
        c = structure.tables[f.table].columns[f.column]
        if c.group is None:
            out.append(f)
        elif (f.table, c.group) not in seen_groups:
            seen_groups.add((f.table, c.group))
            g = structure.tables[f.table].groups[c.group]
            out.append(Flag(f.table, f"{g.prefix}1..{g.count}", g.privacy or f.tag, f.reason))
    return out


def _still_flagged(schema: Schema, flag: Flag) -> bool:
    table = schema.tables[flag.table]
    if flag.column in table.columns:
        return table.columns[flag.column].privacy == flag.tag
    return any(f"{g.prefix}1..{g.count}" == flag.column and g.privacy == flag.tag for g in table.groups.values())


# --------------------------------------------------------------------------------------------------
# Building the schema and checking it against the folder


def _build(structure: _Structure, name: str, source: Path) -> Schema:
    """The schema document (plain data, as YAML would give it), checked by the schema model."""
    assert structure.patient is not None
    tables: dict[str, dict[str, object]] = {}
    for t in structure.tables.values():
        columns: dict[str, dict[str, object]] = {}
        for c in t.columns.values():
            if c.group is None:
                columns[c.name] = _column_spec(c)
        files = ", ".join(p.name for p in t.group.files[:3]) + (" ..." if len(t.group.files) > 3 else "")
        tables[t.name] = {
            "description": f"Drafted from {len(t.group.files)} file(s) ({files}), {t.rows:,} row(s).",
            "reference": t.reference,
            "files": [t.group.pattern],
            "primary_key": list(t.primary_key),
            "order_by": t.order_by,
            "columns": columns,
            "groups": {
                g.name: {"prefix": g.prefix, "count": g.count, "type": "code", "vocabulary": g.vocabulary,
                         "pattern": g.pattern, "required": g.required, "privacy": g.privacy}
                for g in t.groups.values()
            },
        }
    return Schema.model_validate({
        "name": name,
        "description": f"Draft inferred by synthmed from the folder {source.name}; review before use.",
        "patient": {"table": structure.patient[0], "column": structure.patient[1]},
        "tables": tables,
    })


def _column_spec(c: _Col) -> dict[str, object]:
    spec: dict[str, object] = {"type": c.type}
    if c.description:
        spec["description"] = c.description
    if not c.required:
        spec["required"] = False
    if not c.nullable:
        spec["nullable"] = False
    if c.privacy:
        spec["privacy"] = c.privacy
    if c.references:
        spec["references"] = c.references
    if c.type == "numerical" and c.integer:
        spec["integer"] = True
    if c.type == "datetime" and c.format:
        spec["format"] = c.format
    if c.type == "datetime" and c.unit == "date":
        spec["unit"] = "date"
    if c.type == "code" and c.vocabulary:
        spec["vocabulary"] = c.vocabulary
    if c.type == "code" and c.pattern:
        spec["pattern"] = c.pattern
    if c.from_filename:
        spec["from_filename"] = c.from_filename
    return spec


def _verified(con: duckdb.DuckDBPyConnection, folder: Path, structure: _Structure, name: str) -> Schema:
    """Build the schema, load the folder with it, and weaken whatever the loader reports, until it is clean."""
    report: ValidationReport | None = None
    for attempt in range(MAX_REPAIRS):
        schema = parse_schema(schema_to_yaml(_build(structure, name, folder)), source=f"<draft for {folder}>")
        dataset, report = read_dataset(schema, folder, con=con, namespace=f"__verify_{attempt}")
        con.execute(f"DROP SCHEMA {quote(dataset.namespace)} CASCADE")
        if report.ok:
            return schema
        structure.notes.append(
            "the loader found what the first guess missed; weakened: "
            + "; ".join(p.render().split(" (e.g.")[0] for p in report.problems[:10])
        )
        if not _repair(structure, report):
            break
        structure.settle_references()
    assert report is not None
    raise DataDirError(f"the data folder {folder}: could not draft a schema that validates it:\n{report.render()}")


def _repair(structure: _Structure, report: ValidationReport) -> bool:
    """Weaken what each problem of the report points at; False when a problem is not the draft's to fix."""
    changed = False
    for problem in report.problems:
        t = structure.tables.get(problem.table or "")
        if t is None:
            return False
        names = [n.strip() for n in (problem.column or "").split(",") if n.strip()]
        cols = [t.columns[n] for n in names if n in t.columns]
        if problem.kind == "duplicate_key":
            for k in t.primary_key:
                t.columns[k].nullable = True
            t.primary_key = []
            changed = True
        elif problem.kind == "orphan_key":
            for c in cols:
                c.references = None
            changed = True
        elif problem.kind == "null_value":
            for c in cols:
                c.nullable = True
            changed = True
        elif problem.kind == "missing_column":
            for c in cols:
                c.required = False
            changed = True
        elif problem.kind in ("unparsable_value", "bad_code", "unknown_category", "out_of_range"):
            for c in cols:
                if c.type == "code":
                    c.vocabulary = c.pattern = None
                    if c.group:
                        g = t.groups[c.group]
                        g.vocabulary = g.pattern = None
                elif c.type == "numerical" and c.integer:
                    c.integer = False
                else:
                    _weaken_to_text(c)
            changed = True
        else:
            return False
    return changed


# --------------------------------------------------------------------------------------------------
# The YAML header


def _header(draft: Draft) -> str:
    """A comment block: this is a draft to review, the notes, and every flag with its reason."""
    schema = draft.schema
    lines = [
        f"DRAFT schema inferred by `synthmed schemas infer` from {draft.source}.",
        "REVIEW IT BEFORE USE. Types, keys, the patient table and the privacy tags are guesses from the data",
        "and the column names. The draft validates this folder, but it only knows the rows it has seen.",
        f"{len(schema.tables)} table(s): " + ", ".join(
            f"{t.name}" + (" (reference)" if t.reference else "") for t in schema.tables.values()
        ),
    ]
    lines += [f"Note: {n}" for n in draft.notes]
    patient_first = sorted(draft.flags, key=lambda f: f.table != schema.patient.table)
    titles = {
        "direct_identifier": "Direct identifiers (an id key is pseudonymised with a keyed hash; other values are dropped):",
        "quasi_identifier": "Quasi-identifiers (checked for k-anonymity and rare combinations):",
        "sensitive": "Sensitive (health information to protect):",
    }
    for level, title in titles.items():
        chosen = [f for f in patient_first if f.tag == level]
        lines += ["", title]
        lines += [f"  {f.table}.{f.column}: {f.reason}" for f in chosen] or ["  (none)"]
    lines += [
        "",
        "Columns not flagged may still identify people (free text, ids, rare values): check every table.",
    ]
    wrapped: list[str] = []
    for line in "\n".join(lines).splitlines():  # a folder name may hold a newline: it stays in the comment
        indent = "    " if line.startswith("  ") else "  "
        wrapped += textwrap.wrap(line, width=108, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return "".join(f"# {line}".rstrip() + "\n" for line in wrapped)
