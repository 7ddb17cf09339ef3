"""The peer: MOSTLY AI's open engine (``mostlyai-engine``, TabularARGN) fitted and sampled as its users call it.

Runs in its own environment (``.venv-mostly``, made by ``scripts/install --bench``: the engine pins a torch
build of its own). One flat model for the subject (patient) table, then one two-table sequential model
per event table with the patient table as context, the engine's documented multi-table recipe. The
training time cap is split evenly over the models. Reads ``SPEC`` (JSON, written by
``bench_cohorts.py``), writes one Parquet file per table and prints one JSON line of timings.

    .venv-mostly/bin/python benchmarks/peer_mostly.py SPEC.json
"""
import datetime
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

warnings.filterwarnings("ignore")


def _dates(frame: pd.DataFrame) -> pd.DataFrame:
    """DATE columns arrive from Parquet as Python date objects: hand them to the engine as datetimes
    (left as objects the engine would model them as categories)."""
    for col in frame.columns:
        sample = frame[col].dropna().head(1)
        if len(sample) and isinstance(sample.iloc[0], datetime.date) and not isinstance(sample.iloc[0], datetime.datetime):
            frame[col] = pd.to_datetime(frame[col])
    return frame


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    started = time.perf_counter()
    from mostlyai.engine import TabularARGN

    train = Path(spec["train_dir"])
    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    subject = spec["subject"]
    minutes = spec["minutes"] / (1 + len(spec["sequences"]))
    key = subject["key"]
    ctx = _dates(pd.read_parquet(train / f"{subject['table']}.parquet", columns=[key, *subject["columns"]]))
    timings: dict[str, float] = {}
    t = time.perf_counter()
    flat = TabularARGN(max_training_time=minutes, random_state=spec["seed"], verbose=0)
    flat.fit(ctx[subject["columns"]])
    syn_ctx = flat.sample(n_samples=spec["n"]).reset_index(drop=True)
    syn_ctx.insert(0, key, [f"P{i:08d}" for i in range(len(syn_ctx))])
    syn_ctx.to_parquet(out / f"{subject['table']}.parquet", index=False)
    timings[subject["table"]] = time.perf_counter() - t
    for seq in spec["sequences"]:
        t = time.perf_counter()
        tgt = _dates(pd.read_parquet(train / f"{seq['table']}.parquet", columns=[seq["context_key"], *seq["columns"]]))
        model = TabularARGN(
            max_training_time=minutes, random_state=spec["seed"], verbose=0,
            tgt_context_key=seq["context_key"], ctx_data=ctx, ctx_primary_key=key,
        )
        model.fit(tgt)
        rows = model.sample(ctx_data=syn_ctx).reset_index(drop=True)
        rows.to_parquet(out / f"{seq['table']}.parquet", index=False)
        timings[seq["table"]] = time.perf_counter() - t
    print(json.dumps({"seconds": time.perf_counter() - started, "tables": timings}))


if __name__ == "__main__":
    main(sys.argv[1])
