"""A deterministic, seeded split of patients into train and holdout; all of a patient's rows on one side.

A patient goes to the holdout when the first 60 bits of SHA-256("<seed>:<key>") fall below the holdout
fraction, so the split is reproducible from (seed, fraction) alone and independent of row order. The
record keeps hashes of the keys, never the keys; ``split_keys.parquet`` holds keyed hashes (HMAC under
the pseudonymisation secret), so a key that was not pseudonymised cannot be found by hashing guesses.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_schemas.rules import quote, with_patient_key_sql
from synth import packed
from synth.errors import SplitError
from synth.load import Dataset

_BITS = 60
_HEX = _BITS // 4


@dataclass(frozen=True)
class SplitRecord:
    """How a split was made and fingerprints of each side (hashes of hashed keys, never keys)."""

    seed: int
    holdout_fraction: float
    n_train: int
    n_holdout: int
    train_fingerprint: str
    holdout_fingerprint: str
    method: str = "sha256(seed:patient_key) < fraction * 2^60"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SplitRecord:
        """The record back from ``to_json``; a SplitError saying what is wrong otherwise."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SplitError(f"split.json is not valid JSON: {exc}") from None
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not names - {"method"} <= set(data) or set(data) - names:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise SplitError(f"split.json does not hold a split record (fields {sorted(names)}); got {got}")
        try:
            record = cls(**data)
            record = cls(int(record.seed), float(record.holdout_fraction), int(record.n_train), int(record.n_holdout),
                         str(record.train_fingerprint), str(record.holdout_fingerprint), str(record.method))
        except (TypeError, ValueError) as exc:
            raise SplitError(f"split.json holds a value of the wrong type: {exc}") from None
        return record


def side_sql(key_expr: str, seed: int, holdout_fraction: float) -> str:
    """SQL boolean: TRUE when the patient key goes to the holdout.

    The first 60 bits of the hash are compared with the threshold as 15 lower-case hex digits: for strings
    of one length, text order is number order, so the same expression runs unchanged on DuckDB and on
    Spark (which has no unsigned 64-bit integers) and splits every patient alike.
    """
    threshold = int(holdout_fraction * (1 << _BITS))
    return f"(substr(sha256('{int(seed)}:' || CAST({key_expr} AS VARCHAR)), 1, {_HEX}) < '{threshold:0{_HEX}x}')"


def split_patients(
    dataset: Dataset, *, seed: int = 0, holdout_fraction: float = 0.2, prefix: str = ""
) -> tuple[Dataset, Dataset, SplitRecord]:
    """Train and holdout datasets (namespaces ``<prefix>train`` and ``<prefix>holdout``) and the record."""
    if not 0.0 < holdout_fraction < 1.0:
        raise SplitError(
            f"The 'holdout_fraction' parameter of split_patients must be in (0, 1); got {holdout_fraction} instead."
        )
    schema, con = dataset.schema, dataset.con
    relations = dataset.relations()
    root = relations[schema.patient.table]
    key = quote(schema.patient.column)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __split_keys AS "
        f"SELECT DISTINCT {key} AS k, {side_sql(key, seed, holdout_fraction)} AS holdout, "
        f"sha256(CAST({key} AS VARCHAR)) AS key_hash FROM {root} WHERE {key} IS NOT NULL"
    )
    sides: dict[str, Dataset] = {}
    for side, flag in (("train", "FALSE"), ("holdout", "TRUE")):
        ns = f"{prefix}{side}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(ns)}")
        for table in schema.tables.values():
            cols = ", ".join(f"q.{quote(c)}" for c in table.columns)
            if table.reference:
                body = f"SELECT * FROM {relations[table.name]}"
            else:
                body = (
                    f"SELECT {cols} FROM ({with_patient_key_sql(schema, table.name, relations)}) q "
                    f"JOIN __split_keys s ON q.__patient_key = s.k WHERE s.holdout = {flag}"
                )
            packed.create(con, ns, table.name, body)
        sides[side] = Dataset(schema, con, ns, f"{side}({dataset.source})", files=dataset.files)
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE NOT holdout), count(*) FILTER (WHERE holdout) FROM __split_keys"
    ).fetchall()[0]
    n_train, n_holdout = int(counts[0]), int(counts[1])
    if n_train == 0 or n_holdout == 0:
        raise SplitError(
            f"the split of {n_train + n_holdout} patient(s) at holdout fraction {holdout_fraction} leaves "
            f"{n_train} in train and {n_holdout} in holdout; both sides need at least one patient"
        )
    record = SplitRecord(
        seed=seed,
        holdout_fraction=holdout_fraction,
        n_train=n_train,
        n_holdout=n_holdout,
        train_fingerprint=_fingerprint(dataset, False),
        holdout_fingerprint=_fingerprint(dataset, True),
    )
    return sides["train"], sides["holdout"], record


