"""Exceptions raised while reading or checking a schema."""
from __future__ import annotations


class SchemaError(ValueError):
    """A schema file or definition is malformed; carries every problem found, each located."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid schema {source}: {len(self.problems)} problem(s)\n{lines}")


class UnknownSchemaError(LookupError):
    """A schema name is neither built in nor a readable YAML file."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(
            f"unknown schema {name!r}: not a built-in schema ({', '.join(known)}) nor an existing YAML file"
        )
