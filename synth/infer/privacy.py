"""Privacy tags: direct identifiers, quasi-identifiers and sensitive columns, from names, roles and values.

A column named like a national id, a licence, an e-mail or a first/last name is a direct identifier
anywhere. "Name" alone says little: ``test_name``, ``org_name`` or ``field_name`` name things, not people.
A ``*name*`` column is a person's name when its qualifier says so (``patient_name``, ``owner_name``), when
it sits on the patient table or a table of people (``providers``), or, on an event table, when its
values look like personal names *and* belong to one patient each, where clinical vocabulary is shared
across many patients.
"""
from __future__ import annotations

import re

import duckdb

from data_schemas.model import Schema
from data_schemas.rules import quote
from synth.infer.columns import weaken_to_text
from synth.infer.parts import Col, Flag, PrivacyTag, Tbl, snake, sql_str
from synth.infer.tree import PATIENT_WORDS, Structure

_PERSON_TABLE = re.compile(rf"(^|_)({PATIENT_WORDS}|provider|physician|doctor|practitioner|staff|employee|nurse|"
                           r"caregiver|user|contact)")
_CLINICAL_TABLE = re.compile(r"condition|diagnos|problem|procedure|medication|prescription|drug|allerg|"
                             r"immuni|observation|lab|careplan")
_CLINICAL_CODE = re.compile(r"dgns|diag|prcdr|procedure|rxnorm|(^|_)(dx|icd[0-9]*|kcd[0-9]*|atc|ndc)(_|$)")

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
_DEATH = re.compile(r"death|(^|_)(dod|deceased)(_|$)|expire_flag")

# Words before or after "name" that make it a person's name, or the name of a thing.
_NAME_WORD = re.compile(r"^(.*?)name$")
_PERSON_WORDS = {"patient", "person", "member", "owner", "full", "first", "last", "given", "family", "user", "nick",
                 "contact", "subscriber", "insured", "guardian", "mother", "father", "spouse", "kin", "emergency",
                 "maiden", "middle", "sur", "fore", "beneficiary", "bene", "client", "relative", "parent", "legal",
                 "birth", "holder", "policyholder", "responsible", "guarantor", "caller", "informant"}
_THING_WORDS = {"test", "org", "organism", "ab", "antibiotic", "drug", "med", "medication", "result", "field", "item",
                "product", "facility", "hospital", "organization", "organisation", "company", "payer", "plan", "file",
                "unit", "ward", "dept", "department", "code", "brand", "generic", "lab", "specimen", "spec",
                "procedure", "proc", "diagnosis", "dx", "device", "vaccine", "careunit", "service", "label", "event",
                "value", "type", "category", "class", "source", "vendor", "manufacturer", "route", "form", "site",
                "study", "series", "body", "modality", "allergen", "allergy", "condition", "problem", "panel",
                "component", "order", "table", "column", "attribute", "variable", "measure", "measurement",
                "observation", "concept", "vocabulary", "document", "note", "template", "program", "programme",
                "insurance", "insurer", "employer", "practice", "clinic", "pharmacy", "location", "city", "state",
                "country", "county", "region", "street", "disease", "finding", "question", "answer", "parameter",
                "setting", "step", "task", "module", "app", "system", "queue", "project", "protocol", "trial",
                "substance", "ingredient", "formulary", "package", "dose", "frequency", "reason", "status"}
# two to four capitalised words (Synthea adds digits to names: "Adam631 Kling921"), commas allowed
_PERSONAL_NAME = r"[A-Z][A-Za-z'’.-]*[0-9]*(,? [A-Z][A-Za-z'’.-]*[0-9]*){1,3}"
_LOOKS_SHARE = 0.8  # share of values shaped like a personal name
_MAX_PATIENTS_PER_VALUE = 1.5  # a person's name belongs to about one patient; vocabulary to many


