"""The schema model: tables, columns, keys, privacy tags, code vocabularies and rules.

The schema is the single source of truth for column roles (design.md, "Schema"); SDV metadata,
DuckDB types and validation checks are all derived from it.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ColumnType = Literal["id", "categorical", "numerical", "datetime", "code", "text", "boolean"]
PrivacyTag = Literal["direct_identifier", "quasi_identifier", "sensitive"]

# Patterns a code must match for each known vocabulary. Partial codes (a chapter, an ATC level)
# are accepted because real extracts carry them.
VOCABULARY_PATTERNS: dict[str, str] = {
    "ICD10": r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?$",
    "KCD": r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?$",
    "ICD9CM": r"^([0-9]{3,5}|V[0-9]{2,4}|E[0-9]{3,4}|OTHER)$",
    "ICD9PCS": r"^([0-9]{2,4}|OTHER)$",
    "ATC": r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$",
    "HCPCS": r"^[A-Z0-9][0-9]{3}[A-Z0-9]$",
    "NDC": r"^[0-9]{10,11}$",
    "LOINC": r"^[0-9]{1,7}-[0-9]$",
    "SNOMED": r"^[0-9]{6,18}$",
    "RXNORM": r"^[0-9]{1,9}$",
    "DRG": r"^[0-9]{3}$",
}

SQL_TYPES: dict[str, str] = {
    "id": "VARCHAR",
    "categorical": "VARCHAR",
    "code": "VARCHAR",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(_Frozen):
    """One column: its type, constraints, privacy tag and optional code vocabulary."""

    name: str
    type: ColumnType
    description: str = ""
    required: bool = True
    nullable: bool = True
    privacy: PrivacyTag | None = None
    pseudonymise: Literal["hmac", "drop"] | None = None
    references: str | None = None
    values: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    format: str | None = None
    unit: Literal["date", "timestamp"] = "timestamp"
    vocabulary: str | None = None
    pattern: str | None = None
    from_filename: str | None = None
    group: str | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_strings(cls, v: Any) -> Any:
        return [str(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _check_combination(self) -> Column:
        if self.references is not None and self.references.count(".") != 1:
            raise ValueError(f"references must be 'table.column', got {self.references!r}")
        if self.vocabulary is not None and self.vocabulary not in VOCABULARY_PATTERNS and self.pattern is None:
            known = ", ".join(sorted(VOCABULARY_PATTERNS))
            raise ValueError(f"vocabulary {self.vocabulary!r} is unknown ({known}); give a pattern for it")
        for attr in ("pattern", "from_filename"):
            value = getattr(self, attr)
            if value is not None:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"{attr} is not a valid regular expression: {exc}") from None
        if self.format is not None and self.type != "datetime":
            raise ValueError("format applies to datetime columns only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")
        return self

    @property
    def sql_type(self) -> str:
        """The DuckDB type this column is loaded as."""
        if self.type == "numerical":
            return "BIGINT" if self.integer else "DOUBLE"
        if self.type == "datetime":
            return "DATE" if self.unit == "date" else "TIMESTAMP"
        return SQL_TYPES[self.type]

    @property
    def code_pattern(self) -> str | None:
        """The regular expression a value must match: the explicit pattern, else the vocabulary's."""
        if self.pattern is not None:
            return self.pattern
        return VOCABULARY_PATTERNS.get(self.vocabulary or "")

    @property
    def foreign_key(self) -> tuple[str, str] | None:
        """(table, column) this column refers to, if it is a foreign key."""
        if self.references is None:
            return None
        table, column = self.references.split(".")
        return table, column

    @property
    def pseudonymisation(self) -> Literal["hmac", "drop"] | None:
        """What happens to this column before any generator: keyed pseudonym, drop, or nothing."""
        if self.privacy != "direct_identifier":
            return None
        if self.pseudonymise is not None:
            return self.pseudonymise
        return "hmac" if self.type == "id" else "drop"


class Rule(_Frozen):
    """A table rule: an SQL boolean expression every row must satisfy (NULL counts as satisfied).

    Bare names are this table's columns; ``parent.X`` is the row's parent (first foreign key) and
    ``patient.X`` the patient root row.
    """

    name: str
    check: str
    description: str = ""


class ColumnGroup(_Frozen):
    """A repeated group of wide columns (``ICD9_DGNS_CD_1..10``) that can be read as a long table."""

    name: str
    prefix: str
    count: int = Field(gt=0)
    type: ColumnType = "code"
    vocabulary: str | None = None
    pattern: str | None = None
    required: bool = True
    privacy: PrivacyTag | None = None
    description: str = ""

    def column_names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(1, self.count + 1)]


class CsvDialect(_Frozen):
    """How a table's CSV files are written, when DuckDB's sniffing should not decide: delimiter, quote,
    escape character and encoding (``utf-8``, ``utf-16`` or ``latin-1``)."""

    delimiter: str | None = Field(default=None, min_length=1, max_length=4)
    quote: str | None = Field(default=None, max_length=1)
    escape: str | None = Field(default=None, max_length=1)
    encoding: Literal["utf-8", "utf-16", "latin-1"] | None = None


