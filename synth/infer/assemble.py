"""The draft as a schema: built from the working state, checked by loading the folder with it, repaired
until the loader reports no problem, and written as YAML under a header a reviewer reads first.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from data_schemas.io import parse_schema, schema_to_yaml
from data_schemas.model import Schema
from data_schemas.rules import quote
from synth.errors import DataDirError
from synth.infer.columns import weaken_to_text
from synth.infer.parts import Col, Flag, Progress
from synth.infer.tree import Structure
from synth.load import read_dataset
from synth.validation import ValidationReport

MAX_REPAIRS = 6


@dataclass(frozen=True)
class Draft:
    """An inferred schema with what it flagged and notes for the person reviewing it."""

    schema: Schema
    flags: tuple[Flag, ...]
    notes: tuple[str, ...]
    source: str
    rows: dict[str, int] = field(default_factory=dict)

    def to_yaml(self) -> str:
        """The schema as YAML, under a comment header saying it is a draft and listing every flag."""
        return header(self) + schema_to_yaml(self.schema)


def _build(structure: Structure, name: str, source: Path) -> Schema:
    """The schema document (plain data, as YAML would give it), checked by the schema model."""
    assert structure.patient is not None
    tables: dict[str, dict[str, object]] = {}
    for t in structure.tables.values():
        columns: dict[str, dict[str, object]] = {}
        for c in t.columns.values():
            if c.group is None:
                columns[c.name] = _column_spec(c)
        files = ", ".join(p.name for p in t.group.files[:3]) + (" ..." if len(t.group.files) > 3 else "")
        role = " Dictionary (a reference table of codes)." if t.dictionary else ""
        tables[t.name] = {
            "description": f"Drafted from {len(t.group.files)} file(s) ({files}).{role}",
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


def _column_spec(c: Col) -> dict[str, object]:
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


def verified(con: duckdb.DuckDBPyConnection, folder: Path, structure: Structure, name: str,
             say: Progress | None = None) -> Schema:
    """Build the schema, load the folder with it, and weaken whatever the loader reports, until it is clean."""
    report: ValidationReport | None = None
    for attempt in range(MAX_REPAIRS):
        if say is not None:
            say(f"checking the draft against the folder with the loader (pass {attempt + 1})")
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


def _repair(structure: Structure, report: ValidationReport) -> bool:
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
                    weaken_to_text(c)
            changed = True
        else:
            return False
    return changed


# --------------------------------------------------------------------------------------------------
# The YAML header


def header(draft: Draft) -> str:
    """A comment block: this is a draft to review, the notes, and every flag with its reason."""
    schema = draft.schema
    lines = [
        f"DRAFT schema inferred by `synthmed schemas infer` from {draft.source}.",
        "REVIEW IT BEFORE USE. Types, keys, the patient table and the privacy tags are guesses from the data",
        "and the column names. The draft validates this folder, but it only knows the rows it has seen.",
        f"{len(schema.tables)} table(s): " + ", ".join(
            f"{t.name} ({draft.rows.get(t.name, 0):,} rows" + (", reference" if t.reference else "") + ")"
            for t in schema.tables.values()
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
        "",
        "How to review (then `synthmed validate DATA_DIR --schema THIS_FILE`):",
        "  1. patient: the table and key whose rows are people; every other table reaches it through its first",
        "     foreign key (the tree link: an event under its admission, or under the patient when it may have none).",
        "  2. references: each foreign key points at a unique key; notes marked (check) were found by values or",
        "     by name alone. Dictionaries and reference tables are released as they are: no patient data there.",
        "  3. privacy: every direct identifier is flagged (names, numbers, addresses, free text about people);",
        "     quasi-identifiers (age, sex, places, dates of birth) and sensitive columns are tagged.",
        "  4. types: dates vs timestamps, codes vs categories; add `rules:` your data must keep (stop >= start).",
    ]
    wrapped: list[str] = []
    for line in "\n".join(lines).splitlines():  # a folder name may hold a newline: it stays in the comment
        indent = "    " if line.startswith("  ") else "  "
        wrapped += textwrap.wrap(line, width=108, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return "".join(f"# {line}".rstrip() + "\n" for line in wrapped)