def flag_privacy(con: duckdb.DuckDBPyConnection, structure: Structure) -> list[Flag]:
    """Privacy tags from column names, the table's role and, for name columns, the values."""
    assert structure.patient is not None
    p_table, p_col = structure.patient
    flags: list[Flag] = []

    def tag(t: Tbl, c: Col, level: PrivacyTag, reason: str) -> None:
        c.privacy = level
        flags.append(Flag(t.name, c.name, level, reason))

    for t in structure.tables.values():
        linked = t.name == p_table or not t.reference  # rows about patients
        person = linked or bool(_PERSON_TABLE.search(t.name))
        for c in t.columns.values():
            sn = snake(c.name)
            if t.name == p_table and c.name == p_col and c.type == "id":
                tag(t, c, "direct_identifier", "the patient key (pseudonymised with a keyed hash)")
                continue
            if c.references == f"{p_table}.{p_col}":
                tag(t, c, "direct_identifier", f"refers to the patient key {p_table}.{p_col}")
                continue
            rules = _DIRECT_ANYWHERE + (_DIRECT_PERSON if person else [])
            reason = next((r for rx, r, types in rules if rx.search(sn) and c.type in types), None)
            if reason is None and c.type in _STRINGS:
                reason = _personal_name(con, structure, t, c, sn)
            if reason is not None:
                if c.type != "numerical":
                    weaken_to_text(c)
                    c.type = "text"
                tag(t, c, "direct_identifier", reason)
                continue
            reason = next((r for rx, r in _QUASI if rx.search(sn)), None) if linked else None
            if reason is not None:
                tag(t, c, "quasi_identifier", reason)
            elif linked and _DEATH.search(sn):
                tag(t, c, "sensitive", "death date or cause")
            elif linked and c.type == "code" and (_CLINICAL_CODE.search(sn) or _CLINICAL_TABLE.search(t.name)):
                tag(t, c, "sensitive", "clinical code (diagnosis, procedure or drug)")
    return _group_flags(structure, flags)


def _personal_name(con: duckdb.DuckDBPyConnection, structure: Structure, t: Tbl, c: Col, sn: str) -> str | None:
    """Why ``c`` holds people's names, or None: the qualifier, the table's role, then the values."""
    parts = sn.split("_")
    at = next((i for i, w in enumerate(parts) if _NAME_WORD.fullmatch(w)), None)
    if at is None:
        return None
    glued = _NAME_WORD.fullmatch(parts[at]).group(1)  # type: ignore[union-attr]  # "owner" of "ownername"
    qualifiers = {w for w in parts[:at] + parts[at + 1:] if w} | ({glued} if glued else set())
    if qualifiers & _PERSON_WORDS:
        return "a person's name (by its name)"
    if qualifiers & _THING_WORDS:
        return None  # test_name, org_name, field_name: the name of a thing
    assert structure.patient is not None
    if t.name == structure.patient[0] or (t.reference and _PERSON_TABLE.search(t.name)):
        return "name on a person table"
    if t.reference:
        return None
    looks, per_value = _name_values(con, structure, t, c)
    if looks >= _LOOKS_SHARE and per_value <= _MAX_PATIENTS_PER_VALUE:
        return f"values look like personal names, {per_value:.1f} patient(s) per value"
    return None


def _name_values(con: duckdb.DuckDBPyConnection, structure: Structure, t: Tbl, c: Col) -> tuple[float, float]:
    """(share of values shaped like a personal name, patients per distinct value) on all rows. Without a
    patient column in the table, rows per distinct value stand in for patients per value."""
    assert structure.patient is not None
    patient_ref = f"{structure.patient[0]}.{structure.patient[1]}"
    pcol = next((x.name for x in t.columns.values() if x.references == patient_ref), None)
    q = quote(c.name)
    who = f"count(DISTINCT ({quote(pcol)}, {q}))" if pcol else "count(*)"
    row = con.execute(
        f"SELECT count({q}), count(*) FILTER (WHERE regexp_full_match({q}, '{sql_str(_PERSONAL_NAME)}')), "
        f"count(DISTINCT {q}), {who} FILTER (WHERE {q} IS NOT NULL) FROM {t.sql}"
    ).fetchall()[0]
    nn, looks, nd, pairs = (int(x) for x in row)
    if nn == 0 or nd == 0:
        return 0.0, 0.0
    return looks / nn, pairs / nd


def _group_flags(structure: Structure, flags: list[Flag]) -> list[Flag]:
    """A column group takes the strictest tag of its members and is listed once, as ``PREFIX1..n``."""
    order: list[PrivacyTag | None] = ["direct_identifier", "quasi_identifier", "sensitive", None]
    for t in structure.tables.values():
        for g in t.groups.values():
            members = [c for c in t.columns.values() if c.group == g.name]
            g.privacy = min((c.privacy for c in members), key=order.index)
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


def still_flagged(schema: Schema, flag: Flag) -> bool:
    """Is the flag still on the final schema? (the draft's repairs may have weakened the column)"""
    table = schema.tables[flag.table]
    if flag.column in table.columns:
        return table.columns[flag.column].privacy == flag.tag
    return any(f"{g.prefix}1..{g.count}" == flag.column and g.privacy == flag.tag for g in table.groups.values())
