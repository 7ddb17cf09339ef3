"""Canary patients for the one-run privacy audit (``audit.py``): training patients made unmistakable.

A canary is a copy of a randomly chosen training patient (all of their rows in every table; among the
patients with at least one row in a table that carries a made-up value) with fresh
keys and, in every *open-domain* column that reaches a generator (codes, categories the schema does not
list, free text that is not a direct identifier), a value made up for that canary alone: it matches the
column's vocabulary or pattern, no training patient holds it, and the canary's rows repeat it. So the
canary is one patient, as the neighbouring relation counts them, and it is distinctive: a generator that
learns its categories from the data can give the made-up value back, one whose domains are public or
chosen under differential privacy cannot (except as a value that passed a private selection, which a
value held by one patient does with probability at most delta).

Canaries are valid under the schema (types, keys, vocabularies, rules): a canary whose made-up values
break a rule gets new ones, a few times, then is left out (and counted). Everything here is seeded.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data_schemas.model import Column, Schema
from data_schemas.rules import quote, violations_sql, with_patient_key_sql
from evaluate.errors import EvaluationError
from synth.load import Dataset, connect, frames_to_dataset

CANARY = "__canary"
MARKER_ROUNDS = 5
FRESH_DRAWS = 200  # draws of a made-up value before a column's pattern counts as too narrow
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"


class CanaryError(EvaluationError):
    """Canaries could not be built for this schema or training set (the reason says what to change)."""


@dataclass(frozen=True)
class Canaries:
    """Canary rows per table (with their index in ``__canary``) and the made-up values that mark them."""

    frames: dict[str, pd.DataFrame]
    markers: pd.DataFrame  # columns: table, column, value, canary
    n: int  # canaries kept (numbered 0..n-1)
    dropped: int  # canaries left out because no made-up values kept them valid
    marker_columns: tuple[tuple[str, str], ...]


def marker_columns(schema: Schema) -> list[tuple[str, str]]:
    """(table, column) of every open-domain column of a patient-linked table that a generator sees."""
    out = []
    for name in schema.topological_order():
        table = schema.tables[name]
        if table.reference or not (name == schema.patient.table or schema.path_to_patient(name)):
            continue
        for col in table.columns.values():
            if col.privacy == "direct_identifier" or col.type == "id":
                continue
            if col.type in ("code", "text") or (col.type == "categorical" and not col.values):
                out.append((name, col.name))
    return out


def random_match(pattern: str, rng: np.random.Generator) -> str | None:
    """A random string matching a simple regular expression (most repeats, random characters), or None."""
    import re._parser as sre  # the public sre_parse is deprecated

    try:
        parsed = sre.parse(pattern)
    except re.error:
        return None

    def chars_of(items: Any) -> str | None:
        pool: list[str] = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                pool.append(chr(av))
            elif name == "RANGE":
                pool.extend(chr(c) for c in range(av[0], av[1] + 1))
            elif name == "CATEGORY":
                pool.extend({"CATEGORY_DIGIT": DIGITS, "CATEGORY_WORD": LETTERS + DIGITS}.get(str(av), ""))
            elif name == "NEGATE":
                return None
        return "".join(pool) or None

    def fixed(items: Any) -> bool:
        """Whether a part of the pattern matches one string only (literals and groups of literals)."""
        return all(str(op) == "LITERAL" or (str(op) == "SUBPATTERN" and fixed(av[-1])) for op, av in items)

    def walk(items: Any) -> str | None:
        out: list[str] = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "ANY":
                out.append(str(rng.choice(list(LETTERS))))
            elif name == "IN":
                pool = chars_of(av)
                if pool is None:
                    return None
                out.append(pool[int(rng.integers(len(pool)))])
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                times = min(int(av[1]), max(int(av[0]), 6)) if int(av[1]) < 1 << 16 else max(int(av[0]), 6)
                for _ in range(times):
                    sub = walk(av[2])
                    if sub is None:
                        return None
                    out.append(sub)
            elif name == "SUBPATTERN":
                sub = walk(av[-1])
                if sub is None:
                    return None
                out.append(sub)
            elif name == "BRANCH":  # a branch with something to draw: a fixed word ("OTHER") is no made-up value
                branches = [b for b in av[1] if not fixed(b)] or list(av[1])
                sub = walk(branches[int(rng.integers(len(branches)))])
                if sub is None:
                    return None
                out.append(sub)
            elif name == "AT":
                continue
            else:
                return None
        return "".join(out)

    found = walk(parsed)
    return found if found is not None and re.fullmatch(pattern, found) else None


def _marker(col: Column, rng: np.random.Generator) -> str:
    pattern = col.code_pattern
    if pattern:
        for _ in range(20):
            value = random_match(pattern, rng)
            if value is not None:
                return value
        raise CanaryError(f"column {col.name!r}: cannot make up a value matching its pattern {pattern!r} for a canary")
    return "CANARY" + "".join(rng.choice(list(LETTERS + DIGITS), 10))


def _id_roots(schema: Schema) -> dict[tuple[str, str], tuple[str, str]]:
    """Each id column mapped to the (table, column) whose values it shares: foreign keys share their target's."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for table in schema.tables.values():
        for col in table.columns.values():
            if col.type != "id":
                continue
            t, c, seen = table.name, col.name, set()
            while (fk := schema.tables[t].columns[c].foreign_key) is not None and (t, c) not in seen:
                seen.add((t, c))
                t, c = fk
            out[(table.name, col.name)] = (t, c)
    return out


