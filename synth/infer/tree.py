"""The tree: foreign keys, the patient table, reference and dictionary tables, and each table's parent.

- A **foreign key** points at a unique key only (a table's single-column primary key, or the entity id of
  a per-year key): every non-null value of the column, on all rows, is a value of that key. The name says
  where (``patient_id`` -> ``patients``, ``hadm_id`` -> the table where ``hadm_id`` is the key), or, for an
  id column, distinctive values alone do (a uuid in Synthea's ``PLACEOFSERVICE`` is an organization's).
- The **patient table** is the root most tables lead to; its key must be an id column.
- Tables with no chain of foreign keys to the patient are **reference tables**; those named like a
  dictionary (``d_labitems``, ``concept``, ``*_lookup``) are **dictionaries**, and a column pointing at a
  dictionary stays a code (``labevents.itemid``), modelled with the row it belongs to.
- Each patient-side table's **tree link** (its first foreign key, as the schema model reads it) is the
  link to the deepest table that is never missing and agrees with the row's own patient key: an event
  of an admission hangs under the admission (patient -> admission -> event), an outpatient lab with no
  admission under the patient.
"""
from __future__ import annotations

import re

import duckdb

from data_schemas.rules import quote
from synth.errors import DataDirError
from synth.infer.keys import key_score
from synth.infer.parts import Col, Progress, Tbl, names_table

_GENERIC_KEYS = {"id", "key", "uid", "uuid", "guid", "pk", "code", "index", "idx", "rowid", "row_id", "name",
                 "value", "no", "num", "number", "seq"}
PATIENT_WORDS = r"patient|person|people|beneficiar|member|enrollee|subject|individual|insured|client|bene"
PATIENT_TABLE = re.compile(rf"(^|_)({PATIENT_WORDS})")
DICTIONARY_TABLE = re.compile(
    r"^(d|dim|dict|lkp|lu|lookup|ref|vocab)_|_(dict|dictionary|lookup|lkp|codes|vocabulary|concepts?)$"
    r"|^(concepts?|vocabular(y|ies)|dictionary|lookup)$"
)
_EVIDENCE = {"same": 3, "named": 2, "values": 1}


