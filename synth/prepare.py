"""From a validated real dataset to what generators may see: pseudonymised, split by patient, on disk.

Layout of the output folder: ``data/`` (all patients, pseudonymised), ``train/`` and ``holdout/`` (one
Parquet file per table each), ``split.json`` (the split record) and ``split_keys.parquet`` (hashed keys).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from synth.load import Dataset
from synth.pseudonymise import PseudonymisationReport, pseudonymise
from synth.split import SplitRecord, split_patients, write_split_hashes


@dataclass(frozen=True)
class PreparedData:
    """Where prepared data went, what was pseudonymised, and how patients were split."""

    folder: Path
    pseudonymisation: PseudonymisationReport
    split: SplitRecord
    rows: dict[str, dict[str, int]]


def prepare(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    secret: bytes,
    seed: int = 0,
    holdout_fraction: float = 0.2,
    date_shift_days: int = 0,
) -> PreparedData:
    """Pseudonymise, split and write a dataset; the folder appears whole or not at all."""
    out_dir = Path(out_dir)
    pseudo, pseudo_report = pseudonymise(dataset, secret, date_shift_days=date_shift_days)
    train, holdout, record = split_patients(pseudo, seed=seed, holdout_fraction=holdout_fraction)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        pseudo.write(tmp / "data")
        train.write(tmp / "train")
        holdout.write(tmp / "holdout")
        (tmp / "split.json").write_text(record.to_json())
        write_split_hashes(pseudo, tmp / "split_keys.parquet")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rows = {"data": pseudo.row_counts(), "train": train.row_counts(), "holdout": holdout.row_counts()}
    return PreparedData(out_dir, pseudo_report, record, rows)
