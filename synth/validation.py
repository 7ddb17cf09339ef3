"""The validation report: every problem found in a dataset, each naming file, table, column and rows."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ProblemKind = Literal[
    "missing_folder",
    "missing_table",
    "unreadable_file",
    "empty_file",
    "missing_column",
    "unexpected_column",
    "unparsable_value",
    "null_value",
    "unknown_category",
    "out_of_range",
    "bad_code",
    "duplicate_key",
    "orphan_key",
    "rule_violation",
    "not_a_file",
    "ambiguous_files",
    "bad_line",
    "duplicate_column",
    "header_case",
    "nul_byte",
]


@dataclass(frozen=True)
class Problem:
    """One kind of problem at one place, with how many rows it hits and a few examples."""

    kind: ProblemKind
    message: str
    table: str | None = None
    file: str | None = None
    column: str | None = None
    count: int = 1
    rows: tuple[int, ...] = ()
    values: tuple[str, ...] = ()

    def render(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"file {self.file}" if self.file else "",
                f"table {self.table}" if self.table else "",
                f"column {self.column}" if self.column else "",
            )
            if part
        )
        examples = ""
        if self.rows:
            pairs = [
                f"row {r}" + (f" {v!r}" if i < len(self.values) else "")
                for i, (r, v) in enumerate(zip(self.rows, list(self.values) + [""] * len(self.rows)))
            ]
            examples = f" (e.g. {', '.join(pairs)})"
        elif self.values:
            examples = f" (e.g. {', '.join(repr(v) for v in self.values)})"
        return f"{where}: {self.message}{examples}" if where else f"{self.message}{examples}"


@dataclass
class ValidationReport:
    """Result of checking a dataset against a schema: rows per table and every problem found."""

    schema: str
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "source": self.source,
            "ok": self.ok,
            "rows": self.rows,
            "files": self.files,
            "problems": [asdict(p) for p in self.problems],
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render(self) -> str:
        """The report as plain text: a summary line, then one line per problem."""
        head = f"{self.source} against schema {self.schema}: "
        if self.ok:
            head += "valid"
        else:
            total = sum(p.count for p in self.problems)
            head += f"{len(self.problems)} problem(s) affecting {total} value(s)/row(s)"
        lines = [head]
        lines += [f"  {t}: {n} rows" for t, n in self.rows.items()]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  - {p.render()}" for p in self.problems]
        return "\n".join(lines)
