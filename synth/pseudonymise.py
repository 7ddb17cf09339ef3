"""Direct identifiers out before anything reaches a generator: keyed pseudonyms, dropped values, date shifts.

Columns tagged ``direct_identifier`` are replaced by HMAC-SHA256 pseudonyms under a secret the user
supplies (type ``id``, and every foreign key pointing at them, so joins survive) or emptied (names,
numbers, addresses, free text). Optionally every date of a patient moves by the same keyed offset.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from data_schemas.model import Schema
from data_schemas.rules import patient_key_joins, quote
from synth import packed
from synth.errors import MissingSecretError
from synth.load import Dataset

SECRET_ENV = "SYNTHMED_SECRET"
MIN_SECRET_BYTES = 16
PSEUDONYM_HEX = 24


def load_secret(secret_file: str | Path | None = None, *, env: str = SECRET_ENV) -> bytes:
    """The pseudonymisation key from a file or the environment; refuse rather than use a default."""
    if secret_file is not None:
        path = Path(secret_file)
        if path.name == "store.key":
            raise MissingSecretError(
                f"{path} is a synthmed store key (it signs the catalog); the pseudonymisation key must be another secret"
            )
        try:
            info = path.stat()
            if path.is_file() and info.st_mode & 0o077:
                raise MissingSecretError(
                    f"the secret file {path} can be read by other users (mode {info.st_mode & 0o777:04o}); "
                    f"run `chmod 600 {path}` (and consider the key exposed if others could read it)"
                )
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise MissingSecretError(f"cannot read the secret file {path}: {exc.strerror or exc}") from None
        source = f"secret file {path}"
    elif os.environ.get(env):
        secret = os.environ[env].strip().encode()
        source = f"environment variable {env}"
    else:
        raise MissingSecretError(
            f"pseudonymisation needs a secret key: pass --secret-file FILE or set {env}; "
            "synthmed never falls back to a default key"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise MissingSecretError(f"the {source} holds {len(secret)} bytes; use at least {MIN_SECRET_BYTES}")
    return secret


def pseudonym(secret: bytes, value: str) -> str:
    """HMAC-SHA256 of a value under the secret, shortened to 96 bits of hex."""
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def date_offset(secret: bytes, patient_key: str, max_days: int) -> int:
    """A patient's keyed date shift in [-max_days, max_days] (the same for all of their dates)."""
    digest = hmac.new(secret, b"date-shift:" + patient_key.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % (2 * max_days + 1) - max_days


@dataclass(frozen=True)
class PseudonymisationReport:
    """What was done to which columns; no values."""

    hashed: dict[str, list[str]] = field(default_factory=dict)
    emptied: dict[str, list[str]] = field(default_factory=dict)
    date_shift_days: int = 0
    shifted: dict[str, list[str]] = field(default_factory=dict)


def _hashed_columns(schema: Schema) -> dict[str, list[str]]:
    """Columns to pseudonymise: tagged id identifiers, plus every foreign key pointing at one."""
    targets = {(t, c.name) for t, c in schema.direct_identifiers() if c.pseudonymisation == "hmac"}
    changed = True
    while changed:
        changed = False
        for table in schema.tables.values():
            for col in table.foreign_keys:
                if col.foreign_key in targets and (table.name, col.name) not in targets:
                    targets.add((table.name, col.name))
                    changed = True
    out: dict[str, list[str]] = {}
    for t, c in sorted(targets):
        out.setdefault(t, []).append(c)
    return out


def pseudonymise(
    dataset: Dataset, secret: bytes, *, date_shift_days: int = 0, namespace: str = "pseudonymised"
) -> tuple[Dataset, PseudonymisationReport]:
    """A new dataset (same connection, new namespace) in which no direct identifier survives."""
    if date_shift_days < 0:
        raise ValueError(f"The 'date_shift_days' parameter of pseudonymise must be >= 0; got {date_shift_days} instead.")
    schema, con = dataset.schema, dataset.con
    _register_udfs(con, secret, date_shift_days)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    hashed = _hashed_columns(schema)
    emptied = {
        t: [c.name for tt, c in schema.direct_identifiers() if tt == t and c.pseudonymisation == "drop"]
        for t in schema.tables
    }
    emptied = {t: cols for t, cols in emptied.items() if cols}
    shifted: dict[str, list[str]] = {}
    relations = dataset.relations()
    for table in schema.tables.values():
        dates = [c.name for c in table.columns_of_type("datetime")] if date_shift_days and not table.reference else []
        if dates:
            shifted[table.name] = dates
        joins, key_expr = patient_key_joins(schema, table.name, relations) if dates else ([], "NULL")
        selects = []
        for col in table.columns.values():
            q = quote(col.name)
            if col.name in hashed.get(table.name, []):
                expr = f"synthmed_pseudonym(CAST(t.{q} AS VARCHAR))"
            elif col.name in emptied.get(table.name, []):
                expr = f"CAST(NULL AS {col.sql_type})"
            elif col.name in dates:
                expr = f"CAST(t.{q} + to_days(synthmed_date_offset(CAST({key_expr} AS VARCHAR))) AS {col.sql_type})"
            else:
                expr = f"t.{q}"
            selects.append(f"{expr} AS {q}")
        packed.create(con, namespace, table.name, f"SELECT {', '.join(selects)} FROM {relations[table.name]} t {' '.join(joins)}")
    report = PseudonymisationReport(hashed=hashed, emptied=emptied, date_shift_days=date_shift_days, shifted=shifted)
    return Dataset(schema, con, namespace, f"pseudonymised({dataset.source})", files=dataset.files), report


def _register_udfs(con: duckdb.DuckDBPyConnection, secret: bytes, max_days: int) -> None:
    """Vectorised HMAC functions over Arrow arrays; the secret lives only in these closures."""

    def _pseudonyms(values: pa.Array) -> pa.Array:
        return pa.array([None if v is None else pseudonym(secret, v) for v in values.to_pylist()], pa.string())

    def _offsets(values: pa.Array) -> pa.Array:
        days = max(max_days, 0)
        return pa.array(
            [0 if v is None or days == 0 else date_offset(secret, v, days) for v in values.to_pylist()], pa.int32()
        )

    for name in ("synthmed_pseudonym", "synthmed_date_offset"):
        try:
            con.remove_function(name)
        except duckdb.Error:
            pass
    con.create_function("synthmed_pseudonym", _pseudonyms, ["VARCHAR"], "VARCHAR", type="arrow", null_handling="special")
    con.create_function("synthmed_date_offset", _offsets, ["VARCHAR"], "INTEGER", type="arrow", null_handling="special")
