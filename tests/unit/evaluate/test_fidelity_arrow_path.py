"""The Arrow path (typed Parquet read once, counted on integer codes) gives what the SQL path gives.

The loader reads typed Parquet straight into Arrow (no staging copy, no cast); the column shapes and the
pair trends then count dictionary codes with numpy. Both must equal the SQL path on the same data: the
validation report, the tables' rows, and every metric value and detail.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import synth.load as load
from data_schemas.model import Schema
from evaluate.context import load_context
from evaluate.fidelity.columns import column_shapes
from evaluate.fidelity.pairs import column_pair_trends

SCHEMA = Schema.model_validate({
    "name": "arrow_path",
    "patient": {"table": "claims", "column": "claim_id"},
    "tables": {"claims": {
        "primary_key": "claim_id",
        "columns": {
            "claim_id": {"type": "id", "privacy": "direct_identifier"},
            "day": {"type": "datetime", "unit": "date"},
            "stamp": {"type": "datetime"},
            "cost": {"type": "numerical"},
            "stay": {"type": "numerical", "integer": True},
            "kind": {"type": "categorical", "values": ["in", "out", "er", "day"]},
            "code": {"type": "code", "pattern": "^[A-Z][0-9]{2}$"},
            "urgent": {"type": "boolean"},
        },
        "rules": [{"name": "stay_not_negative", "check": "stay >= 0"}],
    }},
})


def _frame(n: int, seed: int, shift: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    cost = np.round(np.exp(rng.normal(7 + shift, 1.0, n)), 2)
    cost[rng.random(n) < 0.05] = np.nan
    stay = rng.poisson(3 + shift, n).astype(np.int64)
    kinds = np.array(["in", "out", "er", "day"])[rng.integers(0, 4 if shift == 0 else 3, n)]
    codes = np.array([f"{c}{i:02d}" for c in "ABCDE" for i in range(40)])[np.minimum(rng.geometric(0.03, n), 199)]
    if shift:
        codes[:7] = "Z99"  # a code the real side never has
    days = (dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 700, n))
    stamps = np.datetime64("2020-01-01T00:00:00") + rng.integers(0, 10**8, n).astype("timedelta64[s]")
    null = rng.random(n) < 0.1
    return pa.table({
        "claim_id": [f"c{seed}-{i}" for i in range(n)],
        "day": pa.array(list(days), pa.date32()),
        "stamp": pa.array(stamps.astype("datetime64[ns]"), pa.timestamp("ns")),
        "cost": pa.array(cost, pa.float64()),
        "stay": pa.array(stay, pa.int32(), mask=rng.random(n) < 0.03),
        "kind": pa.array(kinds, mask=null),
        "code": pa.array(codes, mask=rng.random(n) < 0.2),
        "urgent": pa.array(rng.random(n) < 0.2 + shift / 10, mask=rng.random(n) < 0.05),
    })


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("arrow_path")
    for name, seed, shift in (("real", 1, 0.0), ("synthetic", 2, 0.4)):
        (root / name).mkdir()
        table = _frame(3000, seed, shift)
        pq.write_table(table.slice(0, 1800), root / name / "claims.parquet", row_group_size=500)
    # a second file of the synthetic side, written as a lake engine writes it: a folder of part files
    part_dir = root / "synthetic_parts" / "claims.parquet"
    part_dir.mkdir(parents=True)
    syn = _frame(3000, 2, 0.4)
    pq.write_table(syn.slice(0, 900), part_dir / "part-00000.parquet")
    pq.write_table(syn.slice(900, 900), part_dir / "part-00001.parquet")
    (part_dir / "_SUCCESS").write_text("")
    return root / "real", root / "synthetic"


def _results(ctx: Any) -> list[Any]:
    return [*column_shapes(ctx), *column_pair_trends(ctx)]


def _assert_same(fast: list[Any], slow: list[Any]) -> None:
    assert [r.name for r in fast] == [r.name for r in slow]
    for a, b in zip(fast, slow):
        assert (a.value is None) == (b.value is None), a.name
        if a.value is not None:
            assert a.value == pytest.approx(b.value, abs=1e-9), a.name
        assert len(a.details) == len(b.details)
        for da, db in zip(a.details, b.details):
            assert da.keys() == db.keys()
            for key in da:
                if isinstance(da[key], float):
                    assert da[key] == pytest.approx(db[key], abs=1e-9), (a.name, key)
                else:
                    assert da[key] == db[key], (a.name, key, da.get("column"))
        assert a.skipped == b.skipped and a.notes == b.notes


def test_arrow_path_equals_sql_path(folders: tuple[Path, Path]) -> None:
    real, synthetic = folders
    ctx = load_context(SCHEMA, real, synthetic)
    assert set(ctx.train.arrow) == set(ctx.synthetic.arrow) == {"claims"}  # the fast path was taken
    fast = _results(ctx)
    ctx.train.arrow.clear()
    ctx.synthetic.arrow.clear()
    slow = _results(ctx)
    _assert_same(fast, slow)
    shapes = {d["column"]: d for d in fast[0].details}
    assert shapes["code"]["frequencies"]["categories"][:1] and 0 < fast[0].value < 1


def test_threads_do_not_change_a_value(folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluate.fidelity.parallel import parallel_map, workers

    real, synthetic = folders
    ctx = load_context(SCHEMA, real, synthetic)
    monkeypatch.setenv("SYNTHMED_THREADS", "3")
    assert workers() == 3
    assert parallel_map(lambda x: x * x, range(7)) == [0, 1, 4, 9, 16, 25, 36]  # results in input order
    threaded = _results(ctx)
    monkeypatch.setenv("SYNTHMED_THREADS", "1")
    assert workers() == 1
    _assert_same(threaded, _results(ctx))


def test_parquet_part_folder_is_one_table(folders: tuple[Path, Path]) -> None:
    real, _ = folders
    parts = real.parent / "synthetic_parts"
    ctx = load_context(SCHEMA, real, parts)
    assert ctx.reports["synthetic"].files["claims"] == ["claims.parquet/part-00000.parquet", "claims.parquet/part-00001.parquet"]
    assert ctx.synthetic.num_rows("claims") == 1800
    whole = load_context(SCHEMA, real, real.parent / "synthetic")
    _assert_same(_results(ctx), _results(whole))


def test_typed_read_reports_what_the_staged_read_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad values (a code off its pattern, a duplicate key, a broken rule) are found and sampled alike."""
    table = _frame(400, 3, 0.0)
    codes = table.column("code").to_pylist()
    codes[5] = "bad"
    ids = table.column("claim_id").to_pylist()
    ids[9] = ids[8]
    stay = table.column("stay").to_pylist()
    stay[11] = -4
    kinds = table.column("kind").to_pylist()
    kinds[13] = "zz"
    table = table.set_column(6, "code", pa.array(codes)).set_column(0, "claim_id", pa.array(ids))
    table = table.set_column(4, "stay", pa.array(stay, pa.int32())).set_column(5, "kind", pa.array(kinds))
    (tmp_path / "d").mkdir()
    pq.write_table(table, tmp_path / "d" / "claims.parquet")
    fast_ds, fast = load.read_dataset(SCHEMA, tmp_path / "d")
    assert "claims" in fast_ds.arrow
    monkeypatch.setattr(load, "_typed_parquet", lambda *a, **k: None)
    slow_ds, slow = load.read_dataset(SCHEMA, tmp_path / "d")
    assert not slow_ds.arrow
    assert fast.to_dict() == slow.to_dict()
    assert {p.kind for p in fast.problems} == {"bad_code", "duplicate_key", "rule_violation", "unknown_category"}
    cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in SCHEMA.tables["claims"].columns)  # NaN == NaN as text
    q = f"SELECT {cols}, typeof(cost), typeof(stay), typeof(stamp) FROM {{}} ORDER BY claim_id, day, stamp"
    assert fast_ds.con.execute(q.format(fast_ds.sql_name("claims"))).fetchall() == \
        slow_ds.con.execute(q.format(slow_ds.sql_name("claims"))).fetchall()


