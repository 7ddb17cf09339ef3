"""Column types: guessed from the names and the shapes of sampled values, then checked on every row.

A column is an ``id``, ``datetime`` (a date, or a timestamp with time of day), ``code`` (with a vocabulary
or a pattern of its values' shape), ``numerical``, ``categorical``, ``boolean`` or free ``text``. Types are
guessed from the first ``sample_rows`` rows of each file, then checked on all rows and weakened where a
row disagrees, so the loader never meets a value the draft did not expect.
"""
from __future__ import annotations

import re

import duckdb

from data_schemas.model import VOCABULARY_PATTERNS
from data_schemas.rules import quote
from synth.infer.parts import Col, ColGroup, Stats, Tbl, identifier, sql_str, unique_name, words

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

# Column-name hints. Long hints match anywhere in the name; short ones must start a word of the name.
_CODE_HINTS_LONG = ("DGNS", "DIAG", "PRCDR", "HCPCS", "CODE", "LOINC", "SNOMED", "RXNORM")
_CODE_HINTS_SHORT = ("icd", "atc", "ndc", "kcd", "drg", "cpt", "dx")
_NOT_CODE_WORDS = {"type", "class", "status", "category", "kind", "flag", "ind", "yn", "desc", "description", "name",
                   "system", "text", "label", "date", "dt", "count", "cnt", "version", "ver"}
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
_ID_NOT = ("paid", "aid", "valid", "fluid", "acid", "void", "oid", "lipid", "liquid", "rapid", "solid",
           "hybrid", "humid", "avid", "vivid", "lucid", "rigid")
_NUMBERED_THINGS = {"patient", "member", "person", "bene", "beneficiary", "subject", "claim", "clm", "visit",
                    "encounter", "record", "case", "episode", "admission", "prescription", "order"}


def _shaped(shape: str, parses: str) -> str:
    """SQL true where a value has the shape and parses; the costly parse runs only on the right shapes."""
    return f"CASE WHEN {shape} THEN {parses} ELSE false END"


def _stat_sql(v: str) -> list[str]:
    """Aggregates giving the Stats of text column ``v``, in field order.

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


def infer_types(con: duckdb.DuckDBPyConnection, t: Tbl, sample_rows: int) -> None:
    """Guess each column's type from a sample of every file, then check it on all rows."""
    cols = list(t.columns.values())
    if cols:
        # one long (column, value) relation grouped by column: far faster than one wide aggregate
        on = ", ".join(quote(c.name) for c in cols)
        rows = con.execute(
            f"SELECT __col, {', '.join(_stat_sql('__v'))} FROM (UNPIVOT (SELECT {on} FROM {t.sql} "
            f"WHERE __rn <= {sample_rows}) ON {on} INTO NAME __col VALUE __v) GROUP BY __col"
        ).fetchall()
        stats = {str(r[0]): Stats(*(int(x) for x in r[1:])) for r in rows}
        for c in cols:
            c.stats = stats.get(c.name, Stats())  # a column with no value has no row here
            _decide_type(c)
    _check_types_on_all_rows(con, t)
    codes = [c for c in cols if c.type == "code"]
    found = code_constraints(
        con,
        {c.name: f"SELECT {quote(c.name)} AS v FROM {t.sql}" for c in codes},
        {c.name: vocab_hints(c.name) for c in codes},
    )
    for c in codes:
        c.vocabulary, c.pattern = found[c.name]


def _decide_type(c: Col) -> None:
    """Pick a column's type from its name and the shapes of its sampled values (checked later on all rows).

    Order: native Parquet types; ids (uuid/hex values, id-like names); ISO dates and timestamps; codes
    (code-like names and values); YYYYMMDD dates; numbers (categorical when few or zero-padded codes);
    free text; categorical.
    """
    s, ws, lowered = c.stats, words(c.name), c.name.lower()
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
    strength = id_strength(c.name)
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
    geo = bool(set(ws) & _GEO_WORDS) or "zip" in lowered or "postcode" in lowered
    code_hint = _code_hint(c.name) and not geo
    if code_hint and s.n_codeish == all_:
        c.type = "code"
        return
    number_hint = _number_hint(ws, lowered)
    date_hint = bool(set(ws) & _DATE_WORDS) or lowered.endswith(("date", "_dt"))
    if s.n_ymd == all_ and s.maxlen == 8 and (date_hint or not (number_hint or code_hint)):
        c.type, c.format, c.unit = "datetime", "%Y%m%d", "date"
        return
    category_hint = bool(set(ws) & _CATEGORY_WORDS) and not number_hint
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