def make_canaries(train: Dataset, n: int, rng: np.random.Generator) -> Canaries:
    """``n`` canaries copied from random training patients (see the module docstring)."""
    schema, con = train.schema, train.con
    columns = marker_columns(schema)
    if not columns:
        raise CanaryError(
            f"schema {schema.name!r} has no open-domain column (code, unlisted category or text) under the patient "
            "to carry a canary's made-up value, so the canary audit cannot run on it"
        )
    rel = train.relations()
    holders = " UNION ".join(  # patients with a row that will carry a made-up value: a canary without one is invisible
        f"SELECT DISTINCT CAST(__patient_key AS VARCHAR) FROM ({with_patient_key_sql(schema, t, rel)}) q"
        for t in dict.fromkeys(t for t, _ in columns)
    )
    keys = np.array(sorted(r[0] for r in con.execute(holders).fetchall() if r[0] is not None))
    if keys.size == 0:
        raise CanaryError(f"no training patient has a row in {', '.join(dict.fromkeys(t for t, _ in columns))} to copy canaries from")
    templates = pd.DataFrame({"__patient_key": keys[rng.choice(keys.size, size=n, replace=n > keys.size)], CANARY: np.arange(n)})
    roots = _id_roots(schema)
    frames: dict[str, pd.DataFrame] = {}
    view = f"__canary_templates_{uuid.uuid4().hex[:8]}"
    con.register(view, templates)
    try:
        for name in schema.topological_order():
            table = schema.tables[name]
            if table.reference or not (name == schema.patient.table or schema.path_to_patient(name)):
                continue
            cols = ", ".join(f"q.{quote(c)}" for c in table.columns)
            frame = con.execute(
                f"SELECT {cols}, t.{CANARY} FROM ({with_patient_key_sql(schema, name, rel)}) q "
                f"JOIN {quote(view)} t ON CAST(q.__patient_key AS VARCHAR) = t.__patient_key ORDER BY t.{CANARY}"
            ).df()
            for col in table.columns.values():
                if col.type != "id":
                    continue
                root_table, root_col = roots[(name, col.name)]
                if schema.tables[root_table].reference:
                    continue  # a key into a reference table (payers, providers) stays as it is
                old = frame[col.name]
                new = "C" + frame[CANARY].astype(str) + "~" + f"{root_table}.{root_col}~" + old.astype(str)
                frame[col.name] = new.where(old.notna(), None)
            frames[name] = frame
    finally:
        con.unregister(view)
    markers = _draw_markers(schema, columns, n, rng)
    markers = _fresh_markers(train, markers, columns, rng)
    bad: set[int] = set()
    for _ in range(MARKER_ROUNDS):
        _apply(frames, markers)
        bad = _breaking(schema, frames)
        if not bad:
            break
        redo = markers[CANARY].isin(bad)
        markers.loc[redo, "value"] = _draw_markers(schema, columns, n, rng).loc[redo, "value"].to_numpy()
        markers = _fresh_markers(train, markers, columns, rng)
    if bad:  # left out, the others renumbered 0..m-1
        kept = np.array([i for i in range(n) if i not in bad])
        renumber = pd.Series(np.arange(kept.size), index=kept)
        frames = {t: f[~f[CANARY].isin(bad)].reset_index(drop=True) for t, f in frames.items()}
        for f in frames.values():
            f[CANARY] = renumber.reindex(f[CANARY].to_numpy()).to_numpy()
        markers = markers[~markers[CANARY].isin(bad)].reset_index(drop=True)
        markers[CANARY] = renumber.reindex(markers[CANARY].to_numpy()).to_numpy()
    _apply(frames, markers)
    return Canaries(frames, markers.rename(columns={CANARY: "canary"}), n - len(bad), len(bad), tuple(columns))