def test_text_needing_trim_takes_the_staged_path(tmp_path: Path) -> None:
    """' in ' and '' are read as 'in' and missing by the staged path, so such files are not read typed."""
    table = _frame(50, 4, 0.0)
    kinds = table.column("kind").to_pylist()
    kinds[0], kinds[1] = " in ", ""
    table = table.set_column(5, "kind", pa.array(kinds))
    (tmp_path / "d").mkdir()
    pq.write_table(table, tmp_path / "d" / "claims.parquet")
    dataset, report = load.read_dataset(SCHEMA, tmp_path / "d")
    assert report.ok and not dataset.arrow
    counts = dataset.con.execute(f"SELECT count(*) FILTER (WHERE kind = ''), count(*) FILTER (WHERE kind = ' in ') "
                                 f"FROM {dataset.sql_name('claims')}").fetchall()
    assert counts == [(0, 0)]


def test_arrow_estimate_is_close_to_what_is_held(folders: tuple[Path, Path]) -> None:
    """The footer-only estimate that decides between the paths is within 25% of the Arrow table's real size."""
    real, _ = folders
    table = SCHEMA.tables["claims"]
    files = load.match_files(table, real)
    held = load._typed_parquet(table, files, real)
    assert held is not None
    assert 0.75 * held.nbytes <= load.arrow_bytes_estimate(table, files) <= 1.25 * held.nbytes