def id_strength(name: str) -> str | None:
    """How surely a name says "identifier": strong (``_id``, ``Id``, ``KEY``), weak (``PATIENTID``) or not."""
    ws = words(re.sub(r"[0-9]+$", "", name))
    if not ws:
        return None
    last = ws[-1]
    if last in ("id", "key", "uuid", "guid", "uid", "pk", "mrn"):
        return "strong"
    if last in ("no", "num", "nbr", "number") and len(ws) > 1 and ws[-2] in _NUMBERED_THINGS:
        return "strong"  # patient_no, claim_number, member_num
    if len(last) > 2 and last.endswith("id") and not last.endswith(_ID_NOT):
        return "weak"
    return None


def _code_hint(name: str) -> bool:
    ws = words(name)
    if ws and ws[-1] in _NOT_CODE_WORDS:  # dx_type, code_system, code_description
        return False
    upper = name.upper()
    if any(h in upper for h in _CODE_HINTS_LONG):
        return True
    return any(re.fullmatch(rf"{h}[0-9]*", w) for w in words(name) for h in _CODE_HINTS_SHORT)


def _number_hint(ws: list[str], lowered: str) -> bool:
    if set(ws) & _NUMBER_WORDS:
        return True
    return any(p in lowered for p in _NUMBER_PARTS)


def vocab_hints(name: str) -> tuple[list[str], bool]:
    """Vocabularies the column name points at, and whether the hint is specific (ICD9 rather than DIAG)."""
    ws = words(name)
    upper = name.upper()
    proc = "PRCDR" in upper or "PROC" in upper or "PCS" in upper or "SRGCL" in upper
    specific: list[str] = []
    for w in ws:
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
    if "icd" in ws or ((("DIAG" in upper or "DGNS" in upper) or "dx" in ws) and not proc):
        return ["ICD10", "ICD9CM"], False
    return [], False


def code_constraints(
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
    ] + [f"count(*) FILTER (WHERE regexp_full_match(v, '{sql_str(VOCABULARY_PATTERNS[x])}'))" for x in vocabs]
    labelled = " UNION ALL ".join(f"SELECT '{sql_str(label)}' AS __label, v FROM ({sql})" for label, sql in sources.items())
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


def _check_types_on_all_rows(con: duckdb.DuckDBPyConnection, t: Tbl) -> None:
    """Count, on every row, the values that would not load as the guessed type; weaken those types."""
    checks: list[tuple[Col, str]] = []
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
            weaken_to_text(c)


def weaken_to_text(c: Col) -> None:
    s = c.stats
    c.type = "text" if s.maxlen > 200 or s.n_space > 0 else "categorical"
    c.integer, c.format, c.unit, c.vocabulary, c.pattern = False, None, "timestamp", None, None


def find_groups(con: duckdb.DuckDBPyConnection, t: Tbl) -> None:
    """Code columns ``PREFIX1..PREFIXn`` become a column group, with one vocabulary or pattern for all."""
    by_prefix: dict[str, dict[int, Col]] = {}
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
        vocab, pattern = code_constraints(con, {prefix: union}, {prefix: vocab_hints(prefix)})[prefix]
        name = unique_name(identifier(prefix) or "codes", used)
        t.groups[name] = ColGroup(name=name, prefix=prefix, count=n, vocabulary=vocab, pattern=pattern,
                                required=cols[0].required)
        for c in cols:
            c.group = name
            c.vocabulary, c.pattern = vocab, pattern


