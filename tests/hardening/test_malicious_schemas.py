"""A schema is data, not code: hostile rules are refused before DuckDB runs anything, and DuckDB is locked down.

Each attack from issue 13 is replayed through the CLI: the rule that printed /etc/passwd, stacked
statements that wrote a file and rewrote every review through ATTACH, a rule that hung on range(1e12).
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from data_schemas.errors import SchemaError
from data_schemas.io import parse_schema
from data_schemas.rules import ALLOWED_FUNCTIONS, RuleRefusedError, compile_check
from synth.errors import CheckTimeoutError
from synth.load import connect, interrupt_after

BASE = """
name: mini
patient: {table: people, column: id}
tables:
  people:
    primary_key: id
    columns:
      id: {type: id}
      born: {type: datetime, unit: date}
      died: {type: datetime, unit: date}
    rules:
      - name: evil
        check: "%s"
"""


def _schema_file(tmp_path: Path, check: str) -> Path:
    path = tmp_path / "evil.yaml"
    path.write_text(BASE % check.replace('"', '\\"'))
    return path


def _data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "people.csv").write_text("id,born,died\n1,1950-01-01,2020-01-01\n2,1960-01-01,\n")
    return folder


ATTACKS = {
    "read_text exfiltration": ("error((SELECT content FROM read_text('/etc/passwd'))) IS NULL", "error()"),
    "table function": ("(SELECT count(*) FROM read_csv('/etc/passwd')) > 0", "subquery"),
    "stacked COPY": ("TRUE), TRUE); COPY (SELECT 42) TO 'pwned.csv'; SELECT coalesce((TRUE", "not one SQL expression"),
    "stacked ATTACH and UPDATE": (
        "TRUE), TRUE); ATTACH 'STORE/catalog.duckdb' AS cat; UPDATE cat.reviews SET decision='approve'; "
        "SELECT coalesce((TRUE", "not one SQL expression"),
    "range(1e12) hang": ("(SELECT count(*) FROM range(1000000000000)) > 0", "subquery"),
    "range as a list": ("len(range(1000000000000)) > 0", "range()"),
    "getenv": ("getenv('SYNTHMED_SECRET') = 'x'", "getenv()"),
    "error text": ("error('boom') IS NULL", "error()"),
    "two statements": ("TRUE; SELECT 1", "2 statements"),
    "two expressions": ("born < died, TRUE", "2 expressions"),
    "window": ("count(*) OVER () > 1", "window"),
    "aggregate": ("count(*) > 1", "count_star()"),
    "qualified function": ("main.read_text('x') IS NULL", "main.read_text"),
    "other table": ("people.born < died", "people.born"),
    "lambda": ("list_filter([1], x -> x > 0) = [1]", "list_filter()"),
    "unknown column": ("nope > born", "nope"),
    "parent of the root": ("parent.born < born", "no parent"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_hostile_rule_is_refused_with_the_rule_named(name: str, tmp_path: Path, cli, built_store, store_copy,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    check, reason = ATTACKS[name]
    check = check.replace("STORE", str(store_copy.root))
    schema = _schema_file(tmp_path, check)
    monkeypatch.chdir(tmp_path)
    reviews_before = store_copy.catalog.reviews()
    for args in (["schemas", "show", schema], ["validate", "--schema", schema, _data(tmp_path)]):
        code, out, err = cli(*args)
        assert code == 2, (out, err)
        assert "rule 'evil'" in err and reason in err, err
        assert "root:" not in out + err  # nothing of /etc/passwd
    assert not list(tmp_path.rglob("pwned.csv"))
    assert store_copy.catalog.reviews() == reviews_before
    assert store_copy.catalog.chain_state().ok


def test_allowed_rules_still_work_and_run_as_checked() -> None:
    compiled = compile_check("patient.DEATHDATE IS NULL OR CAST(START AS DATE) <= patient.DEATHDATE -- trailing comment")
    assert "--" not in compiled.sql and "__sm_patient" in compiled.sql
    assert compiled.columns == frozenset({("patient", "DEATHDATE"), ("", "START")})
    for ok in ("year(visit_date) >= patient.birth_year", "visit_date BETWEEN patient.a AND patient.b",
               "TYPE <> 'numeric' OR try_cast(VALUE AS DOUBLE) IS NOT NULL", "x >= y - INTERVAL 14 HOUR",
               "coalesce(a, b) >= c", "code LIKE 'E11%' OR code IN ('a', 'b')"):
        compile_check(ok)
    assert not {"read_text", "read_csv", "getenv", "error", "range", "repeat", "current_setting"} & ALLOWED_FUNCTIONS


def test_every_builtin_rule_passes_the_allow_list() -> None:
    from data_schemas.io import builtin_names, load_schema

    for name in builtin_names():
        schema = load_schema(name)
        for table in schema.tables.values():
            for rule in table.rules:
                compile_check(rule.check)


def test_refusal_names_rule_and_line() -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(BASE % "(SELECT 1) = 1", source="evil.yaml")
    text = str(info.value)
    assert "line" in text and "rules.0.check" in text and "rule 'evil' is refused" in text


@pytest.mark.parametrize("text", ["", "   ", "x" * 5000])
def test_empty_or_huge_check_is_refused(text: str) -> None:
    with pytest.raises(RuleRefusedError):
        compile_check(text)


SETTINGS = ("SET enable_external_access = true", "SET allowed_directories = ['/']", "SET lock_configuration = false",
            "SET autoinstall_known_extensions = true", "INSTALL httpfs", "LOAD httpfs", "SELECT getenv('HOME')")


def test_the_connection_that_runs_rules_touches_no_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    con = connect()
    for sql in (f"SELECT * FROM read_csv('{tmp_path / 'a.csv'}')", "SELECT * FROM read_text('/etc/passwd')",
                f"COPY (SELECT 1) TO '{tmp_path / 'w.parquet'}' (FORMAT PARQUET)", f"ATTACH '{tmp_path / 'x.db'}'",
                *SETTINGS):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    # its one folder is where it spills past its memory budget (synth.spill): private, and nothing beside it
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
    assert spill.parent.stat().st_mode & 0o077 == 0
    for sql in (f"SELECT * FROM read_text('{spill}/../..')", f"COPY (SELECT 1) TO '{spill}/../w.csv'",
                f"COPY (SELECT 1) TO '{spill.parent.parent}/w.csv'"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)


def test_the_file_reader_reads_its_folder_only(tmp_path: Path) -> None:
    inside = tmp_path / "in"
    inside.mkdir()
    (inside / "a.csv").write_text("x\n1\n")
    (tmp_path / "outside.csv").write_text("x\n2\n")
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "b.csv").write_text("x\n3\n")  # shares the prefix 'in' but is another folder
    con = connect(read_dirs=[inside])
    assert con.execute(f"SELECT x FROM read_csv('{inside / 'a.csv'}')").fetchall() == [(1,)]
    for sql in (f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')", f"SELECT * FROM read_csv('{inside}/../outside.csv')",
                f"SELECT * FROM read_csv('{tmp_path / 'in2' / 'b.csv'}')", "SELECT * FROM read_text('/etc/passwd')",
                f"COPY (SELECT 1) TO '{tmp_path / 'w.parquet'}' (FORMAT PARQUET)", *SETTINGS):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert not (tmp_path / "w.parquet").exists()


def test_a_long_check_is_interrupted_with_a_clear_message() -> None:
    con = connect()
    start = time.perf_counter()
    with pytest.raises(CheckTimeoutError, match="checking rule 'slow' .* took longer than 0.2 s"):
        with interrupt_after(con, "checking rule 'slow' of table t", seconds=0.2):
            con.execute("SELECT sum(hash(i)) FROM range(100000000000) t(i)").fetchall()
    assert time.perf_counter() - start < 10
    assert con.execute("SELECT 1").fetchall() == [(1,)]  # the connection is still usable


def test_check_timeout_setting_reaches_validation(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHMED_CHECK_TIMEOUT", "not-a-number")
    code, _, err = cli("validate", "--schema", _schema_file(tmp_path, "born <= died"), _data(tmp_path))
    assert code == 2 and "SYNTHMED_CHECK_TIMEOUT" in err