class Structure:
    """The tables with their links: foreign keys, the patient table, which tables are references."""

    def __init__(self, tables: list[Tbl], *, say: Progress | None = None) -> None:
        self.tables = {t.name: t for t in tables}
        self.patient: tuple[str, str] | None = None
        self.notes: list[str] = []
        self._say = say or (lambda _m: None)
        self._distinctive: dict[str, bool] = {}

    # -- foreign keys -----------------------------------------------------------------------------
    def find_foreign_keys(self, con: duckdb.DuckDBPyConnection, owners: dict[str, str]) -> None:
        """Every column whose non-null values all lie in another table's unique key, and whose name or
        distinctive values say it points there, becomes a foreign key (one containment query per table)."""
        targets = [u for u in self.tables.values() if u.key_column and u.columns[u.key_column].type == "id"]
        if not targets:
            return
        union = " UNION ALL ".join(
            f"SELECT DISTINCT {i} AS k, CAST({u.typed(u.key_column)} AS VARCHAR) AS v FROM {u.sql} "  # type: ignore[arg-type]
            f"WHERE {u.typed(u.key_column)} IS NOT NULL"  # type: ignore[arg-type]
            for i, u in enumerate(targets)
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE __infer_keys AS {union}")
        sizes = dict(con.execute("SELECT k, count(*) FROM __infer_keys GROUP BY k").fetchall())
        for u in targets:
            s = u.columns[u.key_column].stats  # type: ignore[index]
            self._distinctive[u.name] = s.nn > 0 and (s.n_uuid == s.nn or (s.n_hex == s.nn and s.n_af > 0) or s.minlen >= 10)
        for n, t in enumerate(self.tables.values(), start=1):
            self._say(f"foreign keys of {t.name} ({n}/{len(self.tables)})")
            self._links_of(con, t, targets, sizes, owners)

    def _links_of(self, con: duckdb.DuckDBPyConnection, t: Tbl, targets: list[Tbl], sizes: dict[int, int],
                  owners: dict[str, str]) -> None:
        cands = [c for c in t.columns.values() if _keyish(c)]
        if not cands or t.rows == 0:
            return
        exprs = {c.name: f"CAST({t.typed(c.name)} AS VARCHAR)" for c in cands}
        counts = con.execute(
            "SELECT " + ", ".join(f"count(DISTINCT {e}), count(*) FILTER (WHERE {e} IS NULL)" for e in exprs.values())
            + f" FROM {t.sql}"
        ).fetchall()[0]
        distinct = {name: int(counts[2 * i]) for i, name in enumerate(exprs)}
        for i, name in enumerate(exprs):
            t.columns[name].nulls = int(counts[2 * i + 1])
        values = " UNION ALL ".join(
            f"SELECT DISTINCT {i} AS c, {e} AS v FROM {t.sql} WHERE {e} IS NOT NULL" for i, e in enumerate(exprs.values())
        )
        found = con.execute(
            f"SELECT x.c, k.k, count(*) FROM ({values}) x JOIN __infer_keys k ON x.v = k.v GROUP BY 1, 2"
        ).fetchall()
        contained: dict[str, list[int]] = {}
        names = list(exprs)
        for ci, ki, n in found:
            name = names[int(ci)]
            if int(n) == distinct[name]:
                contained.setdefault(name, []).append(int(ki))
        for c in cands:
            if distinct[c.name] == 0:  # no value at all: only a name can say where it points
                options = [(u, self._evidence(t, c, u)) for u in targets]
            else:
                options = [(targets[k], self._evidence(t, c, targets[k])) for k in contained.get(c.name, [])]
            options = [(u, ev) for u, ev in options if ev is not None and self._allowed(t, c, u, owners, ev)]
            if not options:
                continue
            if distinct[c.name] == 0:
                options = [(u, ev) for u, ev in options if ev != "values"]
                if not options:
                    continue
            u, ev = min(
                options,
                key=lambda o: (-_EVIDENCE[o[1]], owners.get(c.name.lower(), o[0].name) != o[0].name,
                               sizes.get(targets.index(o[0]), 0), o[0].name),
            )
            c.references = f"{u.name}.{u.key_column}"
            c.type, c.integer, c.vocabulary, c.pattern = "id", False, None, None
            if distinct[c.name] == 0:
                self.notes.append(f"{t.name}.{c.name} has no value; drafted as a foreign key to {c.references} by its name (check)")
            elif ev == "values":
                self.notes.append(f"{t.name}.{c.name} -> {c.references}: found by its values alone (check)")

    def _evidence(self, t: Tbl, c: Col, u: Tbl) -> str | None:
        key = u.key_column
        assert key is not None
        if c.name.lower() == key.lower() and key.lower() not in _GENERIC_KEYS:
            return "same"
        if names_table(c.name, u.name):
            return "named"
        if c.type == "id" and u is not t and self._distinctive.get(u.name):
            return "values"
        return None

    def _allowed(self, t: Tbl, c: Col, u: Tbl, owners: dict[str, str], evidence: str) -> bool:
        """A table's own key may point only at the table that owns the id (a one-to-one extension); a table
        points at itself only by name (``preceding_visit_id``), never from its key."""
        if u is t:
            return evidence != "values" and c.name != t.key_column and c.name not in t.primary_key
        if c.name in t.primary_key and len(t.primary_key) == 1:
            return owners.get(c.name.lower()) == u.name or (evidence == "named" and not names_table(c.name, t.name))
        if any(x.references == f"{t.name}.{c.name}" for x in u.columns.values()):
            return False  # the other direction is already a foreign key
        return True

    # -- the patient table --------------------------------------------------------------------------
    def choose_patient(self) -> None:
        """The root: the table most other tables lead to through foreign keys (directly or through other
        tables); a patient-like name (patients, person, beneficiary...) counts as 1.5 more tables. Its key
        is an id column: never a date or a measure."""
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

        def score(u: Tbl) -> tuple[float, bool, bool, int]:
            hinted = bool(PATIENT_TABLE.search(u.name))
            has_id = any(c.type == "id" for c in u.columns.values())
            return (reach[u.name] + 1.5 * hinted, has_id, u.key_column is not None, -order.index(u.name))

        best = max(self.tables.values(), key=score)
        column = best.key_column
        reason = f"{reach[best.name]} other table(s) lead to its key through foreign keys"
        if column is None or best.columns[column].type != "id":
            ids = sorted((c for c in best.columns.values() if c.type == "id" and not c.from_filename),
                         key=lambda c: -key_score(c.name, best.name))
            if not ids:
                raise DataDirError(_no_patient_key(best))
            column = ids[0].name
            reason = "no table has a key other tables refer to; chosen by its name and columns"
            self.notes.append(f"the patient table {best.name} has no unique key; check the patient column {column}")
        elif best.rows and reach[best.name] == 0 and len(self.tables) == 1:
            self.notes.append(
                f"{column} is unique on every row of {best.name}: each row is drafted as its own patient record; "
                "if several rows belong to one patient, add the patient id column and infer again"
            )
        self.patient = (best.name, column)
        self.notes.insert(0, f"patient table: {best.name}, key {column} ({reason})")

    # -- reference tables, dictionaries, tree links ---------------------------------------------------
    def parent_of(self, name: str) -> tuple[Col, str] | None:
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
        """Tables with no chain of foreign keys to the patient table become reference tables; first links
        that lead round in a circle are dropped."""
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
            t.dictionary = t.reference and bool(DICTIONARY_TABLE.search(t.name))
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
        for t in self.tables.values():
            if t.name != self.patient[0] and not t.reference:
                t.order_by = next((c.name for c in t.columns.values() if c.type == "datetime"), None)

    def keep_dictionary_codes(self) -> None:
        """A column pointing at a dictionary (``labevents.itemid`` -> ``d_labitems``) stays a code of the
        row it belongs to: generators model it with the row's values, not as a link drawn on its own."""
        for t in self.tables.values():
            for c in t.columns.values():
                target = c.references.split(".")[0] if c.references else None
                if target and target != t.name and self.tables[target].dictionary and not t.dictionary:
                    c.description = c.description or f"Code listed in {c.references}"
                    c.references, c.type = None, "code"
        dicts = sorted(t.name for t in self.tables.values() if t.dictionary)
        refs = sorted(t.name for t in self.tables.values() if t.reference and not t.dictionary)
        if refs:
            self.notes.append(
                "reference tables (no chain of foreign keys to the patient table, not split by patient): " + ", ".join(refs)
            )
        if dicts:
            self.notes.append(
                "dictionaries (reference tables released as they are; the codes pointing at them stay codes): "
                + ", ".join(dicts)
            )

    def choose_tree_links(self, con: duckdb.DuckDBPyConnection) -> None:
        """Put each patient-side table's tree link first among its foreign keys: the link to the deepest
        table that is never missing and, where both rows carry the patient key, names the same patient."""
        assert self.patient is not None
        patient_key = f"{self.patient[0]}.{self.patient[1]}"
        depth: dict[str, int] = {self.patient[0]: 0}
        chosen: dict[str, Col] = {}
        pending = [t for t in self.tables.values() if not t.reference and t.name != self.patient[0]]
        for _ in range(len(pending) + 1):  # a table is placed once every table it could hang under is
            progressed = False
            for t in list(pending):
                links = self._patient_side_links(t)
                if any(self._placeable(u) and u not in depth for _, u in links):
                    continue
                full = [(c, u) for c, u in links if u in depth and not c.nulls and c.required]
                consistent = [(c, u) for c, u in full if self._same_patient(con, t, c, u, patient_key)]
                pick = max(consistent or full or [(c, u) for c, u in links if u in depth] or [(None, None)],
                           key=lambda cu: (depth.get(cu[1], -1) if cu[1] else -1, -list(t.columns).index(cu[0].name) if cu[0] else 0))
                pending.remove(t)
                progressed = True
                if pick[0] is None:
                    continue
                c, u = pick
                chosen[t.name] = c
                depth[t.name] = depth[u] + 1
                if not (consistent or full):
                    self.notes.append(f"{t.name}.{c.name} links it to {u} but has missing values: rows without it have no patient")
            if not progressed:
                break
        for name, c in chosen.items():
            _move_first_among_links(self.tables[name], c, self)
        deep = sorted(f"{n} -> {c.references.split('.')[0]}" for n, c in chosen.items()  # type: ignore[union-attr]
                      if c.references != patient_key)
        if deep:
            self.notes.append("tables under a parent other than the patient (tree link listed first): " + ", ".join(deep))

    def _patient_side_links(self, t: Tbl) -> list[tuple[Col, str]]:
        out = []
        for c in t.columns.values():
            if c.references:
                u = c.references.split(".")[0]
                if u != t.name and not self.tables[u].reference:
                    out.append((c, u))
        return out

    def _placeable(self, name: str) -> bool:
        return not self.tables[name].reference and self.path_ok(name)

    def _same_patient(self, con: duckdb.DuckDBPyConnection, t: Tbl, c: Col, u: str, patient_key: str) -> bool:
        """Does every row of ``t`` name the same patient as the ``u`` row it links to? (True when one of
        them carries no patient key of its own: nothing to compare.)"""
        if c.references == patient_key:
            return True
        pt = next((x.name for x in t.columns.values() if x.references == patient_key), None)
        ut = self.tables[u]
        pu = next((x.name for x in ut.columns.values() if x.references == patient_key), None)
        if pt is None or pu is None:
            return True
        key = c.references.split(".")[1]  # type: ignore[union-attr]
        n = con.execute(
            f"SELECT count(*) FROM {t.sql} a JOIN {ut.sql} b ON CAST({t.typed(c.name, 'a')} AS VARCHAR) = "
            f"CAST({ut.typed(key, 'b')} AS VARCHAR) WHERE a.{quote(pt)} IS DISTINCT FROM b.{quote(pu)}"
        ).fetchall()[0][0]
        if n:
            self.notes.append(f"{t.name}.{c.name} -> {c.references}: {n} row(s) name another patient than their {u} row; "
                              "not used as the tree link")
        return not n


def _keyish(c: Col) -> bool:
    """Could the column hold keys of another table? (ids, categories, codes, integers named like ids)"""
    from synth.infer.columns import id_strength

    if c.from_filename:
        return False
    return c.type in ("id", "categorical", "code") or (c.type == "numerical" and c.integer and id_strength(c.name) is not None)


def _move_first_among_links(t: Tbl, link: Col, structure: Structure) -> None:
    """Reorder ``t``'s columns so ``link`` comes just before its first foreign key to a patient-side table."""
    first = structure.parent_of(t.name)
    if first is None or first[0] is link:
        return
    order = [name for name in t.columns if name != link.name]
    order.insert(order.index(first[0].name), link.name)
    t.columns = {name: t.columns[name] for name in order}


def _no_patient_key(t: Tbl) -> str:
    folder = t.group.files[0].parent
    files = ", ".join(p.name for p in t.group.files[:3])
    return (
        f"the data folder {folder}: no column of {t.name} ({files}) can identify a patient or a record: it has no id "
        "column (one named like patient_id, member_id, person_id or ID, with many distinct values), and a date or "
        "a measure never can. Add the patient id column, or a row number column (e.g. row_id) if each row is its "
        "own record, and run `synthmed schemas infer` again"
    )
