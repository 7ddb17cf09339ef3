"""Paths stay where they belong and YAML cannot blow up: traversal, odd files, prepare -o, release ids, YAML bombs."""
from __future__ import annotations

import os
import resource
import shutil
import time
from pathlib import Path

import pytest

from data_schemas.errors import SchemaError
from data_schemas.io import parse_schema

MINI = """
name: {name}
patient: {{table: people, column: id}}
tables:
  people:
    primary_key: id
    {files}
    columns:
      id: {{type: id}}
      born: {{type: datetime, unit: date}}
"""
CSV = "id,born\n" + "".join(f"{i},19{50 + i % 40}-01-01\n" for i in range(1, 41))


def _schema(tmp_path: Path, *, name: str = "mini", files: str = "") -> Path:
    path = tmp_path / "schema.yaml"
    path.write_text(MINI.format(name=name, files=files))
    return path


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    (folder / "people.csv").write_text(CSV)
    return folder


@pytest.mark.parametrize("pattern, reason", [
    ("../outside/*.csv", "climbs out"), ("../../../../etc/passwd", "climbs out"), ("/etc/passwd", "absolute"),
    ("sub/../../x.csv", "climbs out"), ("~/x.csv", "absolute"),
])
def test_file_patterns_stay_in_the_data_folder(pattern: str, reason: str, tmp_path: Path, cli) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "people.csv").write_text(CSV)
    code, _, err = cli("validate", "--schema", _schema(tmp_path, files=f"files: [{pattern!r}]"), _folder(tmp_path))
    assert code == 2 and reason in err and "tables.people.files.0" in err, err


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "x y", "1abc", "name;drop"])
def test_schema_names_are_plain_identifiers(name: str, tmp_path: Path, cli) -> None:
    code, _, err = cli("schemas", "show", _schema(tmp_path, name=repr(name)))
    assert code == 2 and "plain identifier" in err, err


def _problems(cli, schema: Path, folder: Path) -> str:
    code, out, err = cli("validate", "--schema", schema, folder)
    assert code == 1, (out, err)
    return out


@pytest.mark.parametrize("make, expected", [
    (lambda p: p.mkdir(), "is a folder, not a data file"),
    (lambda p: os.mkfifo(p), "FIFO"),
    (lambda p: p.symlink_to(p.name), "symbolic link loop"),
    (lambda p: p.symlink_to("/etc/passwd"), "leads outside the data folder"),
    (lambda p: p.symlink_to(p.parent / "missing.csv"), "broken symbolic link"),
])
def test_odd_files_named_like_data_are_problems(make, expected: str, tmp_path: Path, cli) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    make(folder / "people.csv")
    start = time.perf_counter()
    out = _problems(cli, _schema(tmp_path), folder)
    assert expected in out and "people.csv" in out
    assert time.perf_counter() - start < 30  # a FIFO is never opened (it would block)


def test_a_link_inside_the_folder_is_fine(tmp_path: Path, cli) -> None:
    folder = _folder(tmp_path)
    (folder / "people.csv").rename(folder / "real.csv")
    (folder / "people.csv").symlink_to("real.csv")
    code, out, _ = cli("validate", "--schema", _schema(tmp_path), folder)
    assert code == 0, out


