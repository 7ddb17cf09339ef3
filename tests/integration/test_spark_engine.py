"""The same schema and data through both engines, DuckDB and Spark (PySpark, local mode): equal results.

Every test computes the DuckDB result here and compares the Spark result with it: validation reports
(valid data, and data with bad casts, duplicate keys, orphans and rule violations), keyed pseudonyms and
the patient split (``synthmed prepare``), the rows a DP fit receives and their one-way marginals before
noise (``dp_mst``'s contribution caps, bounded on the engine), and the fidelity family (within 1e-9).
The engine is chosen as a user chooses it: ``--engine spark`` on the CLI, the master from
``$SYNTHMED_SPARK_MASTER``. One Spark session (``local[2]``) serves the module.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.conftest import SECRET

pytest.importorskip("pyspark", reason="pyspark is not installed: the Spark engine tests need the test extra (pip install -e '.[test]')")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java not on PATH, JAVA_HOME unset): scripts/install --test installs "
                "Debian's openjdk-17-jre-headless; the Spark engine tests need it", allow_module_level=True)

MASTER = "local[2]"
SCHEMA = "kr_claims"
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark session for the module; the CLI finds it through $SYNTHMED_SPARK_MASTER."""
    from synth.engine.spark import session

    saved = {k: os.environ.get(k) for k in ("SYNTHMED_SPARK_MASTER", "SYNTHMED_SPARK_PARTITIONS")}
    os.environ["SYNTHMED_SPARK_MASTER"] = MASTER
    os.environ["SYNTHMED_SPARK_PARTITIONS"] = "2"
    spark = session(MASTER)
    try:
        yield spark
    finally:
        spark.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo kr_claims population (200 patients) as Parquet; a broken copy (CSV and Parquet) with injected
    problems; a second population standing in for synthetic data."""
    import pyarrow.csv as pacsv

    from synth.demo_population import simulate

    root = tmp_path_factory.mktemp("engines")
    frames = simulate(200, seed=7)
    valid = root / "valid"
    valid.mkdir()
    for name, table in frames.items():
        pq.write_table(table, valid / f"{name}.parquet")

    broken = root / "broken"
    broken.mkdir()
    patients = frames["patients"].to_pylist()
    patients[3]["eligibility_end"] = patients[3]["eligibility_start"].replace(year=patients[3]["eligibility_start"].year - 1)
    claims = frames["claims"].to_pylist()
    claims[5]["total_cost"] = "12x"                      # bad cast (number)
    claims[6]["visit_date"] = "2021-13-45"               # bad cast (date)
    claims[7]["care_type"] = "surgery"                   # not a category of the schema
    claims[8]["patient_share"] = int(claims[8]["total_cost"]) + 1  # rule: patient_share_within_cost
    claims[9]["patient_id"] = "P-NOBODY"                 # orphan
    claims.append(dict(claims[10]))                      # duplicate primary key
    details = frames["claim_details"].to_pylist()
    details[2]["claim_id"] = "C-NOWHERE"                 # orphan under an orphan-free parent
    details[4]["treatment_code"] = "lower-case!"         # pattern
    for name, rows in (("patients", patients), ("claims", claims), ("claim_details", details)):
        text = pa.Table.from_pylist([{k: None if v is None else str(v) for k, v in r.items()} for r in rows])
        pacsv.write_csv(text, broken / f"{name}.csv")
    diagnoses = frames["diagnoses"].to_pylist()
    diagnoses.append(dict(diagnoses[0]))                 # duplicate primary key in a Parquet table
    pq.write_table(pa.Table.from_pylist(diagnoses, schema=frames["diagnoses"].schema), broken / "diagnoses.parquet")
    pq.write_table(frames["prescriptions"], broken / "prescriptions.parquet")

    synthetic = root / "synthetic"
    synthetic.mkdir()
    for name, table in simulate(120, seed=11).items():
        pq.write_table(table, synthetic / f"{name}.parquet")
    return {"root": root, "valid": valid, "broken": broken, "synthetic": synthetic}


def cli(*args: str) -> Any:
    """``synthmed ARGS`` in this process (so Spark runs on the module's session); exit code and output."""
    from synthmed.cli import app

    env = {"SYNTHMED_SECRET": SECRET, "SYNTHMED_SPARK_MASTER": MASTER}
    result = CliRunner(env=env).invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def both(*args: str) -> tuple[Any, Any]:
    return cli(*args, "--engine", "duckdb"), cli(*args, "--engine", "spark")


@pytest.mark.parametrize("which", ["valid", "broken"])
def test_validation_reports_are_identical(spark: Any, folders: dict[str, Path], which: str) -> None:
    duck, sprk = both("validate", str(folders[which]), "--schema", SCHEMA, "--json")
    expected = json.loads(duck.stdout)
    assert duck.exit_code == (0 if which == "valid" else 1), duck.stdout
    if which == "broken":  # the injected problems are found, so the comparison is not of two empty lists
        kinds = {p["kind"] for p in expected["problems"]}
        assert {"duplicate_key", "orphan_key", "rule_violation", "unknown_category"} <= kinds, kinds
        assert any(p["column"] == "total_cost" for p in expected["problems"]), expected["problems"]
        assert any(p["column"] == "visit_date" for p in expected["problems"]), expected["problems"]
    assert sprk.exit_code == duck.exit_code, sprk.stdout
    assert json.loads(sprk.stdout) == expected


def _rows(path: Path) -> tuple[pa.Schema, list[dict[str, Any]]]:
    """A Parquet file or a folder of part files: its schema and its rows in a canonical order."""
    table = pq.read_table(str(path))
    rows = sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return table.schema.remove_metadata(), rows


@pytest.fixture(scope="module")
def prepared(spark: Any, folders: dict[str, Path]) -> dict[str, Path]:
    """``synthmed prepare`` of the valid folder on each engine (keyed pseudonyms, keyed date shifts, the split)."""
    out = {}
    for engine in ("duckdb", "spark"):
        target = folders["root"] / f"prepared-{engine}"
        result = cli("prepare", str(folders["valid"]), "--schema", SCHEMA, "--output", str(target), "--seed", "5",
                     "--date-shift-days", "30", "--engine", engine)
        assert result.exit_code == 0, result.stdout
        out[engine] = target
    return out


def test_pseudonyms_and_split_are_identical(prepared: dict[str, Path]) -> None:
    from synth.pseudonymise import pseudonym
    from synth.split import SplitRecord

    duck, sprk = prepared["duckdb"], prepared["spark"]
    record = SplitRecord.from_json((duck / "split.json").read_text())
    assert record.n_train > 0 and record.n_holdout > 0
    assert SplitRecord.from_json((sprk / "split.json").read_text()) == record
    assert _rows(sprk / "split_keys.parquet") == _rows(duck / "split_keys.parquet")
    original = {r["patient_id"] for r in pq.read_table(str(prepared["duckdb"].parent / "valid" / "patients.parquet")).to_pylist()}
    for side in ("train", "holdout"):
        for table in ("patients", "claims", "claim_details", "diagnoses", "prescriptions"):
            expected = _rows(duck / side / f"{table}.parquet")
            assert _rows(sprk / side / f"{table}.parquet") == expected, f"{side}/{table}"
        ids = {r["patient_id"] for r in _rows(duck / side / "patients.parquet")[1]}
        assert ids and ids <= {pseudonym(SECRET.encode(), k) for k in original}  # HMAC-SHA256 of the real ids


def test_dp_bounded_rows_and_marginals_are_identical(spark: Any, prepared: dict[str, Path]) -> None:
    from data_schemas.io import load_schema
    from synth.engine import connection
    from synth.engine.local import bounded, marginals, to_local
    from synth.generators.dp_mst import DPMSTGenerator
    from synth.load import load_dataset

    schema = load_schema(SCHEMA)
    gen = DPMSTGenerator(max_rows_per_patient=4)
    caps, limits = gen.contribution_caps(schema), gen.count_limits(schema)
    salt = bytes(range(32))
    results = {}
    for engine in ("duckdb", "spark"):
        con = connection(engine)
        try:
            train = load_dataset(schema, prepared["duckdb"] / "train", con=con, namespace="train")
            kept = bounded(train, caps, salt=salt, count_limits=limits)
            counts = {t: marginals(kept, t) for t in caps}
            local = to_local(kept)
            rows = {t: sorted(local.to_arrow(t).to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))
                    for t in schema.tables}
            children = {t: sorted(local.con.execute(f"SELECT key, n FROM {rel}").fetchall()) for t, rel in local.child_counts.items()}
            sampled = bounded(train, caps, salt=salt, count_limits=limits, sample_rate=0.5, namespace="sampled")  # fit_patients
            kept = {t: sampled.con.execute(f"SELECT count(*) FROM {sampled.sql_name(t)}").fetchall()[0][0] for t in caps}
            patients = sorted(k for (k,) in sampled.con.execute(f"SELECT patient_id FROM {sampled.sql_name('patients')}").fetchall())
            results[engine] = (train.row_counts(), counts, rows, children, (patients, kept))
        finally:
            con.close()
    before, counts, rows, children, sample = results["duckdb"]
    assert sum(len(v) for v in rows.values()) < sum(before.values())  # the caps dropped rows: bounding was exercised
    assert sorted(children) == sorted(limits) and max(n for t in children for _, n in children[t]) > 4  # counted past the cap
    assert results["spark"][1] == counts
    assert results["spark"][2] == rows
    assert results["spark"][3] == children  # children per kept parent row, counted before the cap
    assert 0 < len(sample[0]) < len(rows["patients"]) and sample[1]["claims"] < len(rows["claims"])
    assert results["spark"][4] == sample  # the same Poisson sample of patients and the rows below them


