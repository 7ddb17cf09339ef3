"""A large cohort is sampled batch by batch (``Generator.sample_batch_patients``): keys stay unique and every
key resolves across batches, reference tables are released once, and the batches make one valid cohort."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_schemas.io import load_schema
from synth.generators import get_generator
from synth.generators.base import _batch_sizes
from synth.load import frames_to_dataset
from synth.split import split_patients
from tests.unit.synth.test_links import SCHEMA as LINKS_SCHEMA

SCHEMA = LINKS_SCHEMA  # people, their visits (a self-reference, a reference table) and events (secondary keys, a free id)


def _training_frames(n: int = 240, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    people = pd.DataFrame({"pid": [f"p{i}" for i in range(n)], "sex": rng.choice(["M", "F"], n)})
    visits, events = [], []
    for i in range(n):
        days = np.sort(rng.integers(0, 300, rng.integers(1, 5)))
        for j, d in enumerate(days):
            vid = f"v{i}-{j}"
            visits.append({"pid": f"p{i}", "vid": vid, "day": pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(d)),
                           "previous": f"v{i}-{j - 1}" if j else None, "payer": rng.choice(["x", "y", None])})
            for _ in range(int(rng.integers(0, 3))):
                events.append({"pid": f"p{i}", "day": visits[-1]["day"], "vid": vid, "note": rng.choice([vid, None]),
                               "staff": f"s{len(events)}" if rng.random() < 0.3 else None})
    return {"people": people, "visits": pd.DataFrame(visits), "events": pd.DataFrame(events),
            "payers": pd.DataFrame({"id": ["x", "y"], "name": ["payer x", "payer y"]})}


def test_batch_sizes_cover_n_evenly() -> None:
    assert _batch_sizes(100, 40) == [34, 33, 33]
    assert _batch_sizes(40, 40) == [40]
    assert _batch_sizes(1, 50_000) == [1]
    assert sum(_batch_sizes(123_457, 50_000)) == 123_457


def test_batches_make_one_valid_cohort_with_reference_rows_once() -> None:
    train, report = frames_to_dataset(SCHEMA, _training_frames())
    assert report.ok
    gen = get_generator("cart", min_leaf=5).fit(train)
    gen.sample_batch_patients = 30
    said: list[str] = []
    cohort = gen.sample(100, seed=2, progress=said.append)  # validated (keys unique, every key resolves) on the way
    assert [m for m in said if m.startswith("sampling patients")] == [
        "sampling patients 1-25 of 100 (batch 1 of 4)",
        "sampling patients 26-50 of 100 (batch 2 of 4)", "sampling patients 51-75 of 100 (batch 3 of 4)",
        "sampling patients 76-100 of 100 (batch 4 of 4)",
    ]
    con = cohort.con
    counts = cohort.row_counts()
    assert counts["people"] == 100 and counts["payers"] == 2  # the reference rows once, not once per batch
    per_batch = con.execute(f"SELECT count(DISTINCT p.pid) FROM {cohort.sql_name('people')} p "
                            f"JOIN {cohort.sql_name('visits')} v ON v.pid = p.pid").fetchall()[0][0]
    assert per_batch > 80  # visits of patients of every batch point at their own patients
    chained = con.execute(f"SELECT count(*) FROM {cohort.sql_name('visits')} v JOIN {cohort.sql_name('visits')} w "
                          f"ON v.previous = w.vid WHERE v.pid <> w.pid").fetchall()[0][0]
    assert chained == 0  # a previous visit is the same patient's, also in later batches
    staff = con.execute(f"SELECT count(staff), count(DISTINCT staff) FROM {cohort.sql_name('events')}").fetchall()[0]
    assert staff[0] == staff[1]  # free ids stay unique across batches
    unbatched = get_generator("cart", min_leaf=5).fit(train).sample(100, seed=2)
    assert abs(counts["visits"] - unbatched.row_counts()["visits"]) < 0.3 * counts["visits"]


@pytest.mark.parametrize("generator", ["dp_mst", "independent"])
def test_demo_schema_batches(generator: str) -> None:
    from synth.demo_population import simulate

    kr = load_schema("kr_claims")
    data, report = frames_to_dataset(kr, simulate(200, seed=4))
    assert report.ok
    train = split_patients(data, seed=1)[0]
    gen = get_generator(generator, **({"epsilon": 8.0} if generator == "dp_mst" else {})).fit(train)
    gen.sample_batch_patients = 25
    cohort = gen.sample(60, seed=1)
    counts = cohort.row_counts()
    assert counts["patients"] == 60 and counts["claims"] > 60
    orphans = cohort.con.execute(f"SELECT count(*) FROM {cohort.sql_name('claim_details')} d WHERE d.claim_id NOT IN "
                                 f"(SELECT claim_id FROM {cohort.sql_name('claims')})").fetchall()[0][0]
    assert orphans == 0


def test_written_batch_by_batch_the_cohort_is_the_sampled_one(tmp_path) -> None:
    """``write_cohort`` over ``sample_batches`` writes what ``sample`` holds in memory, reference rows once;
    a batch that fails on the way leaves the output folder as it was."""
    import duckdb

    from synth.errors import DataValidationError
    from synth.spool import write_cohort

    train, report = frames_to_dataset(SCHEMA, _training_frames())
    assert report.ok
    gen = get_generator("cart", min_leaf=5).fit(train)
    gen.sample_batch_patients = 30
    out = tmp_path / "cohort"
    written = write_cohort(SCHEMA, gen.sample_batches(100, seed=2), out)
    whole = gen.sample(100, seed=2)
    assert written.rows == whole.row_counts() and written.rows["payers"] == 2 and written.n_patients == 100
    for table in SCHEMA.tables:
        on_disk = duckdb.sql(f"SELECT * FROM read_parquet('{out / (table + '.parquet')}') ORDER BY ALL").fetchall()
        assert on_disk == whole.con.sql(f"SELECT * FROM {whole.sql_name(table)} ORDER BY ALL").fetchall(), table
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def failing():
        batches = gen.sample_batches(100, seed=5)
        yield next(batches)
        raise DataValidationError(report)

    with pytest.raises(DataValidationError):
        write_cohort(SCHEMA, failing(), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, nothing half written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]  # and no temporary folder left
