"""Bring your own EMR export, through the CLI as a user runs it (issue 15): ``schemas infer`` -> ``validate``
-> ``prepare`` -> ``release`` -> ``evaluate RELEASE_ID`` -> ``report`` -> ``validate RELEASE_ID``, on a
MIMIC-IV-demo-shaped hospital export, Synthea (all 18 tables), OMOP and kr_claims demo data, at small size.

The release carries its schema (``schema.yaml``, hashed in the manifest, kept in the catalog), so every step
after ``release`` runs from another working folder with no ``--schema``; a changed schema file is caught.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_schemas.io import load_schema_file, parse_schema
from synth.release import Store
from tests.conftest import SECRET, SHARED_DATASETS

REPO = Path(__file__).resolve().parents[2]
SYNTHEA_18 = SHARED_DATASETS / "synthea" / "ohdsi_dbt_27p"  # the smallest complete 18-table export
METRICS = "fidelity.referential_integrity,fidelity.children_per_parent,fidelity.column_shapes"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTHMED_SECRET", "SYNTHMED_STORE")}
    env["SYNTHMED_SECRET"] = SECRET
    result = subprocess.run([sys.executable, "-m", "synthmed", *args], cwd=cwd, capture_output=True, text=True,
                            env=env, timeout=900)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _hosp(folder: Path) -> Path:
    from synth.demo_hospital import Sizes, write_hospital

    return write_hospital(folder, 16, seed=2, sizes=Sizes(labs=8, orders=5, outpatient_labs=4))


def _parquet(frames: dict, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, table in frames.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


def _kr(folder: Path) -> Path:
    from synth.demo_population import simulate

    return _parquet(simulate(40, seed=5), folder)


def _omop(folder: Path) -> Path:
    from synth.demo_population import simulate
    from synth.omop_from_claims import claims_to_omop

    return _parquet(claims_to_omop(simulate(40, seed=5)), folder)


def _synthea(folder: Path) -> Path:
    if not SYNTHEA_18.is_dir():
        pytest.skip(f"the Synthea export {SYNTHEA_18} is not there (../shared/datasets beside the repo)")
    return SYNTHEA_18


SOURCES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "hosp": (_hosp, "cart"),  # the demo's generator, on the deepest tree
    "synthea": (_synthea, "independent"),
    "omop": (_omop, "independent"),
    "kr": (_kr, "independent"),
}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def flow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """infer -> validate -> prepare -> release for one source; the later steps run in the tests."""
    make, generator = SOURCES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    data = make(root / "export")
    schema = root / "schema.yaml"
    infer = run("schemas", "infer", str(data), "-o", str(schema), "--name", request.param)
    ok(infer)
    assert "foreign keys of" in infer.stderr and "draft ready" in infer.stderr  # progress, step by step
    assert "against schema" in ok(run("validate", str(data), "--schema", str(schema)))
    prepared = root / "prepared"
    ok(run("prepare", str(data), "--schema", str(schema), "-o", str(prepared)))
    store = root / "store"
    out = ok(run("release", "--data", str(prepared), "--schema", str(schema), "--generator", generator,
                 "--store", str(store), "-q"))
    release_id = out.split("release ", 1)[1].split(":", 1)[0]
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return {"name": request.param, "data": data, "schema": schema, "prepared": prepared, "store": store,
            "id": release_id, "elsewhere": elsewhere}


def test_evaluate_report_and_validate_by_id_with_no_schema(flow: dict) -> None:
    store, rid, here = str(flow["store"]), flow["id"], flow["elsewhere"]
    folder = flow["store"] / "releases" / rid
    carried = (folder / "schema.yaml").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"]["file"] == "schema.yaml" and "schema.yaml" in manifest["files"]
    if flow["name"] == "synthea":
        assert len(manifest["rows"]) == 18  # every table of the export went through, reference tables too
    assert parse_schema(carried).fingerprint == load_schema_file(flow["schema"]).fingerprint == manifest["schema"]["hash"]
    assert Store(flow["store"]).catalog.release(rid)["schema_yaml"] == carried  # kept in the catalog too
    result = run("evaluate", rid, "--data", str(flow["prepared"]), "--store", store, "--metrics", METRICS,
                 "--shadow-models", "0", "--max-rows", "300", "--json", "-q", cwd=here)
    scores = {r["name"]: r for r in json.loads(ok(result))["results"]}
    assert scores["fidelity.referential_integrity"]["value"] == pytest.approx(1.0)
    assert scores["fidelity.children_per_parent"]["value"] is not None
    assert 0.0 <= scores["fidelity.column_shapes"]["value"] <= 1.0  # quality is benchmarks/bench_emr.py's to measure
    # no event table collapses: rows per patient stay near train's (bench_emr measures quality). Tables of ~17 rows
    # over 13-14 patients: cart's seeds 0/1/3 give 0.51/1.06/1.06 of train's rate for pharmacy (old and new cart
    # alike), so the band is wide; a collapse (a table emptied or cut to a tenth) is far outside it
    if flow["name"] == "hosp":
        train = flow["prepared"] / "train"
        n_train = pq.read_metadata(train / "patients.parquet").num_rows
        for table, rows in manifest["rows"].items():
            real = pq.read_metadata(train / f"{table}.parquet").num_rows / n_train
            if table != "patients" and real >= 1 and not table.startswith("d_") and table != "provider":
                assert 0.4 <= (rows / manifest["n_patients"]) / real <= 2.5, (table, rows, real)
    report = here / "report.html"
    ok(run("report", rid, "--store", store, "-o", str(report), cwd=here))
    assert rid in report.read_text()
    checked = ok(run("validate", rid, "--store", store, cwd=here))
    assert f"against schema {flow['name']}" in checked
    assert f"against schema {flow['name']}" in ok(run("validate", str(folder), cwd=here))


def test_a_changed_schema_file_is_caught(flow: dict, tmp_path: Path) -> None:
    if flow["name"] != "hosp":
        pytest.skip("one source is enough to attack the carried schema")
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(flow["store"], copy)
    path = copy / "releases" / flow["id"] / "schema.yaml"
    path.write_text(path.read_text().replace("type: datetime", "type: text", 1))
    result = run("evaluate", flow["id"], "--data", str(flow["prepared"]), "--store", str(copy), "--metrics",
                 "fidelity.column_shapes", "--shadow-models", "0", cwd=flow["elsewhere"])
    assert result.returncode != 0 and "schema.yaml was modified" in result.stderr, result.stderr
    result = run("validate", flow["id"], "--store", str(copy), cwd=flow["elsewhere"])
    assert result.returncode != 0 and "schema.yaml was modified" in result.stderr, result.stderr
    # a --schema other than the one the release carries is refused, not silently used
    other = tmp_path / "other.yaml"
    other.write_text(flow["schema"].read_text().replace("name: hosp", "name: hosp_other", 1))
    result = run("evaluate", flow["id"], "--data", str(flow["prepared"]), "--store", str(flow["store"]),
                 "--schema", str(other), "--metrics", "fidelity.column_shapes", "--shadow-models", "0")
    assert result.returncode != 0 and "carries its own schema" in result.stderr, result.stderr


def test_validate_without_schema_needs_a_release(flow: dict) -> None:
    if flow["name"] != "kr":
        pytest.skip("one source is enough")
    result = run("validate", str(flow["data"]))
    assert result.returncode != 0 and "is not a release folder" in result.stderr and "--schema" in result.stderr
    result = run("validate", "no-such-release", "--store", str(flow["store"]))
    assert result.returncode != 0 and "no release 'no-such-release'" in result.stderr


def test_schema_given_with_a_release_is_a_consistency_check(flow: dict, tmp_path: Path) -> None:
    """``--schema`` beside a release (id or folder) is accepted when it is the release's own schema, wherever
    the file lies, and refused with a message naming both when it is another one."""
    if flow["name"] != "hosp":
        pytest.skip("one source is enough")
    store, rid, here = str(flow["store"]), flow["id"], flow["elsewhere"]
    folder = flow["store"] / "releases" / rid
    same = tmp_path / "same.yaml"
    same.write_text(flow["schema"].read_text())
    other = tmp_path / "other.yaml"
    other.write_text(flow["schema"].read_text().replace("name: hosp", "name: hosp_other", 1))
    for target in (rid, str(folder)):
        assert "against schema hosp: valid" in ok(run("validate", target, "--store", store, "--schema", str(same), cwd=here))
        refused = run("validate", target, "--store", store, "--schema", str(other), cwd=here)
        assert refused.returncode != 0 and "carries its own schema 'hosp'" in refused.stderr, refused.stderr
        assert "'hosp_other'" in refused.stderr and "leave out --schema" in refused.stderr
    result = run("evaluate", rid, "--data", str(flow["prepared"]), "--store", store, "--schema", str(same),
                 "--metrics", "fidelity.referential_integrity", "--shadow-models", "0", "--json", "-q", cwd=here)
    assert json.loads(ok(result))["results"][0]["value"] == pytest.approx(1.0)
    # a data folder (not a release) is still checked against the --schema given, even beside a stray manifest.json
    data = tmp_path / "export"
    import shutil

    shutil.copytree(flow["data"], data)
    (data / "manifest.json").write_text('{"exported_by": "the hospital"}')
    assert "against schema hosp: valid" in ok(run("validate", str(data), "--schema", str(flow["schema"]), cwd=here))
    missing = run("validate", "no-such-folder", "--store", store, cwd=here)
    assert missing.returncode != 0 and "neither a folder nor a release id" in missing.stderr, missing.stderr
