"""The working state of a draft: staged tables and columns as inference learns about them, and name helpers.

Every step of :mod:`synth.infer` reads and refines these plain mutable records; only
:mod:`synth.infer.assemble` turns them into a checked :class:`data_schemas.model.Schema`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from data_schemas.rules import quote

PrivacyTag = Literal["direct_identifier", "quasi_identifier", "sensitive"]
Progress = Callable[[str], None]

NATIVE_TEXTLIKE = ("VARCHAR",)


@dataclass(frozen=True)
class Flag:
    """A privacy tag the draft set on a column (or a column group), and why."""

    table: str
    column: str
    tag: PrivacyTag
    reason: str


@dataclass
class FileGroup:
    """Files that differ only in digit runs: one table."""

    files: list[Path]
    suffix: str
    literals: tuple[str, ...]
    runs: list[list[str]]  # runs[i] = digit runs of files[i]
    pattern: str = ""
    table: str = ""
    wildcard: list[bool] = field(default_factory=list)


@dataclass
class Stats:
    """Counts over a column's sampled values: how many look like integers, dates, uuids, codes..."""

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
class Col:
    """A column as the draft sees it; fields mirror :class:`data_schemas.model.Column`."""

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
    stats: Stats = field(default_factory=Stats)
    nulls: int | None = None  # missing values on all rows, once counted (foreign key step)

    @property
    def text_source(self) -> bool:
        return self.native in NATIVE_TEXTLIKE


@dataclass
class ColGroup:
    """Wide code columns ``PREFIX1..PREFIXn`` drafted as one column group."""

    name: str
    prefix: str
    count: int
    vocabulary: str | None
    pattern: str | None
    required: bool
    privacy: PrivacyTag | None = None


@dataclass
class Tbl:
    """A staged table: its files, its text values in DuckDB (``sql``), its columns and what was found."""

    name: str
    group: FileGroup
    sql: str
    rows: int
    columns: dict[str, Col]
    primary_key: list[str] = field(default_factory=list)
    reference: bool = False
    dictionary: bool = False
    order_by: str | None = None
    groups: dict[str, ColGroup] = field(default_factory=dict)

    def typed(self, col: str, alias: str = "") -> str:
        """SQL for a column's value as the loader types it (text for id/categorical/code/text); ``alias``
        qualifies the column when two tables are joined."""
        c = self.columns[col]
        at = f"{alias}." if alias else ""
        q = at + quote(col)
        if c.from_filename:
            q = f"nullif(regexp_extract({at}__file, '{sql_str(c.from_filename)}', 1), '')"
        if c.type == "numerical" and c.integer:
            return f"try_cast({q} AS BIGINT)"
        return q

    @property
    def key_column(self) -> str | None:
        """The column other tables may refer to: a single-column primary key, or the entity id of a key
        (id, year taken from the file name) that repeats one row per entity and year (SynPUF's
        beneficiary summaries). Never one column of another composite key: ``diagnoses_icd(hadm_id,
        seq_num)`` has no column that identifies one of its rows."""
        if len(self.primary_key) == 1:
            return self.primary_key[0]
        if len(self.primary_key) == 2:
            rest = [k for k in self.primary_key if not self.columns[k].from_filename]
            if len(rest) == 1:
                return rest[0]
        return None


def sql_str(text: str) -> str:
    return text.replace("'", "''")


def re_escape(text: str) -> str:
    """Escape regex metacharacters only (Python's re.escape also escapes spaces, which RE2 may refuse)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def words(text: str) -> list[str]:
    """Lower-case words of a name: split at non-alphanumerics and camelCase boundaries."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def snake(name: str) -> str:
    return "_".join(words(name))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def identifier(text: str) -> str:
    s = slug(text)
    return f"t_{s}" if s and s[0].isdigit() else s


def unique_name(name: str, used: set[str]) -> str:
    name = name or "table"
    candidate, i = name, 2
    while candidate in used:
        candidate, i = f"{name}_{i}", i + 1
    used.add(candidate)
    return candidate


def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("oses"):
        return word[:-2] + "is"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def flat(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def stem(name: str) -> str:
    """A column name without its trailing digits and id suffix: ``PATIENTID`` -> ``patient``."""
    f = flat(re.sub(r"[0-9]+$", "", name))
    for suffix in ("uuid", "guid", "key", "id"):
        if f.endswith(suffix) and len(f) > len(suffix):
            return f[: -len(suffix)]
    return f


def names_table(col: str, table: str) -> bool:
    """Does a column name point at a table (``PATIENT``/``patient_id`` at ``patients``)?"""
    s, tflat = stem(col), flat(table)
    sing = singular(tflat)
    if len(sing) < 3:
        return False
    return s in (sing, tflat) or s.endswith(sing)
