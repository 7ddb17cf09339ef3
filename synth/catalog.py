"""The catalog: a DuckDB file listing releases, evaluations (aggregates only) and reviews (append-only).

Every write is one short transaction on a connection opened for it, so the file is locked only while
a row goes in. Reviews are never updated in place: there is no method that could.

Tamper evidence (the chain). Every row of every catalog table goes in through ``Catalog._append(con,
table, row)``, which inserts the row and, in the same transaction, an entry of the ``chain`` table:
``entry_hash = sha256(prev_hash + "\n" + table + "\n" + canonical JSON of the stored row)`` (NULLs
left out, so a nullable column added later keeps old rows valid), signed with HMAC-SHA256 under the
store key ``<store>/store.key`` (0600, created on first write, never the pseudonymisation key). After
each commit the signed head is copied to ``<store>/catalog.head`` so that deleting the newest rows
is caught too. New tables and columns are covered as long as their rows go through ``_append``.

For the app and the CLI: ``Catalog.chain_state() -> ChainState`` (``.ok``, ``.entries``, ``.head``,
``.problems``) checks the whole chain against every table; ``synthmed audit verify`` prints it.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from synth.errors import CatalogError, CatalogLockedError

DDL = [
    """CREATE TABLE IF NOT EXISTS releases (
        release_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, schema_name VARCHAR, schema_hash VARCHAR,
        generator VARCHAR, family VARCHAR, differentially_private BOOLEAN, epsilon DOUBLE, delta DOUBLE,
        seed BIGINT, n_patients BIGINT, rows_json VARCHAR, params_json VARCHAR,
        manifest_hash VARCHAR, path VARCHAR, requested_by VARCHAR, requested_os_user VARCHAR, schema_yaml VARCHAR)""",
    # private bookkeeping of each release (split sizes and fingerprints, real row counts): never shown, never exported;
    # its random salt makes the row's chain hash (and so the published head) hide the exact counts it holds
    """CREATE TABLE IF NOT EXISTS release_sources (
        release_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, source_fingerprint VARCHAR, split_json VARCHAR,
        train_rows_json VARCHAR, holdout_rows_json VARCHAR, salt VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS evaluations (
        evaluation_id VARCHAR PRIMARY KEY, release_id VARCHAR, created_at TIMESTAMP, seed BIGINT,
        versions_json VARCHAR, summary_json VARCHAR, fidelity DOUBLE, risk_level VARCHAR, policy_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS metric_results (
        evaluation_id VARCHAR, name VARCHAR, family VARCHAR, value DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
        goal VARCHAR, n BIGINT, result_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS reviews (
        review_id VARCHAR PRIMARY KEY, release_id VARCHAR, decision VARCHAR, reviewer VARCHAR, comment VARCHAR,
        manifest_hash VARCHAR, created_at TIMESTAMP, issuer VARCHAR, subject VARCHAR, email VARCHAR,
        display_name VARCHAR, role VARCHAR, evaluation_id VARCHAR, risk_level VARCHAR, override BOOLEAN,
        justification VARCHAR)""",
    # what was done to the store itself (e.g. the catalog rebuilt from manifests), chained like every row
    """CREATE TABLE IF NOT EXISTS store_events (
        event_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, kind VARCHAR, os_user VARCHAR, detail_json VARCHAR)""",
]
# Columns added to a table after catalogs with it exist: ``table -> [(column, type)]``, added as nullable
# columns (no default) when a catalog is opened for writing, so rows written before stay valid in the chain.
ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "releases": [("schema_yaml", "VARCHAR")],  # the schema YAML a release was made with (issue 15)
    "release_sources": [("salt", "VARCHAR")],  # hides the private row inside its chain hash (issue 12)
}

CHAIN_TABLE = "chain"
CHAIN_DDL = f"""CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (
    seq BIGINT PRIMARY KEY, table_name VARCHAR NOT NULL, row_hash VARCHAR NOT NULL, prev_hash VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL, mac VARCHAR NOT NULL, txn VARCHAR NOT NULL, created_at TIMESTAMP)"""
GENESIS = "0" * 64
KEY_FILE = "store.key"
HEAD_FILE = "catalog.head"
LOCK_WAIT_ENV = "SYNTHMED_CATALOG_WAIT"  # seconds a writer waits for the catalog's lock (default 600)
DEFAULT_LOCK_WAIT = 600.0
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

DECISIONS = ("approve", "reject", "request_changes")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# -- the store key ---------------------------------------------------------------------------------------------
def load_store_key(store_root: Path, *, create: bool) -> bytes | None:
    """The store's HMAC key (``<store>/store.key``): created 0600 when asked, refused when others can read it.

    Returns None when the file is absent and ``create`` is false. The key is 32 random bytes, so it is
    never the pseudonymisation key, which the user supplies.
    """
    path = store_root / KEY_FILE
    if not path.exists() and not path.is_symlink():
        if not create:
            return None
        store_root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            pass  # another writer made it first: read theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise CatalogError(f"the store key {path} is not a regular file (a link or a folder); it must be the file synthmed made")
    if info.st_mode & 0o077:
        raise CatalogError(
            f"the store key {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 600 {path}` and check who read it"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise CatalogError(f"the store key {path} is not a key made by synthmed (64 hex digits expected)")
    return bytes.fromhex(text)


def _sign(key: bytes, seq: int, entry_hash: str) -> str:
    return hmac.new(key, f"{seq}:{entry_hash}".encode(), hashlib.sha256).hexdigest()


# -- canonical rows and chain entries -----------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise CatalogError(f"a catalog value of type {type(value).__name__} cannot be chained")


def canonical_row(row: dict[str, Any]) -> str:
    """The row as the chain hashes it: sorted keys, NULLs left out, compact ASCII JSON."""
    return json.dumps({k: _plain(v) for k, v in row.items() if v is not None}, sort_keys=True, separators=(",", ":"))


def _entry_hash(prev_hash: str, table: str, canonical: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{table}\n{canonical}".encode()).hexdigest()


def _row_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChainState:
    """What checking the catalog's hash chain found: ``ok`` or every problem, with the head it reached."""

    ok: bool
    entries: int
    head: str | None
    problems: tuple[str, ...]
    checked_at: datetime

    @property
    def summary(self) -> str:
        if self.ok:
            head = f", head {self.head[:16]}..." if self.head else ""
            return f"catalog chain intact: {self.entries:,} entries{head}"
        return f"catalog chain BROKEN ({len(self.problems)} problem(s)): {self.problems[0]}"


MAX_LISTED = 20


def _label(table: str, row: dict[str, Any]) -> str:
    """A short name for a row in a message: its first column (the id) and its ``name`` when it has one."""
    keys = list(row)[:1] + [k for k in ("name",) if k in row and list(row)[:1] != [k]]
    shown = ", ".join(f"{k}={str(row[k])[:60]!r}" for k in keys if row[k] is not None)
    return f"{table} row ({shown})"


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "ORDER BY table_name"
    ).fetchall()]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_head(store_root: Path) -> dict[str, Any] | None:
    """The signed head copied beside the catalog after each commit (None when absent)."""
    path = store_root / HEAD_FILE
    if not path.exists():
        return None
    try:
        head = json.loads(path.read_text())
        return {"seq": int(head["seq"]), "entry_hash": str(head["entry_hash"]), "mac": str(head["mac"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatalogError(f"the chain head {path} cannot be read ({exc}); run `synthmed audit verify`") from None


def _write_head(store_root: Path, seq: int, entry_hash: str, mac: str) -> None:
    path = store_root / HEAD_FILE
    tmp = path.with_name(f".{HEAD_FILE}.tmp")
    with tmp.open("w") as fh:
        fh.write(json.dumps({"seq": seq, "entry_hash": entry_hash, "mac": mac}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def verify_chain(con: duckdb.DuckDBPyConnection, *, key: bytes | None, head: dict[str, Any] | None) -> ChainState:
    """Check every row of every table against the chain, every link, every signature and the signed head.

    An UPDATE shows as a chained row gone plus a row not in the chain; a DELETE as a chained row gone (or,
    for the newest rows, a chain shorter than its signed head); an INSERT as a row not in the chain; a
    re-computed chain as entries not signed by the store key.
    """
    problems: list[str] = []
    tables = _tables(con)
    data_tables = [t for t in tables if t != CHAIN_TABLE]
    if CHAIN_TABLE not in tables:
        filled = [t for t in data_tables if con.execute(f"SELECT count(*) FROM {_quoted(t)}").fetchall()[0][0]]
        if filled:
            problems.append(
                f"the catalog has no hash chain (tables {', '.join(filled)} have rows): it was made by an older "
                "synthmed or its chain was dropped; rebuild it from the release manifests with `synthmed audit rebuild`"
            )
        return ChainState(not problems, 0, None, tuple(problems), utcnow())
    rows: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for table in data_tables:
        cursor = con.execute(f"SELECT * FROM {_quoted(table)}")
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            row = dict(zip(names, values))
            canonical = canonical_row(row)
            rows[(table, _row_hash(canonical))].append((canonical, _label(table, row)))
    entries = con.execute(
        f"SELECT seq, table_name, row_hash, prev_hash, entry_hash, mac, txn FROM {CHAIN_TABLE} ORDER BY seq"
    ).fetchall()
    if entries and key is None:
        problems.append(f"the store key ({KEY_FILE}) is missing, so the chain's signatures cannot be checked")
    gone: list[str] = []
    prev = GENESIS
    for expected_seq, (seq, table, row_hash, prev_hash, entry_hash, mac, _txn) in enumerate(entries, start=1):
        if seq != expected_seq:
            problems.append(f"chain entry #{expected_seq} is missing (the next one is #{seq}): entries were deleted")
        if prev_hash != prev:
            problems.append(f"chain entry #{seq} does not follow the entry before it (its previous hash differs)")
        bucket = rows.get((table, row_hash))
        if bucket:
            canonical, _ = bucket.pop()
            if _entry_hash(prev_hash, table, canonical) != entry_hash:
                problems.append(f"chain entry #{seq} ({table}) has a hash that does not match its row and link")
        else:
            gone.append(f"the {table} row chained as entry #{seq} is gone or was changed")
        if key is not None and not hmac.compare_digest(mac, _sign(key, seq, entry_hash)):
            problems.append(f"chain entry #{seq} ({table}) is not signed by this store's key: it was forged or re-computed")
        prev = entry_hash
    extra = [label for bucket in rows.values() for _, label in bucket]
    problems += gone[:MAX_LISTED] + ([f"... and {len(gone) - MAX_LISTED} more chained rows gone or changed"] if len(gone) > MAX_LISTED else [])
    problems += [f"{label} is not in the chain: inserted or changed outside synthmed" for label in extra[:MAX_LISTED]]
    if len(extra) > MAX_LISTED:
        problems.append(f"... and {len(extra) - MAX_LISTED} more rows not in the chain")
    problems += _head_problems(entries, key=key, head=head)
    last = entries[-1][4] if entries else None
    return ChainState(not problems, len(entries), last, tuple(problems), utcnow())


def _head_problems(entries: list[tuple[Any, ...]], *, key: bytes | None, head: dict[str, Any] | None) -> list[str]:
    """The chain against its signed head: the newest entries deleted, or the head forged."""
    n = len(entries)
    if head is None:
        if n and len({e[6] for e in entries}) > 1:
            return [f"the signed chain head ({HEAD_FILE}) is missing although the chain has {n:,} entries"]
        return []
    problems = []
    if key is not None and not hmac.compare_digest(head["mac"], _sign(key, head["seq"], head["entry_hash"])):
        problems.append(f"the chain head ({HEAD_FILE}) is not signed by this store's key")
    if head["seq"] > n:
        problems.append(
            f"the chain ends at entry #{n} but its signed head is #{head['seq']}: the newest catalog rows were deleted"
        )
    elif head["seq"] > 0 and entries[head["seq"] - 1][4] != head["entry_hash"]:
        problems.append(f"chain entry #{head['seq']} differs from the signed head: the chain was rewritten")
    elif len({e[6] for e in entries[head["seq"]:]}) > 1:
        problems.append(f"{n - head['seq']} chain entries after the signed head (#{head['seq']}) span several writes")
    return problems


def _catalog_problem(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """Why a catalog cannot take chained writes (it predates the chain), or None."""
    tables = _tables(con)
    if not tables or CHAIN_TABLE in tables:
        return None
    if any(con.execute(f"SELECT count(*) FROM {_quoted(t)}").fetchall()[0][0] for t in tables):
        return (
            f"the catalog {path} has no hash chain (made by an older synthmed, or its chain was dropped); "
            f"rebuild it from the release manifests with `synthmed audit rebuild --store {path.parent}` "
            "(the old file is kept beside it)"
        )
    return None


class Catalog:
    """The catalog file of a store (``<store>/catalog.duckdb``)."""

    def __init__(self, path: str | Path, *, on_wait: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.on_wait = on_wait  # told once when a writer starts waiting for another process's lock
        self._open: dict[int, dict[str, Any]] = {}  # transactions in progress: id(con) -> txn id, key, appended

    @property
    def store_root(self) -> Path:
        return self.path.parent

    @contextmanager
    def connect(self, *, read_only: bool = False, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation, with external access off and its configuration locked.

        A lock held by another process is waited for up to ``wait`` seconds (writers: $SYNTHMED_CATALOG_WAIT,
        default 600; readers: not at all unless asked), saying so once through ``on_wait``; then a CatalogError.
        """
        if read_only and not self.path.exists():
            raise CatalogError(f"no catalog at {self.path}: run `synthmed demo` or `synthmed release` first")
        if wait is None:
            wait = _lock_wait() if not read_only else 0.0
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                first = str(exc).splitlines()[0]
                if "lock" not in str(exc).lower():
                    raise CatalogError(f"cannot open the catalog {self.path}: {first}") from None
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait:.0f} s" if wait else ""
                    raise CatalogLockedError(
                        f"the catalog {self.path} is in use by another synthmed process (it holds the lock){waited}; "
                        f"try again when it has finished, or wait longer with {LOCK_WAIT_ENV}=SECONDS ({first})"
                    ) from None
                if not told and self.on_wait is not None:
                    self.on_wait(
                        f"waiting for the catalog {self.path}: another synthmed process holds its lock "
                        f"(up to {wait:.0f} s; {LOCK_WAIT_ENV} changes it)"
                    )
                told = True
                time.sleep(0.25)
            except duckdb.Error as exc:
                raise CatalogError(f"cannot open the catalog {self.path}: {str(exc).splitlines()[0]}") from None
        try:
            for setting in ("enable_external_access = false", "autoinstall_known_extensions = false",
                            "autoload_known_extensions = false", "lock_configuration = true"):
                con.execute(f"SET {setting}")
            if not read_only:
                problem = _catalog_problem(con, self.path)
                if problem:
                    raise CatalogError(problem)
                for ddl in DDL:
                    con.execute(ddl)
                con.execute(CHAIN_DDL)
                for table, columns in ADDED_COLUMNS.items():
                    for column, kind in columns:
                        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT; anything raised inside rolls back. Rows go in with ``_append`` (chained).

        Refuses to write onto a chain whose newest entries were deleted (which would hide the deletion);
        after the commit, the signed head is copied to ``<store>/catalog.head``.
        """
        key = load_store_key(self.store_root, create=True)
        with _process_lock(self.path), self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            state = {"txn": uuid.uuid4().hex, "key": key, "head": None}
            self._open[id(con)] = state
            try:
                self._check_tail(con)
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                con.execute("COMMIT")
                if os.environ.get("SYNTHMED_FAIL_AT") == "before_head:kill":  # tests: a crash between commit and head
                    os._exit(97)
                if state["head"] is not None:
                    _write_head(self.store_root, *state["head"])
            finally:
                self._open.pop(id(con), None)

    def preflight(self) -> None:
        """Raise now what a write would raise at its end: a bad store key, a catalog without chain, a cut chain.

        A catalog locked by another process is not an error here (the write will wait for it).
        """
        load_store_key(self.store_root, create=False)
        if not self.path.exists():
            return
        try:
            with self.connect(read_only=True) as con:
                problem = _catalog_problem(con, self.path)
                if problem:
                    raise CatalogError(problem)
                if CHAIN_TABLE in _tables(con):
                    self._check_tail(con)
        except CatalogLockedError:
            return

    def _check_tail(self, con: duckdb.DuckDBPyConnection) -> None:
        head = read_head(self.store_root)
        entries = con.execute(
            f"SELECT seq, table_name, row_hash, prev_hash, entry_hash, mac, txn FROM {CHAIN_TABLE} "
            f"WHERE seq >= ? ORDER BY seq", [head["seq"] if head else 0]
        ).fetchall()
        if head is None:
            total = con.execute(f"SELECT count(*), count(DISTINCT txn) FROM {CHAIN_TABLE}").fetchall()[0]
            if total[1] > 1:
                raise CatalogError(
                    f"the catalog's signed chain head ({self.store_root / HEAD_FILE}) is missing; writes are refused "
                    "until `synthmed audit verify` is clean"
                )
            return
        if not entries or entries[0][0] != head["seq"] or entries[0][4] != head["entry_hash"]:
            if head["seq"] == 0 and not entries:
                return
            raise CatalogError(
                f"the catalog's chain no longer reaches its signed head (entry #{head['seq']}): rows were deleted or "
                "rewritten; writes are refused until `synthmed audit verify` is clean"
            )

    def _append(self, con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """Insert ``row`` into ``table`` and its chain entry, in the caller's ``transaction()``; returns the stored row.

        The one way rows enter the catalog: the entry hashes the row as DuckDB stored it (every column,
        NULLs left out) after the previous entry's hash, and is signed with the store key.
        """
        state = self._open.get(id(con))
        if state is None:
            raise CatalogError("Catalog._append runs inside Catalog.transaction(), on its connection")
        if not _IDENT.match(table) or table == CHAIN_TABLE:
            raise CatalogError(f"The 'table' parameter of Catalog._append must be a catalog table name; got {table!r} instead.")
        bad = [c for c in row if not _IDENT.match(c)]
        if not row or bad:
            raise CatalogError(f"The 'row' parameter of Catalog._append needs plain column names; got {bad or 'no columns'} instead.")
        cols = list(row)
        cursor = con.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) RETURNING *",
            [row[c] for c in cols],
        )
        names = [d[0] for d in cursor.description]
        stored = dict(zip(names, cursor.fetchall()[0]))
        canonical = canonical_row(stored)
        tail = con.execute(f"SELECT seq, entry_hash FROM {CHAIN_TABLE} ORDER BY seq DESC LIMIT 1").fetchall()
        seq, prev = (int(tail[0][0]) + 1, str(tail[0][1])) if tail else (1, GENESIS)
        entry = _entry_hash(prev, table, canonical)
        mac = _sign(state["key"], seq, entry)
        con.execute(
            f"INSERT INTO {CHAIN_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, table, _row_hash(canonical), prev, entry, mac, state["txn"], utcnow()],
        )
        state["head"] = (seq, entry, mac)
        return stored

    def chain_state(self) -> ChainState:
        """Check the whole catalog against its hash chain and signed head (read-only; the app shows this)."""
        if not self.path.exists():
            return ChainState(True, 0, None, (), utcnow())
        try:
            key = load_store_key(self.store_root, create=False)
        except CatalogError as exc:
            key, key_problem = None, str(exc)
        else:
            key_problem = None
        with self.connect(read_only=True) as con:  # the head is read while no writer can commit
            try:
                head, head_problem = read_head(self.store_root), None
            except CatalogError as exc:
                head, head_problem = {"seq": 0, "entry_hash": GENESIS, "mac": ""}, str(exc)
            state = verify_chain(con, key=key, head=head)
        extra = tuple(p for p in (key_problem, head_problem) if p)
        if not extra:
            return state
        problems = tuple(p for p in state.problems if not (key_problem and p.startswith("the store key"))) + extra
        return ChainState(False, state.entries, state.head, problems, state.checked_at)

    # -- releases --------------------------------------------------------------------------------
    def add_release(
        self, row: dict[str, Any], *, private: dict[str, Any] | None = None, before_commit: Callable[[], None] | None = None
    ) -> None:
        """Insert a release row (and its private ``release_sources`` row); ``before_commit`` (the folder rename)
        runs inside the transaction."""
        with self.transaction() as con:
            self._append(con, "releases", row)
            if private is not None:
                self._append(con, "release_sources", {"release_id": row["release_id"], **private})
            if before_commit is not None:
                before_commit()

    def release_source(self, release_id: str) -> dict[str, Any] | None:
        """The private bookkeeping of a release (for ``synthmed evaluate`` only: never shown or exported), or None."""
        if not self.path.exists():
            return None
        with self.connect(read_only=True) as con:
            if "release_sources" not in _tables(con):
                return None
            rows = _rows(con, "SELECT * FROM release_sources WHERE release_id = ?", [release_id])
        return rows[0] if rows else None

    def add_store_event(self, kind: str, detail: dict[str, Any], *, releases: list[dict[str, Any]] = ()) -> str:
        """Record something done to the store (and the release rows it brings, e.g. a rebuild) in one transaction."""
        event_id = f"event-{uuid.uuid4().hex[:12]}"
        with self.transaction() as con:
            for row in releases:
                self._append(con, "releases", row)
            self._append(con, "store_events", {
                "event_id": event_id, "created_at": utcnow(), "kind": kind, "os_user": _os_user(),
                "detail_json": json.dumps(detail, sort_keys=True, default=str),
            })
        return event_id

    def store_events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            if "store_events" not in _tables(con):
                return []
            return _rows(con, "SELECT * FROM store_events ORDER BY created_at")

    def release_ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        with self.connect(read_only=True) as con:
            return {r[0] for r in con.execute("SELECT release_id FROM releases").fetchall()}

    def releases(self) -> list[dict[str, Any]]:
        """Every release with its latest evaluation and review, newest first."""
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            return _rows(
                con,
                """SELECT r.*, e.evaluation_id, e.fidelity, e.risk_level, rv.decision AS review_status
                   FROM releases r
                   LEFT JOIN (SELECT * FROM evaluations QUALIFY row_number() OVER (PARTITION BY release_id ORDER BY created_at DESC) = 1) e
                     USING (release_id)
                   LEFT JOIN (SELECT * FROM reviews QUALIFY row_number() OVER (PARTITION BY release_id ORDER BY created_at DESC) = 1) rv
                     USING (release_id)
                   ORDER BY r.created_at DESC""",
            )

    def release(self, release_id: str) -> dict[str, Any]:
        for row in self.releases():
            if row["release_id"] == release_id:
                return row
        known = [r["release_id"] for r in self.releases()]
        hint = f"; known: {', '.join(known[:10])}" if known else "; the catalog has no releases yet"
        raise CatalogError(f"no release {release_id!r} in {self.path}{hint}")

    # -- evaluations -----------------------------------------------------------------------------
    def add_evaluation(
        self,
        release_id: str,
        *,
        results: list[dict[str, Any]],
        seed: int,
        versions: dict[str, str],
        summary: dict[str, Any],
        fidelity: float | None,
        risk_level: str | None,
        policy: dict[str, Any] | None,
    ) -> str:
        """Store one evaluation and all its results in one transaction; returns its id."""
        evaluation_id = f"eval-{uuid.uuid4().hex[:12]}"
        with self.transaction() as con:
            self._append(con, "evaluations", {
                "evaluation_id": evaluation_id, "release_id": release_id, "created_at": utcnow(), "seed": seed,
                "versions_json": json.dumps(versions), "summary_json": json.dumps(summary), "fidelity": fidelity,
                "risk_level": risk_level, "policy_json": json.dumps(policy) if policy is not None else None,
            })
            for r in results:
                ci = r.get("ci") or [None, None]
                self._append(con, "metric_results", {
                    "evaluation_id": evaluation_id, "name": r["name"], "family": r["family"], "value": r["value"],
                    "ci_low": ci[0], "ci_high": ci[1], "goal": r["goal"], "n": r.get("n"), "result_json": json.dumps(r),
                })
        return evaluation_id

    def evaluations(self, release_id: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            return _rows(con, "SELECT * FROM evaluations WHERE release_id = ? ORDER BY created_at DESC", [release_id])

    def metric_results(self, evaluation_id: str) -> list[dict[str, Any]]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT result_json FROM metric_results WHERE evaluation_id = ? ORDER BY rowid", [evaluation_id]
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- reviews ---------------------------------------------------------------------------------
    def add_review(
        self,
        release_id: str,
        *,
        decision: str,
        comment: str,
        manifest_hash: str,
        issuer: str,
        subject: str,
        email: str | None,
        display_name: str,
        role: str,
        evaluation_id: str | None,
        risk_level: str | None,
        override: bool = False,
        justification: str = "",
        check: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> str:
        """Append a decision by a signed-in identity (issuer + subject); reviews are never changed afterwards.

        ``check`` (the review rules, see ``synthmed.review_app.decisions``) runs inside the same transaction,
        on its connection, so what it reads cannot change before the row goes in; raising rolls back.
        """
        if decision not in DECISIONS:
            raise CatalogError(f"The 'decision' parameter must be one of {', '.join(DECISIONS)}; got {decision!r} instead.")
        if not issuer.strip() or not subject.strip():
            raise CatalogError("a review needs the signed-in reviewer's identity (issuer and subject), never a typed name")
        if not role.strip():
            raise CatalogError("a review needs the reviewer's role")
        if override and not justification.strip():
            raise CatalogError("an override needs a written justification")
        review_id = f"review-{uuid.uuid4().hex[:12]}"
        row = {
            "review_id": review_id, "release_id": release_id, "decision": decision,
            "reviewer": display_name.strip() or email or subject, "comment": comment, "manifest_hash": manifest_hash,
            "created_at": utcnow(), "issuer": issuer, "subject": subject, "email": email,
            "display_name": display_name.strip(), "role": role, "evaluation_id": evaluation_id,
            "risk_level": risk_level, "override": bool(override), "justification": justification.strip(),
        }
        with self.transaction() as con:
            if check is not None:
                check(con)
            self._append(con, "reviews", row)
        return review_id

    def reviews(self, release_id: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            if release_id is None:
                return _rows(con, "SELECT * FROM reviews ORDER BY created_at")
            return _rows(con, "SELECT * FROM reviews WHERE release_id = ? ORDER BY created_at", [release_id])


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _lock_wait() -> float:
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_LOCK_WAIT
    except ValueError:
        raise CatalogError(f"The '{LOCK_WAIT_ENV}' setting must be a number of seconds; got {raw!r} instead.") from None


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


@contextmanager
def _process_lock(path: Path) -> Iterator[None]:
    """One writing transaction per catalog within this process (threads of the app); processes are kept
    apart by DuckDB's file lock."""
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.setdefault(str(path.resolve()), threading.Lock())
    with lock:
        yield


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
