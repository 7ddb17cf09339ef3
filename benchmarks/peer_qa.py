"""The second judge: mostlyai-qa's accuracy (univariate, bivariate, coherence) of a synthetic cohort.

Runs in ``.venv-mostly``. For every (context table, event table) pair in ``SPEC`` it calls
``mostlyai.qa.report`` with train, holdout and synthetic data (the event table as the sequential target,
the patient table as context) and keeps ``metrics.accuracy.overall``; prints one JSON line with each
pair's accuracy and their mean. ``report`` returns no metrics when a side is too small (fewer than 100
synthetic, 90 training or 10 holdout patients with rows in the event table): such a pair goes to
``not_judged`` with the sizes found, and the mean is over the pairs scored (null where none was).

    .venv-mostly/bin/python benchmarks/peer_qa.py SPEC.json
"""
import datetime
import json
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd

warnings.filterwarnings("ignore")


def main(spec_path: str) -> None:
    from mostlyai import qa

    spec = json.loads(Path(spec_path).read_text())
    dirs = {k: Path(spec[k]) for k in ("train_dir", "holdout_dir", "synthetic_dir")}
    key = spec["key"]
    out: dict[str, float] = {}
    declined: dict[str, str] = {}

    def read(kind: str, table: str, columns: list[str]) -> pd.DataFrame:
        frame = pd.read_parquet(dirs[kind] / f"{table}.parquet", columns=columns)
        for col in frame.columns:  # the judge reads categories and dates as its users hold them
            sample = frame[col].dropna().head(1)
            if len(sample) and isinstance(sample.iloc[0], datetime.date):  # DATE columns arrive as date objects
                frame[col] = pd.to_datetime(frame[col])
            elif str(frame[col].dtype).startswith(("string", "category")):
                frame[col] = frame[col].astype(object)
            elif str(frame[col].dtype).lower().startswith(("int", "uint")):  # qa bins few-valued ints as categories
                frame[col] = frame[col].astype("float64")  # and then fails writing mixed int / str labels
        return frame

    ctx_cols = [key, *spec["context_columns"]]
    ctx = {k: read(k, spec["context_table"], ctx_cols) for k in dirs}
    for pair in spec["targets"]:
        cols = [pair["context_key"], *pair["columns"]]
        tgt = {k: read(k, pair["table"], cols) for k in dirs}
        with tempfile.TemporaryDirectory() as tmp:
            _, metrics = qa.report(
                syn_tgt_data=tgt["synthetic_dir"], trn_tgt_data=tgt["train_dir"], hol_tgt_data=tgt["holdout_dir"],
                syn_ctx_data=ctx["synthetic_dir"], trn_ctx_data=ctx["train_dir"], hol_ctx_data=ctx["holdout_dir"],
                ctx_primary_key=key, tgt_context_key=pair["context_key"], report_path=Path(tmp) / "report.html",
                max_sample_size_embeddings=spec.get("max_embeddings", 2000),
            )
        if metrics is None:  # qa's early exit: say what it saw
            sizes = {k: len(set(ctx[k][key]) & set(tgt[k][pair["context_key"]].dropna())) for k in dirs}
            declined[pair["table"]] = (
                "qa.report returned no metrics; patients with rows: "
                f"synthetic {sizes['synthetic_dir']} (qa needs 100), training {sizes['train_dir']} (90), "
                f"holdout {sizes['holdout_dir']} (10)")
            continue
        out[pair["table"]] = float(metrics.accuracy.overall)
    mean = sum(out.values()) / len(out) if out else None
    print(json.dumps({"accuracy": out, "mean": mean, **({"not_judged": declined} if declined else {})}))


if __name__ == "__main__":
    main(sys.argv[1])
