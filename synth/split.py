"""A deterministic, seeded split of patients into train and holdout; all of a patient's rows on one side.

A patient goes to the holdout when the first 60 bits of SHA-256("<seed>:<key>") fall below the holdout
fraction, so the split is reproducible from (seed, fraction) alone and independent of row order. The
record keeps hashes of the keys, never the keys.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from data_schemas.rules import quote, with_patient_key_sql
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
        return cls(**json.loads(text))


def side_sql(key_expr: str, seed: int, holdout_fraction: float) -> str:
    """SQL boolean: TRUE when the patient key goes to the holdout."""
    threshold = int(holdout_fraction * (1 << _BITS))
    return (
        f"(CAST(('0x' || substr(sha256('{int(seed)}:' || CAST({key_expr} AS VARCHAR)), 1, {_HEX})) AS UBIGINT)"
        f" < {threshold})"
    )


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
            con.execute(f"CREATE OR REPLACE TABLE {quote(ns)}.{quote(table.name)} AS {body}")
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


def write_split_hashes(dataset: Dataset, path: Path) -> None:
    """Write the hashed patient keys and their side to Parquet (no raw keys)."""
    dataset.con.execute(
        f"COPY (SELECT key_hash, CASE WHEN holdout THEN 'holdout' ELSE 'train' END AS side "
        f"FROM __split_keys ORDER BY key_hash) TO '{str(path).replace(chr(39), chr(39) * 2)}' (FORMAT PARQUET)"
    )
