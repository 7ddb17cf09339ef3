"""Primary keys: a unique, non-null id column (or pair) on all rows, and which table owns an id.

An id that is unique in several tables (``hadm_id`` in ``admissions`` and in a one-row-per-admission
``services``) is *owned* by the table whose values contain all the others' (the admissions); the other
tables hold it as a foreign key, never as their own key. Files per year (``..._2008_...``) repeat an
entity's key once per year: the year from the file name joins the key.
"""
from __future__ import annotations

import duckdb

from synth.infer.columns import id_strength
from synth.infer.parts import Col, FileGroup, Tbl, flat, names_table, re_escape, words

_SEQ_WORDS = ("segment", "seq", "line", "no", "num", "number", "position", "pos", "order", "rank", "idx",
              "index", "version", "sub", "ordinal")
MAX_PAIRS = 60


def unique_ids(con: duckdb.DuckDBPyConnection, t: Tbl) -> list[Col]:
    """The id columns of ``t`` that are unique and never missing on all rows."""
    ids = [c for c in t.columns.values() if c.type == "id" and not c.from_filename]
    if t.rows == 0 or not ids:
        return []
    stats = distinct_counts(con, t, [[c.name] for c in ids])
    return [c for c, (nd, nn) in zip(ids, stats) if nd == t.rows and nn == t.rows]


def id_owners(con: duckdb.DuckDBPyConnection, uniques: dict[str, list[Col]], tables: dict[str, Tbl],
              notes: list[str]) -> dict[str, str]:
    """For each id name unique in several tables: the table whose values contain every other's.

    Equal sets (one row per entity in each) go to the table the name points at (``visit_id`` at
    ``visits``), else the widest table, with a note asking the reviewer to check.
    """
    holders: dict[str, list[tuple[Tbl, Col]]] = {}
    for tname, cols in uniques.items():
        for c in cols:
            holders.setdefault(c.name.lower(), []).append((tables[tname], c))
    owners: dict[str, str] = {}
    for name, held in holders.items():
        if len(held) < 2:
            continue
        union = " UNION ALL ".join(
            f"SELECT DISTINCT {i} AS h, CAST({t.typed(c.name)} AS VARCHAR) AS v FROM {t.sql}" for i, (t, c) in enumerate(held)
        )
        rows = con.execute(
            f"WITH vals AS ({union}) SELECT a.h, b.h, count(*) FROM vals a JOIN vals b ON a.v = b.v GROUP BY 1, 2"
        ).fetchall()
        inter = {(int(a), int(b)): int(n) for a, b, n in rows}
        size = {i: inter.get((i, i), 0) for i in range(len(held))}
        supersets = [i for i in range(len(held)) if all(inter.get((j, i), 0) == size[j] for j in range(len(held)))]
        if not supersets:
            continue
        if len(supersets) > 1:
            named = [i for i in supersets if names_table(held[i][1].name, held[i][0].name)]
            pick = (named or sorted(supersets, key=lambda i: -len(held[i][0].columns)))[0]
            others = ", ".join(held[i][0].name for i in supersets if i != pick)
            notes.append(
                f"{held[pick][1].name} holds the same values, once per row, in {held[pick][0].name} and {others}; "
                f"drafted {held[pick][0].name} as the table it identifies (check)"
            )
        else:
            pick = supersets[0]
        owners[name] = held[pick][0].name
    return owners


def find_primary_key(con: duckdb.DuckDBPyConnection, t: Tbl, unique: list[Col], others: list[str],
                     owners: dict[str, str]) -> None:
    """A unique, non-null, id-like column (or pair) on all rows; a year from the file name when needed.

    A column that names another table (``patient_id`` in ``claims``) or whose id another table owns is a
    foreign key, not this table's key.
    """
    if t.rows == 0:
        return
    ids = [c for c in t.columns.values() if c.type == "id" and not c.from_filename]

    def own(c: Col) -> bool:
        points_elsewhere = any(names_table(c.name, o) for o in others) and not names_table(c.name, t.name)
        return not points_elsewhere and owners.get(c.name.lower(), t.name) == t.name

    singles = [c for c in unique if own(c)]
    if singles:
        best = max(singles, key=lambda c: (key_score(c.name, t.name), -list(t.columns).index(c.name)))
        t.primary_key = [best.name]
        t.columns[best.name].nullable = False
        return
    if _try_year_key(con, t, ids):
        return
    # pairs: an id with a sequence number (CLM_ID, SEGMENT) first, then two ids of which at most one
    # names another table
    order = list(t.columns)
    seqs = [c for c in t.columns.values() if c.type == "numerical" and c.integer and
            any(w.startswith(_SEQ_WORDS) for w in words(c.name))]
    pairs = [[a.name, b.name] for a in ids for b in seqs]
    pairs += [
        [a.name, b.name] for a in ids for b in ids
        if order.index(b.name) > order.index(a.name)
        and sum(any(names_table(x.name, o) for o in others) for x in (a, b)) < 2
    ]
    pairs = pairs[:MAX_PAIRS]
    for pair, (nd, nn) in zip(pairs, distinct_counts(con, t, pairs)):
        if nd == t.rows and nn == t.rows:
            t.primary_key = pair
            for k in pair:
                t.columns[k].nullable = False
            return


def key_score(col: str, table: str) -> int:
    """How surely a column is its table's own key: ``id`` > names the table > strong id name > weak."""
    if flat(col) == "id":
        return 100
    if names_table(col, table):
        return 90
    strength = id_strength(col)
    return 80 if strength == "strong" else 70 if strength == "weak" else 50


def distinct_counts(con: duckdb.DuckDBPyConnection, t: Tbl, keys: list[list[str]]) -> list[tuple[int, int]]:
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


def _try_year_key(con: duckdb.DuckDBPyConnection, t: Tbl, ids: list[Col]) -> bool:
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
    t.columns[name] = Col(
        name=name, type="numerical", integer=True, from_filename=_year_regex(g, year_run), nullable=False,
        description="Year taken from the file name (the files hold one year each)",
    )
    best = sorted(ids, key=lambda c: (-key_score(c.name, t.name), list(t.columns).index(c.name)))
    stats = distinct_counts(con, t, [[c.name, name] for c in best])
    for c, (nd, nn) in zip(best, stats):
        if nd == t.rows and nn == t.rows:
            t.primary_key = [c.name, name]
            c.nullable = False
            return True
    del t.columns[name]
    return False


def _year_regex(g: FileGroup, year_run: int) -> str:
    """A regex capturing the year: the constant text around it, back to the previous wildcard."""
    parts = [re_escape(g.literals[year_run])]
    i = year_run - 1
    while i >= 0 and not g.wildcard[i]:
        parts[:0] = [re_escape(g.literals[i]), g.runs[0][i]]
        i -= 1
    start = "^" if i < 0 else ""
    return f"{start}{''.join(parts)}([0-9]{{4}}){re_escape(g.literals[year_run + 1])}"

