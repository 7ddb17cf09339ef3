"""The command line end to end, as a user runs it: exit codes, messages that name the fault, no traceback."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SECRET

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SYNTHMED_SECRET", "SYNTHMED_STORE")}
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "synthmed", *args], cwd=REPO, capture_output=True, text=True, env=full_env, timeout=600
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _rewrite_gz(path: Path, edit) -> None:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))


def test_validate_real_synpuf(synpuf_dir: Path) -> None:
    result = run("validate", "--schema", "cms_desynpuf", str(synpuf_dir))
    assert result.returncode == 0, result.stdout
    assert "valid" in result.stdout
    assert "beneficiary_summary" in result.stdout and "29,566" in result.stdout
    assert "inpatient_claims" in result.stdout and "5,775" in result.stdout
    # progress on stderr while it works: each file read (named, with its size), each table checked with its rows
    lines = result.stderr.splitlines()
    assert any("DE1_0_2008_to_2010_Inpatient_Claims_Sample_1.csv.gz" in line and "MB)" in line
               and "table inpatient_claims" in line for line in lines), result.stderr
    assert any("checking the values and keys of table inpatient_claims (5,775 rows)" in line for line in lines), result.stderr
    assert run("validate", "--schema", "cms_desynpuf", str(synpuf_dir), "--quiet").stderr == ""


def test_validate_json(synpuf_dir: Path) -> None:
    result = run("validate", "--schema", "cms_desynpuf", str(synpuf_dir), "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["rows"]["inpatient_claims"] == 5775 and report["problems"] == []
    assert result.stderr == ""  # --json is for scripts: no progress lines


def test_validate_broken_copy_names_every_fault(synpuf_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(synpuf_dir, broken)
    b2008 = broken / "DE1_0_2008_Beneficiary_Summary_File_Sample_1.csv.gz"
    b2009 = broken / "DE1_0_2009_Beneficiary_Summary_File_Sample_1.csv.gz"
    claims = broken / "DE1_0_2008_to_2010_Inpatient_Claims_Sample_1.csv.gz"

    def garble_date(lines: list[str]) -> list[str]:  # data row 3: BENE_BIRTH_DT -> 19431399
        fields = lines[3].split(",")
        fields[1] = "19431399"
        lines[3] = ",".join(fields)
        return lines + [lines[5]]  # and a duplicated beneficiary row (duplicate key)

    _rewrite_gz(b2008, garble_date)
    _rewrite_gz(b2009, lambda lines: [",".join(l.split(",")[:-1]) for l in lines])  # drop PPPYMT_CAR
    _rewrite_gz(claims, lambda lines: lines[:1] + ["FFFFFFFFFFFFFFFF" + lines[1][lines[1].index(","):]] + lines[2:])

    result = run("validate", "--schema", "cms_desynpuf", str(broken))
    assert result.returncode == 1
    text = " ".join(result.stdout.split())
    assert "DE1_0_2008_Beneficiary_Summary_File_Sample_1.csv.gz, table beneficiary_summary, column BENE_BIRTH_DT" in text
    assert "row 3 '19431399'" in text
    assert "DE1_0_2009_Beneficiary_Summary_File_Sample_1.csv.gz, table beneficiary_summary, column PPPYMT_CAR: required column is missing" in text
    assert "duplicate" not in text or "DESYNPUF_ID, BENE_YEAR" in text
    assert "column DESYNPUF_ID, BENE_YEAR: 1 primary key value(s)" in text
    assert "DE1_0_2008_to_2010_Inpatient_Claims_Sample_1.csv.gz, table inpatient_claims, column DESYNPUF_ID: 1 value(s) have no matching beneficiary_summary.DESYNPUF_ID" in text
    assert "row 1 'FFFFFFFFFFFFFFFF'" in text


def test_validate_truncated_gzip(synpuf_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "truncated"
    shutil.copytree(synpuf_dir, broken)
    claims = broken / "DE1_0_2008_to_2010_Inpatient_Claims_Sample_1.csv.gz"
    claims.write_bytes(claims.read_bytes()[: claims.stat().st_size // 2])
    result = run("validate", "--schema", "cms_desynpuf", str(broken))
    assert result.returncode == 1
    text = " ".join(result.stdout.split())
    assert "file DE1_0_2008_to_2010_Inpatient_Claims_Sample_1.csv.gz, table inpatient_claims: cannot be read as gzipped CSV" in text


def test_validate_missing_folder_and_unknown_schema(tmp_path: Path) -> None:
    missing = run("validate", "--schema", "kr_claims", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stdout
    unknown = run("validate", "--schema", "no_such_schema", str(tmp_path))
    assert unknown.returncode == 2 and "unknown schema 'no_such_schema'" in unknown.stderr


def test_malformed_schema_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npatient: {table: p, column: id}\ntables:\n  p:\n    columns:\n      id: {type: uuid}\n")
    result = run("validate", "--schema", str(bad), str(tmp_path))
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr and "line 6, tables.p.columns.id.type" in result.stderr


def test_schemas_list_and_show() -> None:
    listed = run("schemas", "list", "--json")
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"kr_claims", "cms_desynpuf", "synthea", "omop_cdm"} <= names
    shown = run("schemas", "show", "kr_claims")
    assert shown.returncode == 0 and "patient_id" in shown.stdout


def test_prepare_refuses_without_secret(kr_dir: Path, tmp_path: Path) -> None:
    result = run("prepare", "--schema", "kr_claims", str(kr_dir), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "needs a secret key" in result.stderr
    assert not (tmp_path / "out").exists()


def test_prepare_writes_split_folders(kr_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("prepare", "--schema", "kr_claims", str(kr_dir), "-o", str(out), "--seed", "4", env={"SYNTHMED_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "patients.patient_id" in result.stdout
    said = result.stderr
    assert "reading" in said and "table claims" in said and "pseudonymising" in said, said
    assert said.index("splitting") < said.index(f"writing {out / 'train'}") < said.index(f"writing {out / 'holdout'}"), said
    record = json.loads((out / "split.json").read_text())
    assert record["seed"] == 4 and record["n_train"] + record["n_holdout"] == 300
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(f"{t}.parquet" for t in ("patients", "claims", "claim_details", "diagnoses", "prescriptions"))


def test_demo_end_to_end(demo_run) -> None:
    store, result = demo_run
    assert result.returncode == 0, result.stderr
    assert "synthmed demo" in result.stdout and "valid" in result.stdout
    assert (store / "demo" / "prepared" / "train" / "claims.parquet").is_file()
    # two releases, the default cart and the gaussian_copula baseline, registered and printed
    releases = sorted(p.name for p in (store / "releases").iterdir())
    assert len(releases) == 2 and any("gaussian_copula" in r for r in releases) and any("cart" in r for r in releases)
    assert all(r in result.stdout for r in releases)
    # each evaluated and stored, the scorecard shows fidelity and risk side by side
    from synth.catalog import Catalog

    catalog = Catalog(store / "catalog.duckdb")
    for row in catalog.releases():
        assert row["fidelity"] is not None and row["risk_level"] in ("low", "medium", "high")
        names = {r["name"] for r in catalog.metric_results(row["evaluation_id"])}
        assert {"fidelity.column_shapes", "utility.ratio", "privacy.mia.shadow.auc", "privacy.singling_out.risk"} <= names
    for label in ("overall fidelity", "MIA distance AUC", "singling-out risk", "overall risk (policy)"):
        assert label in result.stdout, label
    # the demo's own output validates with the command a user would run
    check = run("validate", "--schema", "kr_claims", str(store / "demo" / "prepared" / "holdout"))
    assert check.returncode == 0, check.stdout


def test_demo_store_from_environment(tmp_path: Path) -> None:
    store = tmp_path / "env-store"
    result = run("demo", "--patients", "50", "--quiet", "--no-releases", env={"SYNTHMED_STORE": str(store)})
    assert result.returncode == 0, result.stderr
    assert (store / "demo" / "raw" / "patients.parquet").is_file()
    assert not (store / "releases").exists()


def test_fit_then_sample(kr_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    fitted = run("fit", "--schema", "kr_claims", "--data", str(kr_dir), "--generator", "independent", "-o", str(model),
                 env={"SYNTHMED_SECRET": SECRET})
    assert fitted.returncode == 0, fitted.stderr
    sampled = run("sample", str(model), "--patients", "25", "--seed", "3", "-o", str(tmp_path / "cohort"))
    assert sampled.returncode == 0, sampled.stderr
    check = run("validate", "--schema", "kr_claims", str(tmp_path / "cohort"), "--json")
    assert json.loads(check.stdout)["rows"]["patients"] == 25


def test_generators_list_and_bad_parameters(kr_dir: Path, tmp_path: Path) -> None:
    listed = json.loads(run("generators", "list", "--json").stdout)
    assert {"gaussian_copula", "ctgan", "tvae", "hierarchical", "hma", "copy", "independent"} <= {r["name"] for r in listed}
    bad = run("release", "--schema", "kr_claims", "--data", str(kr_dir), "-g", "tvae", "-p", "epoch=3",
              "--store", str(tmp_path / "s"), env={"SYNTHMED_SECRET": SECRET})
    assert bad.returncode == 2 and "unknown parameter(s) epoch for engine tvae" in bad.stderr
    unsafe = run("release", "--schema", "kr_claims", "--data", str(kr_dir), "-g", "copy",
                 "--store", str(tmp_path / "s"), env={"SYNTHMED_SECRET": SECRET})
    assert unsafe.returncode == 2 and "--allow-unsafe" in unsafe.stderr


def test_releases_list_on_empty_store(tmp_path: Path) -> None:
    result = run("releases", "list", "--store", str(tmp_path / "nothing"))
    assert result.returncode == 0 and "no releases" in result.stdout
    missing = run("releases", "show", "nope", "--store", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no release 'nope'" in missing.stderr and "has no releases yet" in missing.stderr