def test_fidelity_is_equal_within_1e_9(spark: Any, folders: dict[str, Path], prepared: dict[str, Path]) -> None:
    real = prepared["duckdb"]
    duck, sprk = both("evaluate", "--schema", SCHEMA, "--real", str(real / "train"), "--synthetic", str(folders["synthetic"]),
                      "--holdout", str(real / "holdout"), "--metrics", "fidelity", "--json", "--quiet")
    assert duck.exit_code == 0, duck.stdout
    assert sprk.exit_code == 0, sprk.stdout
    expected = {r["name"]: r for r in json.loads(duck.stdout)["results"]}
    got = {r["name"]: r for r in json.loads(sprk.stdout)["results"]}
    assert sorted(got) == sorted(expected)
    scored = [n for n, r in expected.items() if r["value"] is not None]
    assert len(scored) >= 5, expected
    for name, want in expected.items():
        have = got[name]
        assert (have["value"] is None) == (want["value"] is None), name
        if want["value"] is not None:
            assert have["value"] == pytest.approx(want["value"], abs=TOLERANCE, rel=0), name
        assert have.get("skipped") == want.get("skipped"), name


def test_catalog_tables_by_prefix_validate_as_the_folder_does(spark: Any, folders: dict[str, Path]) -> None:
    """``table:<prefix>``: the Spark catalog's tables ``<prefix><table>`` (here global temporary views over the
    Parquet files, so no warehouse folder is written) give the rows and the problems that the folder gives."""
    for path in sorted(folders["valid"].glob("*.parquet")):
        spark.read.parquet(str(path)).createOrReplaceGlobalTempView(f"synthmed_ok_{path.stem}")
        source = folders["broken"] / path.name if path.stem == "diagnoses" else path  # one duplicate primary key
        spark.read.parquet(str(source)).createOrReplaceGlobalTempView(f"synthmed_dup_{path.stem}")
    folder = json.loads(cli("validate", str(folders["valid"]), "--schema", SCHEMA, "--json", "--engine", "duckdb").stdout)
    ok = cli("validate", "table:global_temp.synthmed_ok_", "--schema", SCHEMA, "--json", "--engine", "spark")
    assert ok.exit_code == 0, ok.stdout
    report = json.loads(ok.stdout)
    assert report["ok"] and report["rows"] == folder["rows"], report
    assert report["files"]["claims"] == ["global_temp.synthmed_ok_claims"]
    dup = cli("validate", "table:global_temp.synthmed_dup_", "--schema", SCHEMA, "--json", "--engine", "spark")
    assert dup.exit_code == 1, dup.stdout
    problems = json.loads(dup.stdout)["problems"]
    assert [(p["kind"], p["table"], p["count"]) for p in problems] == [("duplicate_key", "diagnoses", 1)], problems
    assert json.loads(dup.stdout)["rows"]["diagnoses"] == folder["rows"]["diagnoses"] + 1