def test_csv_beside_csv_gz_is_a_problem(tmp_path: Path, cli) -> None:
    import gzip

    folder = _folder(tmp_path)
    (folder / "people.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    out = _problems(cli, _schema(tmp_path), folder)
    assert "people.csv.gz also match" in out and "only the files matching 'people.csv' are read" in out


def test_release_ids_cannot_leave_releases(built_store, cli) -> None:
    for bad in ("../../etc", "..", "a/b", "/etc/passwd", ".tmp-x/../.."):
        code, _, err = cli("releases", "verify", bad, "--store", built_store.root)
        assert code == 2 and ("not a release id" in err or "no release" in err), err


# -- prepare -o ---------------------------------------------------------------------------------------------
def _prepare(cli, tmp_path: Path, data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    key = tmp_path / "secret.key"
    if not key.exists():
        key.write_text("k" * 32)
        key.chmod(0o600)
    return cli("prepare", data, "--schema", _schema(tmp_path), "-o", out, "--secret-file", key, *extra)


def test_prepare_never_overwrites_its_input(tmp_path: Path, cli) -> None:
    data = _folder(tmp_path)
    for out in (data, data / "inner", tmp_path):
        code, _, err = _prepare(cli, tmp_path, data, out, "--force")
        assert code == 2 and "input folder" in err, err
    assert (data / "people.csv").read_text() == CSV


def test_prepare_refuses_a_foreign_folder_and_keeps_it_with_force(tmp_path: Path, cli) -> None:
    data = _folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    code, _, err = _prepare(cli, tmp_path, data, out)
    assert code == 2 and "not empty" in err and "--force" in err
    assert (out / "thesis.docx").read_text() == "years of work"
    code, _, err = _prepare(cli, tmp_path, data, out, "--force")
    assert code == 0, err
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.replaced-")]
    assert len(kept) == 1 and (kept[0] / "thesis.docx").read_text() == "years of work"
    assert (out / "split.json").is_file()
    # an earlier prepare output is simply replaced
    code, _, err = _prepare(cli, tmp_path, data, out)
    assert code == 0, err
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("out.replaced-")]) == 1


@pytest.mark.parametrize("edit", ["count", "fingerprint", "moved", "garbage", "missing_field"])
def test_an_edited_prepared_folder_is_refused_with_what_differs(edit: str, prepared_kr: Path, tmp_path: Path) -> None:
    import json

    import pyarrow.parquet as pq

    from data_schemas.io import load_schema
    from synth.errors import PreparedDataError
    from synth.load import connect
    from synth.prepare import read_prepared

    folder = tmp_path / "prepared"
    shutil.copytree(prepared_kr, folder)
    split = json.loads((folder / "split.json").read_text())
    expected = {"count": "split.json says", "fingerprint": "holds other patients", "moved": "in both train/ and holdout/",
                "garbage": "not valid JSON", "missing_field": "does not hold a split record"}[edit]
    if edit == "count":
        split["n_train"] += 1
    elif edit == "fingerprint":
        split["holdout_fingerprint"] = "0" * 64
    elif edit == "missing_field":
        del split["train_fingerprint"]
    if edit == "moved":  # a holdout patient copied into train: the generator would see a non-member
        train, holdout = pq.read_table(folder / "train" / "patients.parquet"), pq.read_table(folder / "holdout" / "patients.parquet")
        import pyarrow as pa

        pq.write_table(pa.concat_tables([train, holdout.slice(0, 1)]), folder / "train" / "patients.parquet")
    elif edit == "garbage":
        (folder / "split.json").write_text("{not json")
    else:
        (folder / "split.json").write_text(json.dumps(split))
    with pytest.raises(PreparedDataError, match=expected):
        read_prepared(load_schema("kr_claims"), folder, con=connect())


# -- YAML ---------------------------------------------------------------------------------------------------
BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: x
"""


@pytest.mark.parametrize("text, expected", [
    (BILLION_LAUGHS, "anchors and aliases"),
    ("a: " + "[" * 20_000 + "]" * 20_000, "nested deeper than"),
    ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)), "nested deeper than"),
    ("x" * 3_000_000, "at most"),
    ("- just\n- a list\n", "must be a mapping"),
    ("{1: 2, name: x}", "must be a string"),
    ("name: [unclosed", "not valid YAML"),
    ("name: x\ntables: 5\npatient: 3\n", "tables"),
    ("\x00\x01binary", "not valid YAML"),
])
def test_yaml_bombs_and_junk_are_schema_errors(text: str, expected: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(SchemaError, match=expected):
        parse_schema(text, source="bomb.yaml")
    assert time.perf_counter() - start < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no blow-up


def test_yaml_bomb_through_the_cli_is_a_clear_error(tmp_path: Path, cli) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: " + "[" * 20_000 + "]" * 20_000)
    code, _, err = cli("schemas", "show", bomb)
    assert code == 2 and "nested deeper than" in err