def _fingerprint(dataset: Dataset, holdout: bool) -> str:
    hashes = dataset.con.execute(
        f"SELECT key_hash FROM __split_keys WHERE holdout = {'TRUE' if holdout else 'FALSE'} ORDER BY key_hash"
    ).fetchall()
    digest = hashlib.sha256()
    for (h,) in hashes:
        digest.update(h.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def keyed_hash(secret: bytes, key: str) -> str:
    """HMAC-SHA256 of a patient key under the pseudonymisation secret (what ``split_keys.parquet`` holds)."""
    return hmac.new(secret, b"split-key:" + key.encode(), hashlib.sha256).hexdigest()


def write_split_hashes(dataset: Dataset, path: Path, *, secret: bytes) -> None:
    """Write keyed hashes of the patient keys and their side to Parquet (no raw keys, no plain hashes)."""
    rows = dataset.con.execute(
        "SELECT CAST(k AS VARCHAR), CASE WHEN holdout THEN 'holdout' ELSE 'train' END FROM __split_keys"
    ).fetchall()
    hashed = sorted((keyed_hash(secret, k), side) for k, side in rows)
    table = pa.table({"key_hash": [h for h, _ in hashed], "side": [s for _, s in hashed]})
    pq.write_table(table, str(path))


def split_differences(train: Dataset, holdout: Dataset, record: SplitRecord) -> list[str]:
    """What differs between a split record and the train/holdout data it describes (empty when they agree).

    Counts and fingerprints of each side's patients, patients on both sides, and patients on a side the
    record's seed and fraction would not put them on.
    """
    schema = train.schema
    key = quote(schema.patient.column)
    out = []
    keys: dict[str, set[str]] = {}
    for side, data, expect_holdout in (("train", train, False), ("holdout", holdout, True)):
        root = data.sql_name(schema.patient.table)
        rows = data.con.execute(
            f"SELECT DISTINCT CAST({key} AS VARCHAR), {side_sql(key, record.seed, record.holdout_fraction)} "
            f"FROM {root} WHERE {key} IS NOT NULL"
        ).fetchall()
        keys[side] = {k for k, _ in rows}
        n = len(keys[side])
        if n != getattr(record, f"n_{side}"):
            out.append(f"{side}/ has {n:,} patients; split.json says {getattr(record, f'n_{side}'):,}")
        digest = hashlib.sha256()
        for h in sorted(hashlib.sha256(k.encode()).hexdigest() for k in keys[side]):
            digest.update(h.encode())
            digest.update(b"\n")
        if digest.hexdigest() != getattr(record, f"{side}_fingerprint"):
            out.append(f"{side}/ holds other patients than split.json's {side} fingerprint says "
                       f"({digest.hexdigest()[:12]} here, {getattr(record, f'{side}_fingerprint')[:12]} recorded)")
        misplaced = sum(1 for _, to_holdout in rows if bool(to_holdout) != expect_holdout)
        if misplaced:
            out.append(f"{misplaced:,} patient(s) of {side}/ belong to the other side under split.json's seed "
                       f"{record.seed} and holdout fraction {record.holdout_fraction}")
    both = len(keys["train"] & keys["holdout"])
    if both:
        out.append(f"{both:,} patient(s) are in both train/ and holdout/")
    return out