def test_spearman_above_the_sample_size_runs_on_a_seeded_sample(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``SPEARMAN_MAX_ROWS`` a side is ranked on a seeded sample: DuckDB's reservoir, Spark's Bernoulli sample
    (Spark has no reservoir). The Spark statement must parse and run (a 1M-claim run once failed here), give the same
    value twice, and lie within sampling error of DuckDB's and of the exact value (rows stored in order of ``a``, so
    ranking the first rows instead of a sample would be far off)."""
    import duckdb
    import numpy as np

    from data_schemas.model import Column
    from evaluate.fidelity import pairs
    from synth.engine.spark import SparkConnection

    rng = np.random.default_rng(3)
    x = np.sort(rng.normal(size=20_000))  # sorted: the first rows are no sample (Spark's "N ROWS" takes them)
    table = pa.table({"a": x, "b": x + rng.normal(size=20_000)})
    pair = [(Column(name="a", type="numerical"), Column(name="b", type="numerical"))]
    duck = duckdb.connect()
    duck.register("t", table)
    exact = pairs._spearman(duck, "t", pair, set(), 20_000)[0]
    monkeypatch.setattr(pairs, "SPEARMAN_MAX_ROWS", 2_000)
    sampled_duck = pairs._spearman(duck, "t", pair, set(), 20_000)[0]
    con = SparkConnection(spark)
    con.register("spearman_t", table)
    first = pairs._spearman(con, "spearman_t", pair, set(), 20_000)[0]
    again = pairs._spearman(con, "spearman_t", pair, set(), 20_000)[0]
    assert first is not None and exact is not None and sampled_duck is not None
    assert first == again  # seeded
    assert first != exact  # it is a sample, not all rows
    assert abs(first - exact) < 0.05 and abs(first - sampled_duck) < 0.07



def test_a_failed_spark_write_is_one_line_with_its_cause(spark: Any, tmp_path: Path) -> None:
    """A write the JVM cannot do (its folder's parent is a file) reaches the user as one line saying why, not py4j's
    "An error occurred while calling" over a Java stack trace (a 10M-claim prepare once ended on such a trace, its
    cause scrolled away)."""
    from synth.engine.spark import SparkConnection, SparkQueryError, write_parquet_folder

    con = SparkConnection(spark)
    con.register("written__t", pa.table({"a": [1, 2, 3]}))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SparkQueryError) as caught:
        write_parquet_folder(con, "written", "t", ["a"], blocker / "t.parquet")
    message = str(caught.value)
    assert "\n" not in message
    assert "An error occurred while calling" not in message
    assert "a-file" in message and "table t " in message  # the path and table at fault
    write_parquet_folder(con, "written", "t", ["a"], tmp_path / "ok.parquet")  # the same call where it can write
    assert pq.read_table(tmp_path / "ok.parquet").num_rows == 3


def test_a_failed_arrow_fetch_is_one_line_and_pair_tables_stay_on_the_engine(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relation's fetch (``con.sql(...).to_arrow_table()``) that fails is one SparkQueryError line: a 10M-claim
    evaluate once ended on py4j's "internal error" when the pair trends streamed a whole table to the driver, over
    Spark's 1 GiB result limit. The pair tables are now counted on Spark (one grouped statement per side), and
    equal DuckDB's streamed counts."""
    import duckdb

    from data_schemas.model import Column
    from evaluate.fidelity import pairs
    from synth.engine.spark import SparkConnection, SparkQueryError

    con = SparkConnection(spark)
    with pytest.raises(SparkQueryError) as caught:
        con.sql("SELECT raise_error('boom at row 7') AS x").to_arrow_table()
    assert "\n" not in str(caught.value) and "boom at row 7" in str(caught.value)
    assert "An error occurred while calling" not in str(caught.value)

    table = pa.table({"cost": [1.5, 2.0, None, 9.75, 4.0, 4.0] * 50, "kind": ["in", "out", None, "in", "er", "in"] * 50,
                      "urgent": [True, False, None, True, True, False] * 50})
    cols = [Column(name="cost", type="numerical"), Column(name="kind", type="categorical"), Column(name="urgent", type="boolean")]
    pair_list = [(cols[0], cols[1]), (cols[0], cols[2]), (cols[1], cols[2])]
    edges = {"cost": (pairs.bin_edges(1.5, 9.75), pairs.bin_edges(1.0, 9.0))}
    duck = duckdb.connect()
    duck.register("pt_real", table)
    duck.register("pt_syn", table.slice(0, 200))
    monkeypatch.setattr(pairs, "COUNT_ON_ENGINE", None)  # the engine decides: streamed on DuckDB, grouped on Spark
    want = pairs.contingency_pairs(duck, "pt_real", "pt_syn", pair_list, edges)
    con.register("pt_real", table)
    con.register("pt_syn", table.slice(0, 200))
    streamed = pairs._stream_counts
    monkeypatch.setattr(pairs, "_stream_counts", lambda *a: pytest.fail("rows streamed to the driver on Spark"))
    got = pairs.contingency_pairs(con, "pt_real", "pt_syn", pair_list, edges)
    assert streamed is not None and sorted(got) == sorted(want)
    for key, (tvd, assoc) in want.items():  # the dictionaries' order may differ: sums in another order, to the last bit
        assert got[key][0] == pytest.approx(tvd, abs=1e-12) and got[key][1] == pytest.approx(assoc, abs=1e-12), key


def test_local_mode_gives_the_driver_half_the_machine(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In local mode the driver's heap caches every table and shuffle: at Spark's 2g (and 4g), a 10M-claim prepare
    died of "Java heap space". The default is half the machine there (as DuckDB's budget), 2g on a cluster, and
    ``SYNTHMED_SPARK_DRIVER_MEMORY`` wins everywhere; the session this module runs on got the local default."""
    from synth.engine.spark import driver_memory

    half = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2 // 2**20
    if not os.environ.get("SYNTHMED_SPARK_DRIVER_MEMORY"):
        assert spark.sparkContext.getConf().get("spark.driver.memory") == f"{half}m"
    monkeypatch.delenv("SYNTHMED_SPARK_DRIVER_MEMORY", raising=False)
    assert driver_memory("local[2]") == driver_memory("local[*]") == f"{half}m"
    assert driver_memory("spark://127.0.0.1:7077") == "2g"
    monkeypatch.setenv("SYNTHMED_SPARK_DRIVER_MEMORY", "6g")
    assert driver_memory("local[2]") == driver_memory("spark://127.0.0.1:7077") == "6g"