def _draw_markers(schema: Schema, columns: list[tuple[str, str]], n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for table, column in columns:
        col = schema.tables[table].columns[column]
        seen: set[str] = set()
        for i in range(n):
            value = _marker(col, rng)
            while value in seen:
                value = _marker(col, rng)
            seen.add(value)
            rows.append((table, column, value, i))
    return pd.DataFrame(rows, columns=["table", "column", "value", CANARY])


def _fresh_markers(train: Dataset, markers: pd.DataFrame, columns: list[tuple[str, str]], rng: np.random.Generator) -> pd.DataFrame:
    """Markers that no training row holds and no other canary uses in the column (redrawn until so: a value
    must be made up, never real, and mark one canary only)."""
    con = train.con
    markers = markers.copy()
    for table, column in columns:
        col = train.schema.tables[table].columns[column]
        taken = {r[0] for r in con.execute(
            f"SELECT DISTINCT CAST({quote(column)} AS VARCHAR) FROM {train.sql_name(table)} WHERE {quote(column)} IS NOT NULL"
        ).fetchall()}
        for idx in np.flatnonzero((markers["table"].eq(table) & markers["column"].eq(column)).to_numpy()):
            value = markers.at[idx, "value"]
            for _ in range(FRESH_DRAWS):
                if value not in taken:
                    break
                value = _marker(col, rng)
            else:
                raise CanaryError(
                    f"could not make up canary values for {table}.{column} that no training patient holds "
                    f"(its pattern {col.code_pattern!r} leaves too few values free)")
            taken.add(value)
            markers.at[idx, "value"] = value
    return markers


def _apply(frames: dict[str, pd.DataFrame], markers: pd.DataFrame) -> None:
    """Every row of a canary carries its made-up value in each open-domain column."""
    for (table, column), part in markers.groupby(["table", "column"], sort=False):
        frame = frames.get(table)
        if frame is None or frame.empty:
            continue
        lookup = pd.Series(part["value"].to_numpy(), index=part[CANARY].to_numpy())
        frame[column] = lookup.reindex(frame[CANARY].to_numpy()).to_numpy()


def _breaking(schema: Schema, frames: dict[str, pd.DataFrame]) -> set[int]:
    """Canaries with a row that breaks a rule of the schema (the schema's SQL runs on a locked-down connection)."""
    con = connect()
    try:
        relations = {}
        for name, frame in frames.items():
            con.register(f"__c_{name}", frame)
            relations[name] = quote(f"__c_{name}")
        bad: set[int] = set()
        for name in frames:
            needed = {name, *(p[2] for p in schema.path_to_patient(name))}
            if not needed <= set(relations):
                continue
            for rule in schema.tables[name].rules:
                rows = con.execute(violations_sql(schema, name, rule, relations, select=f"q.{CANARY}")).fetchall()
                bad.update(int(r[0]) for r in rows)
        return bad
    finally:
        con.close()


def with_canaries(train: Dataset, canaries: Canaries, included: np.ndarray) -> Dataset:
    """The training set plus the included canaries (a new namespace on the training set's connection), checked."""
    schema, con = train.schema, train.con
    keep = [int(i) for i in np.flatnonzero(included)]
    frames: dict[str, Any] = {}
    for table in schema.tables.values():
        frame = canaries.frames.get(table.name)
        if frame is None:
            frames[table.name] = train.to_arrow(table.name)
            continue
        view = f"__canary_rows_{uuid.uuid4().hex[:8]}"
        con.register(view, frame[frame[CANARY].isin(keep)])
        try:
            cols = ", ".join(quote(c) for c in table.columns)
            casts = ", ".join(f"CAST({quote(c.name)} AS {c.sql_type}) AS {quote(c.name)}" for c in table.columns.values())
            frames[table.name] = con.sql(
                f"SELECT {cols} FROM {train.sql_name(table.name)} UNION ALL SELECT {casts} FROM {quote(view)}"
            ).to_arrow_table()
        finally:
            con.unregister(view)
    dataset, report = frames_to_dataset(schema, frames, con=con, namespace=f"__audit_{uuid.uuid4().hex[:12]}",
                                        source="training set with canaries")
    if not report.ok:
        raise CanaryError("the canaries do not conform to the schema: " + "; ".join(p.render() for p in report.problems[:5]))
    return dataset


def canary_scores(synthetic: Dataset, canaries: Canaries) -> np.ndarray:
    """How many synthetic rows hold each canary's made-up values (0 for a canary the sample shows no trace of)."""
    scores = np.zeros(canaries.n, dtype=np.float64)
    con = synthetic.con
    view = f"__canary_markers_{uuid.uuid4().hex[:8]}"
    con.register(view, canaries.markers)
    try:
        for table, column in canaries.marker_columns:
            rows = con.execute(
                f"SELECT m.canary, count(*) FROM {synthetic.sql_name(table)} s JOIN {quote(view)} m "
                f"ON m.\"table\" = ? AND m.\"column\" = ? AND CAST(s.{quote(column)} AS VARCHAR) = m.value GROUP BY 1",
                [table, column],
            ).fetchall()
            for canary, count in rows:
                scores[int(canary)] += float(count)
    finally:
        con.unregister(view)
    return scores