class Table(_Frozen):
    """A table of the database: its files, keys, columns, groups and rules.

    A ``reference`` table (payers, providers, vocabularies) holds no patient rows: it needs no chain of
    foreign keys to the patient table and is not split by patient.
    """

    name: str
    description: str = ""
    required: bool = True
    reference: bool = False
    files: list[str] = Field(default_factory=list)
    primary_key: list[str] = Field(default_factory=list)
    order_by: str | None = None
    columns: dict[str, Column]
    groups: dict[str, ColumnGroup] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    csv: CsvDialect | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("primary_key"), str):
            data["primary_key"] = [data["primary_key"]]
        if isinstance(data.get("files"), str):
            data["files"] = [data["files"]]
        columns = data.get("columns")
        if isinstance(columns, dict):
            data["columns"] = {
                k: ({"name": k, "type": v} if isinstance(v, str) else {"name": k, **v} if isinstance(v, dict) else v)
                for k, v in columns.items()
            }
        groups = data.get("groups")
        if isinstance(groups, dict):
            data["groups"] = {k: ({"name": k, **v} if isinstance(v, dict) else v) for k, v in groups.items()}
        return data

    @model_validator(mode="after")
    def _expand_groups(self) -> Table:
        expanded = dict(self.columns)
        for group in self.groups.values():
            for name in group.column_names():
                if name in expanded and expanded[name].group == group.name:
                    continue  # already expanded (a Table rebuilt from its own columns)
                if name in expanded:
                    raise ValueError(f"group {group.name!r} column {name!r} is also declared as a column")
                expanded[name] = Column(
                    name=name,
                    type=group.type,
                    vocabulary=group.vocabulary,
                    pattern=group.pattern,
                    required=group.required,
                    privacy=group.privacy,
                    group=group.name,
                )
        object.__setattr__(self, "columns", expanded)
        return self

    def column(self, name: str) -> Column:
        return self.columns[name]

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def columns_of_type(self, *types: str) -> list[Column]:
        return [c for c in self.columns.values() if c.type in types]

    @property
    def foreign_keys(self) -> list[Column]:
        return [c for c in self.columns.values() if c.references is not None]

    def file_patterns(self) -> list[str]:
        """Glob patterns matched against a data folder: the declared ones, then the defaults."""
        defaults = [f"{self.name}.csv", f"{self.name}.csv.gz", f"{self.name}.parquet"]
        return list(self.files) + [d for d in defaults if d not in self.files]


class PatientRef(_Frozen):
    """Where patients live: the root table and the column holding the patient key."""

    table: str
    column: str


class Schema(_Frozen):
    """A claims or EMR database: tables, one of them the patient root table."""

    name: str
    description: str = ""
    version: str = "1"
    patient: PatientRef
    tables: dict[str, Table]
    source: str = Field(default="<memory>", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _name_tables(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tables"), dict):
            data = dict(data)
            data["tables"] = {
                k: ({"name": k, **v} if isinstance(v, dict) else v) for k, v in data["tables"].items()
            }
        return data

    def table(self, name: str) -> Table:
        return self.tables[name]

    @property
    def patient_table(self) -> Table:
        return self.tables[self.patient.table]

    def parent_of(self, table: str) -> tuple[Column, str, str] | None:
        """The first foreign key of ``table`` to a non-reference table: (fk column, parent table, parent column)."""
        for col in self.tables[table].foreign_keys:
            parent, parent_col = col.foreign_key  # type: ignore[misc]
            if parent != table and parent in self.tables and not self.tables[parent].reference:
                return col, parent, parent_col
        return None

    def path_to_patient(self, table: str) -> list[tuple[str, str, str, str]]:
        """Joins leading from ``table`` up to the patient table: (child, fk col, parent, parent col)."""
        path: list[tuple[str, str, str, str]] = []
        seen = {table}
        current = table
        while current != self.patient.table:
            link = self.parent_of(current)
            if link is None:
                return []
            col, parent, parent_col = link
            path.append((current, col.name, parent, parent_col))
            if parent in seen:
                return []
            seen.add(parent)
            current = parent
        return path

    def patient_column_of(self, table: str) -> str | None:
        """The column of ``table`` that holds the patient key directly, if any."""
        if table == self.patient.table:
            return self.patient.column
        for col in self.tables[table].foreign_keys:
            if col.foreign_key == (self.patient.table, self.patient.column):
                return col.name
        return None

    def children_of(self, table: str) -> list[str]:
        """Tables whose first foreign key points at ``table``."""
        return [t for t in self.tables if t != table and (p := self.parent_of(t)) is not None and p[1] == table]

    def topological_order(self) -> list[str]:
        """Tables ordered from the patient root down, parents before children."""
        order: list[str] = []
        frontier = [self.patient.table]
        while frontier:
            current = frontier.pop(0)
            order.append(current)
            frontier.extend(self.children_of(current))
        order.extend(t for t in self.tables if t not in order)
        return order

    def direct_identifiers(self) -> list[tuple[str, Column]]:
        return [(t.name, c) for t in self.tables.values() for c in t.columns.values() if c.privacy == "direct_identifier"]

    def quasi_identifiers(self, table: str | None = None) -> list[tuple[str, Column]]:
        tables = [self.tables[table]] if table else list(self.tables.values())
        return [(t.name, c) for t in tables for c in t.columns.values() if c.privacy == "quasi_identifier"]

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the schema's canonical JSON: what a release records as the schema hash."""
        dumped = self.model_dump(mode="json")
        for table in dumped["tables"].values():
            if table.get("csv") is None:
                table.pop("csv", None)  # schemas without a CSV dialect keep the hash they had before it existed
        canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def is_valid_name(name: str) -> bool:
    """Table and column names are plain identifiers so they can be quoted safely in SQL."""
    return bool(_NAME.match(name))
