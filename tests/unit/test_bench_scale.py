"""benchmarks/bench_scale.py's chunked writer: chunks of patients appended to one Parquet file per table,
ids kept unique across chunks and every child row pointing at a written parent."""
from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.benchmark_module import load_benchmark


def _bench() -> object:
    return load_benchmark("bench_scale")


def test_chunks_keep_ids_unique_and_children_attached(tmp_path: Path) -> None:
    counts = _bench().generate(1500, tmp_path, chunk_patients=40)  # type: ignore[attr-defined]
    tables = {name: pq.read_table(tmp_path / f"{name}.parquet") for name in counts}
    assert tables["patients"].num_rows == round(1500 / 14.1) and counts["claims"] == tables["claims"].num_rows
    assert pq.ParquetFile(tmp_path / "claims.parquet").num_row_groups == 3  # three chunks appended, not rewritten
    for name, key in (("patients", "patient_id"), ("claims", "claim_id"), ("claim_details", "detail_id")):
        column = tables[name].column(key)
        assert pc.count_distinct(column).as_py() == len(column), f"{name}.{key} repeats across chunks"
    assert pc.all(pc.is_in(tables["claims"]["patient_id"], value_set=tables["patients"]["patient_id"])).as_py()
    assert pc.all(pc.is_in(tables["claim_details"]["claim_id"], value_set=tables["claims"]["claim_id"])).as_py()
    assert _bench().generate(1, tmp_path) == counts  # type: ignore[attr-defined]  # cached: rows.json, not redrawn
