"""From a validated real dataset to what generators may see: pseudonymised, split by patient, on disk.

Layout of the output folder: ``data/`` (all patients, pseudonymised), ``train/`` and ``holdout/`` (one
Parquet file per table each), ``split.json`` (the split record) and ``split_keys.parquet`` (keyed hashes).
A prepared folder is checked whenever it is read (``read_prepared``): ``split.json`` must describe its
``train/`` and ``holdout/`` exactly, or the folder is refused with what differs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from data_schemas.model import Schema
from synth.errors import PreparedDataError, SplitError
from synth.load import Dataset, load_dataset
from synth.pseudonymise import PseudonymisationReport, pseudonymise
from synth.split import SplitRecord, split_differences, split_patients, write_split_hashes

PREPARED_ENTRIES = frozenset({"data", "train", "holdout", "split.json", "split_keys.parquet"})


@dataclass(frozen=True)
class PreparedData:
    """Where prepared data went, what was pseudonymised, and how patients were split."""

    folder: Path
    pseudonymisation: PseudonymisationReport
    split: SplitRecord
    rows: dict[str, dict[str, int]]


def is_prepared_output(folder: Path) -> bool:
    """True for a folder an earlier ``prepare`` wrote: split.json, train/, holdout/ and nothing foreign."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    return {"split.json", "train", "holdout"} <= names and names <= PREPARED_ENTRIES


def check_output(out_dir: Path, input_dir: Path | None, *, force: bool = False) -> None:
    """Refuse an output folder that would overwrite the input, or a non-empty folder prepare did not make.

    The input folder (or a folder containing it, or one inside it) is always refused; another non-empty
    folder only with ``force``, and then it is moved aside, never deleted.
    """
    out = out_dir.resolve()
    if input_dir is not None:
        src = input_dir.resolve()
        if out == src or src.is_relative_to(out) or out.is_relative_to(src):
            raise PreparedDataError(
                f"the output folder {out_dir} is {'the input folder' if out == src else 'inside or around the input folder'} "
                f"{input_dir}; write the prepared data to a separate folder"
            )
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise PreparedDataError(f"the output {out_dir} exists and is not a folder; choose a new folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_prepared_output(out_dir) and not force:
        raise PreparedDataError(
            f"the output folder {out_dir} is not empty and was not written by `synthmed prepare`; choose a new "
            "folder, or pass --force to move it aside (it is kept, renamed, never deleted)"
        )


def prepare(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    secret: bytes,
    seed: int = 0,
    holdout_fraction: float = 0.2,
    date_shift_days: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PreparedData:
    """Pseudonymise, split and write a dataset; the folder appears whole or not at all.

    An earlier prepare output in ``out_dir`` is replaced; any other non-empty folder is refused (moved
    aside with ``force``), and so is the input folder itself (see ``check_output``).
    """
    out_dir = Path(out_dir)
    source = Path(dataset.source)
    check_output(out_dir, source if source.is_dir() else None, force=force)
    say = progress or (lambda _m: None)
    say("pseudonymising direct identifiers")
    pseudo, pseudo_report = pseudonymise(dataset, secret, date_shift_days=date_shift_days)
    say("splitting patients into train and holdout")
    train, holdout, record = split_patients(pseudo, seed=seed, holdout_fraction=holdout_fraction)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for part, data in (("data", pseudo), ("train", train), ("holdout", holdout)):
            say(f"writing {out_dir / part}")
            data.write(tmp / part)
        (tmp / "split.json").write_text(record.to_json())
        write_split_hashes(pseudo, tmp / "split_keys.parquet", secret=secret)
        if out_dir.exists():
            check_output(out_dir, source if source.is_dir() else None, force=force)  # unchanged while we worked?
            if is_prepared_output(out_dir):
                shutil.rmtree(out_dir)
            elif any(out_dir.iterdir()):
                aside = out_dir.with_name(f"{out_dir.name}.replaced-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
                os.replace(out_dir, aside)
            else:
                out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rows = {"data": pseudo.row_counts(), "train": train.row_counts(), "holdout": holdout.row_counts()}
    return PreparedData(out_dir, pseudo_report, record, rows)


def read_prepared(
    schema: Schema, folder: Path, *, con: duckdb.DuckDBPyConnection, progress: Callable[[str], None] | None = None
) -> tuple[Dataset, Dataset, SplitRecord]:
    """Train, holdout and split record of a prepared folder, refused when split.json does not match them."""
    try:
        record = SplitRecord.from_json((folder / "split.json").read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise PreparedDataError(f"cannot read {folder / 'split.json'}: {exc}") from None
    except SplitError as exc:
        raise PreparedDataError(f"{folder} is not a usable prepared folder: {exc}") from None
    train = load_dataset(schema, folder / "train", con=con, namespace="train", progress=progress)
    holdout = load_dataset(schema, folder / "holdout", con=con, namespace="holdout", progress=progress)
    differences = split_differences(train, holdout, record)
    if differences:
        raise PreparedDataError(
            f"the prepared folder {folder} does not match its split.json (edited, or parts from different runs): "
            + "; ".join(differences) + ". Prepare it again with `synthmed prepare`"
        )
    return train, holdout, record
