"""The catalog: a DuckDB file listing releases, evaluations (aggregates only) and reviews (append-only).

Every write is one short transaction on a connection opened for it, so the file is locked only while
a row goes in. Reviews are never updated in place: there is no method that could.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from synth.errors import CatalogError

DDL = [
    """CREATE TABLE IF NOT EXISTS releases (
        release_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, schema_name VARCHAR, schema_hash VARCHAR,
        generator VARCHAR, family VARCHAR, differentially_private BOOLEAN, epsilon DOUBLE, delta DOUBLE,
        seed BIGINT, n_patients BIGINT, rows_json VARCHAR, params_json VARCHAR, source_fingerprint VARCHAR,
        manifest_hash VARCHAR, path VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS evaluations (
        evaluation_id VARCHAR PRIMARY KEY, release_id VARCHAR, created_at TIMESTAMP, seed BIGINT,
        versions_json VARCHAR, summary_json VARCHAR, fidelity DOUBLE, risk_level VARCHAR, policy_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS metric_results (
        evaluation_id VARCHAR, name VARCHAR, family VARCHAR, value DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
        goal VARCHAR, n BIGINT, result_json VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS reviews (
        review_id VARCHAR PRIMARY KEY, release_id VARCHAR, decision VARCHAR, reviewer VARCHAR, comment VARCHAR,
        manifest_hash VARCHAR, created_at TIMESTAMP)""",
]

DECISIONS = ("approve", "reject", "request_changes")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Catalog:
    """The catalog file of a store (``<store>/catalog.duckdb``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation; a lock held by another process becomes a CatalogError."""
        if read_only and not self.path.exists():
            raise CatalogError(f"no catalog at {self.path}: run `synthmed demo` or `synthmed release` first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise CatalogError(f"cannot open the catalog {self.path}: {str(exc).splitlines()[0]}") from None
            raise CatalogError(
                f"the catalog {self.path} is in use by another synthmed process (it holds the lock); "
                f"try again when it has finished ({str(exc).splitlines()[0]})"
            ) from None
        except duckdb.Error as exc:
            raise CatalogError(f"cannot open the catalog {self.path}: {str(exc).splitlines()[0]}") from None
        try:
            if not read_only:
                for ddl in DDL:
                    con.execute(ddl)
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT; anything raised inside rolls back."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- releases --------------------------------------------------------------------------------
    def add_release(self, row: dict[str, Any], *, before_commit: Callable[[], None] | None = None) -> None:
        """Insert a release row; ``before_commit`` (the folder rename) runs inside the transaction."""
        cols = list(row)
        with self.transaction() as con:
            con.execute(
                f"INSERT INTO releases ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
            if before_commit is not None:
                before_commit()

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
            con.execute(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    evaluation_id, release_id, utcnow(), seed, json.dumps(versions), json.dumps(summary),
                    fidelity, risk_level, json.dumps(policy) if policy is not None else None,
                ],
            )
            for r in results:
                ci = r.get("ci") or [None, None]
                con.execute(
                    "INSERT INTO metric_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [evaluation_id, r["name"], r["family"], r["value"], ci[0], ci[1], r["goal"], r.get("n"), json.dumps(r)],
                )
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
    def add_review(self, release_id: str, *, decision: str, reviewer: str, comment: str, manifest_hash: str) -> str:
        """Append a review; reviews are never changed afterwards."""
        if decision not in DECISIONS:
            raise CatalogError(f"The 'decision' parameter must be one of {', '.join(DECISIONS)}; got {decision!r} instead.")
        if not reviewer.strip():
            raise CatalogError("a review needs the reviewer's name")
        review_id = f"review-{uuid.uuid4().hex[:12]}"
        with self.transaction() as con:
            con.execute(
                "INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?)",
                [review_id, release_id, decision, reviewer.strip(), comment, manifest_hash, utcnow()],
            )
        return review_id

    def reviews(self, release_id: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            if release_id is None:
                return _rows(con, "SELECT * FROM reviews ORDER BY created_at")
            return _rows(con, "SELECT * FROM reviews WHERE release_id = ? ORDER BY created_at", [release_id])


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