def test_tables_past_the_memory_share_are_staged_in_duckdb(folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow tables live outside DuckDB's budget and never spill, so only a share of it is read that way: a table
    that would pass the share is staged in DuckDB instead (said in the report), with the same report and rows;
    the share counts every Arrow table still alive in the process and frees a table's bytes when it goes."""
    import gc

    real, _ = folders
    table = SCHEMA.tables["claims"]
    need = load.arrow_bytes_estimate(table, load.match_files(table, real))
    monkeypatch.setenv("SYNTHMED_MEMORY_LIMIT", "1GB")
    monkeypatch.setattr(load, "ARROW_SHARE", 10**9 // (need * 3 // 2))  # room for one copy of the table, not two
    gc.collect()
    assert load._arrow_held[0] == 0
    first_ds, first = load.read_dataset(SCHEMA, real)
    assert "claims" in first_ds.arrow and load._arrow_held[0] == first_ds.arrow["claims"].nbytes
    second_ds, second = load.read_dataset(SCHEMA, real)
    assert not second_ds.arrow  # the staged path: DuckDB holds it, under its budget
    assert [n for n in second.notes if "staged in DuckDB" in n and "claims" in n and "already held" in n]
    assert not [n for n in first.notes if "staged in DuckDB" in n]
    assert {**first.to_dict(), "notes": []} == {**second.to_dict(), "notes": []}
    cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in [*table.columns, "__file", "__row"])
    q = f'SELECT {cols} FROM "data"."__typed_claims" ORDER BY __row'
    assert first_ds.con.execute(q).fetchall() == second_ds.con.execute(q).fetchall()
    first_ds.con.close()
    del first_ds
    gc.collect()
    assert load._arrow_held[0] == 0  # the first copy is gone: a third read fits again
    third_ds, _ = load.read_dataset(SCHEMA, real)
    assert "claims" in third_ds.arrow


@pytest.mark.parametrize("dense_cells", [1 << 21, 60])
def test_pairs_counted_on_the_engine_equal_the_streamed_counts(folders: tuple[Path, Path], dense_cells: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark's way (GROUP BY GROUPING SETS on codes made in SQL) gives the streamed numpy tables exactly, dense
    and, with a small dense limit, sparse: the digitize bins, booleans, categories and missing values alike."""
    from evaluate.fidelity import pairs

    real, synthetic = folders
    ctx = load_context(SCHEMA, real, synthetic)
    ctx.train.arrow.clear()
    ctx.synthetic.arrow.clear()
    monkeypatch.setattr(pairs, "DENSE_CELLS", dense_cells)
    monkeypatch.setattr(pairs, "COUNT_ON_ENGINE", False)
    streamed = column_pair_trends(ctx)
    monkeypatch.setattr(pairs, "COUNT_ON_ENGINE", True)
    calls: list[str] = []
    grouped = pairs._grouped_counts
    monkeypatch.setattr(pairs, "_grouped_counts", lambda *a: calls.append(a[1]) or grouped(*a))
    on_engine = column_pair_trends(ctx)
    assert len(calls) == 2  # one statement per side
    _assert_same(on_engine, streamed)
    values = [d["value"] for d in on_engine[0].details if d["metric"] == "contingency_similarity"]
    assert len(values) >= 10 and min(values) < 0.99


def _typed(table: pa.Table) -> pa.Table:
    """A frame in exactly the schema's types (microsecond stamps), as the streamed typed path takes it."""
    return table.set_column(2, "stamp", table.column("stamp").cast(pa.timestamp("us")))


def _rows(dataset: Any, table: str = "claims") -> list[tuple[Any, ...]]:
    cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in [*SCHEMA.tables[table].columns, "__file", "__row"])
    return dataset.con.execute(f'SELECT {cols} FROM "data"."__typed_{table}" ORDER BY __file, __row').fetchall()


def _stages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on the staged path: the tables it copies file by file."""
    staged: list[str] = []
    stage = load._stage_file
    monkeypatch.setattr(load, "_stage_file", lambda con, ns, table, *a: staged.append(table.name) or stage(con, ns, table, *a))
    return staged


def test_typed_parquet_past_the_share_streams_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed Parquet too large for Arrow goes straight into DuckDB (no raw copy to cast from): the same rows,
    ``__file``, ``__row`` and report as the Arrow path and as the staged path, over a part folder, with text
    the staged path trims (' in ' is 'in', '' is missing), duplicate keys and a broken rule."""
    frame = _typed(_frame(2400, 3, 0.0))
    kinds, ids, stay = frame.column("kind").to_pylist(), frame.column("claim_id").to_pylist(), frame.column("stay").to_pylist()
    kinds[5], kinds[6] = " in ", ""
    ids[1500] = ids[3]
    stay[7] = -2
    frame = frame.set_column(5, "kind", pa.array(kinds)).set_column(0, "claim_id", pa.array(ids))
    frame = frame.set_column(4, "stay", pa.array(stay, pa.int32()))
    parts = tmp_path / "d" / "claims.parquet"
    parts.mkdir(parents=True)
    pq.write_table(frame.slice(0, 1400), parts / "part-0.parquet", row_group_size=300)
    pq.write_table(frame.slice(1400), parts / "part-1.parquet", row_group_size=300)
    staged = _stages(monkeypatch)
    monkeypatch.setattr(load, "_fits_in_memory", lambda *a: False)
    streamed_ds, streamed = load.read_dataset(SCHEMA, tmp_path / "d")
    assert not streamed_ds.arrow and staged == []  # neither Arrow nor a staged copy
    assert streamed_ds.con.execute("SELECT database_name, schema_name, table_name, estimated_size FROM duckdb_tables() "
                                   "WHERE table_name LIKE '%claims'").fetchall() == [("__packed", "data", "__typed_claims", 2400)]
    monkeypatch.setattr(load, "_typed_columns", lambda *a: False)
    copied_ds, copied = load.read_dataset(SCHEMA, tmp_path / "d")
    assert staged == ["claims", "claims"]
    assert streamed.to_dict() == copied.to_dict()
    assert {p.kind for p in streamed.problems} == {"duplicate_key", "rule_violation"}
    assert _rows(streamed_ds) == _rows(copied_ds)
    assert len(_rows(streamed_ds)) == 2400 and _rows(streamed_ds)[1][-2:] == ("claims.parquet/part-0.parquet", "2")
    assert streamed_ds.con.execute(
        "SELECT list(kind ORDER BY __row) FROM \"data\".\"__typed_claims\" WHERE __row IN (6, 7) AND __file LIKE '%part-0%'"
    ).fetchall() == [(["in", None],)]


def test_arrow_and_streamed_paths_hold_the_same_rows(folders: tuple[Path, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Where both can read a table (no text to trim), the streamed table equals the Arrow table row for row."""
    (tmp_path / "d").mkdir()
    pq.write_table(_typed(_frame(1500, 4, 0.2)), tmp_path / "d" / "claims.parquet", row_group_size=400)
    arrow_ds, arrow = load.read_dataset(SCHEMA, tmp_path / "d")
    assert "claims" in arrow_ds.arrow
    monkeypatch.setattr(load, "_fits_in_memory", lambda *a: False)
    streamed_ds, streamed = load.read_dataset(SCHEMA, tmp_path / "d")
    assert not streamed_ds.arrow
    assert arrow.to_dict() == streamed.to_dict() and _rows(arrow_ds) == _rows(streamed_ds)
    assert streamed_ds.con.execute('SELECT typeof(stay), typeof(stamp) FROM "data"."claims" LIMIT 1').fetchall() == \
        [("BIGINT", "TIMESTAMP")]


@pytest.mark.parametrize(("column", "values", "kind"), [
    ("stamp", pa.array(["2021-01-01 10:00:00"] * 30), "staged"),  # text to parse
    ("stamp", pa.array([dt.datetime(2021, 1, 1)] * 30, pa.timestamp("ns")), "staged"),  # another unit
    ("stay", pa.array(list(range(30)), pa.uint64()), "staged"),  # may not fit BIGINT
    ("cost", pa.array(list(range(30)), pa.int64()), "streamed"),  # DOUBLE from integers, cast as the staged path
])
def test_only_files_in_the_schemas_types_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str,
                                                values: pa.Array, kind: str) -> None:
    frame = _typed(_frame(30, 5, 0.0))
    frame = frame.set_column(frame.schema.get_field_index(column), column, values)
    (tmp_path / "d").mkdir()
    pq.write_table(frame, tmp_path / "d" / "claims.parquet")
    staged = _stages(monkeypatch)
    monkeypatch.setattr(load, "_fits_in_memory", lambda *a: False)
    dataset, report = load.read_dataset(SCHEMA, tmp_path / "d")
    assert report.ok, report.problems
    assert staged == (["claims"] if kind == "staged" else [])
    assert dataset.num_rows("claims") == 30


def test_a_file_failing_midway_is_one_problem_and_none_of_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A footer that reads but a data page that does not: the file is named in one problem and none of its rows
    stay, not even the slices that landed before the failure (the staged path leaves such a file out the same
    way); the other file's rows do."""
    frame = _typed(_frame(4000, 6, 0.0))
    parts = tmp_path / "d" / "claims.parquet"
    parts.mkdir(parents=True)
    pq.write_table(frame.slice(0, 2000), parts / "part-0.parquet")
    bad = parts / "part-1.parquet"
    pq.write_table(frame.slice(2000), bad, row_group_size=500)
    page = pq.ParquetFile(bad).metadata.row_group(3).column(0).data_page_offset + 40
    data = bytearray(bad.read_bytes())
    data[page:page + 200] = b"\xff" * 200
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(load, "_fits_in_memory", lambda *a: False)
    monkeypatch.setattr(load, "STREAM_ROWS", 500)
    monkeypatch.setattr(load, "PACK_BATCHES", 1)  # row groups 0-2 of the bad file land before 3 fails
    assert load._typed_columns(SCHEMA.tables["claims"], [parts / "part-0.parquet", bad])
    dataset, report = load.read_dataset(SCHEMA, tmp_path / "d")
    assert [(p.kind, p.file) for p in report.problems] == [("unreadable_file", "claims.parquet/part-1.parquet")]
    assert report.problems[0].message.startswith("cannot be read as Parquet")
    assert dataset.con.execute('SELECT count(*), min(__file), max(__file) FROM "data"."__typed_claims"').fetchall() == \
        [(2000, "claims.parquet/part-0.parquet", "claims.parquet/part-0.parquet")]


def test_integers_from_text_keep_every_digit(tmp_path: Path) -> None:
    """An integer column read from CSV takes the integer itself, not its DOUBLE (2**53 + 1 would become 2**53 and
    could turn distinct ids into duplicates); '4.0' is 4, '2.5' does not parse."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "claims.csv").write_text(
        "claim_id,day,stamp,cost,stay,kind,code,urgent\n"
        + "".join(f"c{i},2020-01-0{i},2020-01-01 10:00:00,1.5,{v},in,A01,true\n"
                  for i, v in enumerate(["9007199254740993", "9007199254740992", "4.0", "2.5"], start=1)))
    dataset, report = load.read_dataset(SCHEMA, tmp_path / "d")
    assert [(p.kind, p.column, p.rows, p.values) for p in report.problems] == \
        [("unparsable_value", "stay", (4,), ("2.5",))]
    assert dataset.con.execute(f"SELECT stay FROM {dataset.sql_name('claims')} ORDER BY claim_id").fetchall() == \
        [(9007199254740993,), (9007199254740992,), (4,), (None,)]


def test_streamed_tables_are_held_compressed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each slice is compressed as it lands: the streamed table takes well under a third of the memory of the same rows
    in an ordinary (uncompressed) DuckDB table, which is what lets 100M claims stay within the budget."""
    (tmp_path / "d").mkdir()
    pq.write_table(_typed(_frame(300_000, 7, 0.0)), tmp_path / "d" / "claims.parquet")
    monkeypatch.setattr(load, "_fits_in_memory", lambda *a: False)
    monkeypatch.setattr(load, "STREAM_ROWS", 50_000)
    monkeypatch.setattr(load, "PACK_BATCHES", 2)
    dataset, report = load.read_dataset(SCHEMA, tmp_path / "d")
    assert report.ok

    def held() -> int:
        return dataset.con.execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'").fetchall()[0][0]

    packed = held()
    dataset.con.execute('CREATE TABLE memory.main.plain AS SELECT * FROM "data"."__typed_claims"')
    assert 0 < packed < (held() - packed) / 3  # 5.5 against 28.6 MB here; 14.5 MB with no CHECKPOINT per slice
