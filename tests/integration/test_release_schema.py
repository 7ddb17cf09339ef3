"""A release carries its schema (issue 15): ``schema.yaml`` in the folder, hashed in the manifest, kept in the
catalog; read back from any working folder and checked against all three, so a changed file is caught."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_schemas.io import parse_schema, schema_to_yaml
from data_schemas.model import Schema
from synth.audit import rebuild_catalog
from synth.catalog import Catalog, utcnow
from synth.errors import ReleaseError
from synth.pipeline import release
from synth.release import SCHEMA_FILE, Store, folder_schema, is_release_folder, release_schema, verify_release
from tests.conftest import SECRET


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Schema, Path]:
    """A schema no built-in knows (drafted by inference, renamed) and a prepared folder of its data."""
    from synth.demo_population import simulate
    from synth.infer import infer_schema
    from synth.load import load_dataset
    from synth.prepare import prepare
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("custom")
    data = root / "data"
    data.mkdir()
    for name, table in simulate(60, seed=3).items():
        pq.write_table(table, data / f"{name}.parquet")
    schema = infer_schema(data, name="my_hospital")
    prepared = prepare(load_dataset(schema, data), root / "prepared", secret=SECRET.encode(), seed=0).folder
    return schema, prepared


@pytest.fixture()
def made(custom: tuple[Schema, Path], tmp_path: Path) -> tuple[Store, str, Schema]:
    schema, prepared = custom
    store = Store(tmp_path / "store")
    info = release(schema, prepared, generator="independent", store=store, seed=1)
    return store, info.release_id, schema


def test_the_schema_travels_with_the_release(made: tuple[Store, str, Schema], monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    store, rid, schema = made
    folder = store.release_dir(rid)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"] == {"name": "my_hospital", "version": schema.version, "hash": schema.fingerprint,
                                  "file": SCHEMA_FILE}
    assert SCHEMA_FILE in manifest["files"]
    text = (folder / SCHEMA_FILE).read_text()
    assert text == schema_to_yaml(schema) and store.catalog.release(rid)["schema_yaml"] == text
    assert verify_release(store, rid).ok
    monkeypatch.chdir(tmp_path)  # any working folder
    assert release_schema(store, rid).fingerprint == schema.fingerprint
    assert folder_schema(folder).fingerprint == schema.fingerprint


def test_a_changed_schema_file_is_refused(made: tuple[Store, str, Schema]) -> None:
    store, rid, _ = made
    path = store.release_dir(rid) / SCHEMA_FILE
    path.write_text(path.read_text().replace("type: categorical", "type: text", 1))
    with pytest.raises(ReleaseError, match="schema.yaml was modified"):
        release_schema(store, rid)
    assert any(p.startswith(f"{SCHEMA_FILE} was modified") for p in verify_release(store, rid).problems)


def test_the_catalog_copy_must_agree(made: tuple[Store, str, Schema], monkeypatch: pytest.MonkeyPatch) -> None:
    store, rid, _ = made
    real = Catalog.release

    def forged(self: Catalog, release_id: str) -> dict:
        row = real(self, release_id)
        return {**row, "schema_yaml": row["schema_yaml"].replace("my_hospital", "other")}

    monkeypatch.setattr(Catalog, "release", forged)
    with pytest.raises(ReleaseError, match="differs from the copy of the schema kept in the catalog"):
        release_schema(store, rid)


def test_a_copied_release_folder_is_checked_against_its_manifest(made: tuple[Store, str, Schema], tmp_path: Path) -> None:
    import shutil

    store, rid, schema = made
    copy = tmp_path / "elsewhere" / rid
    shutil.copytree(store.release_dir(rid), copy)
    assert folder_schema(copy).fingerprint == schema.fingerprint
    (copy / SCHEMA_FILE).write_text((copy / SCHEMA_FILE).read_text() + "\n# edited\n")
    with pytest.raises(ReleaseError, match="was modified"):
        folder_schema(copy)


def test_a_rebuilt_catalog_keeps_the_schema(made: tuple[Store, str, Schema]) -> None:
    store, rid, schema = made
    text = (store.release_dir(rid) / SCHEMA_FILE).read_text()
    store.catalog.path.unlink()  # the catalog lost: rebuilt from the release folders
    rebuilt = rebuild_catalog(store)
    assert rid in rebuilt.registered
    assert store.catalog.release(rid)["schema_yaml"] == text
    assert release_schema(store, rid).fingerprint == schema.fingerprint


def test_a_release_made_before_releases_carried_their_schema(custom: tuple[Schema, Path], tmp_path: Path) -> None:
    """The manifest names the schema only: a built-in name loads, any other needs --schema, checked by hash."""
    schema, _ = custom
    store = Store(tmp_path / "store")
    for rid, name, fingerprint in (("old-custom", "my_hospital", schema.fingerprint), ("old-builtin", "kr_claims", None)):
        if fingerprint is None:
            from data_schemas.io import load_schema

            fingerprint = load_schema(name).fingerprint
        folder = store.release_dir(rid)
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"release_id": rid, "schema": {"name": name, "hash": fingerprint}}))
        store.catalog.add_release({"release_id": rid, "created_at": utcnow(), "schema_name": name, "schema_hash": fingerprint})
    assert release_schema(store, "old-builtin").name == "kr_claims"
    with pytest.raises(ReleaseError, match="before releases carried their schema.*--schema"):
        release_schema(store, "old-custom")
    assert release_schema(store, "old-custom", fallback=schema) is schema
    other = parse_schema(schema_to_yaml(schema).replace("name: my_hospital", "name: my_other", 1))
    with pytest.raises(ReleaseError, match="was made with schema 'my_hospital'"):
        release_schema(store, "old-custom", fallback=other)


def test_a_schema_given_beside_a_release_folder_must_be_its_own(made: tuple[Store, str, Schema], tmp_path: Path) -> None:
    """``hint`` (a ``--schema``) is a consistency check: the same schema passes, another one is refused in the
    store and in a copied folder; a copied folder made before releases carried their schema takes the hint
    only when it has the manifest's schema hash."""
    import shutil

    store, rid, schema = made
    same = parse_schema(schema_to_yaml(schema), source="elsewhere/same.yaml")
    other = parse_schema(schema_to_yaml(schema).replace("name: my_hospital", "name: my_other", 1), source="other.yaml")
    copy = tmp_path / "copied" / rid
    shutil.copytree(store.release_dir(rid), copy)
    for folder in (store.release_dir(rid), copy):
        assert is_release_folder(folder)
        assert folder_schema(folder, hint=same).fingerprint == schema.fingerprint
        with pytest.raises(ReleaseError, match="carries its own schema 'my_hospital'.*'my_other'.*leave out --schema"):
            folder_schema(folder, hint=other)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["schema"]["file"]  # as a release made before releases carried their schema
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match="carries no schema"):
        folder_schema(copy)
    assert folder_schema(copy, hint=same) is same
    with pytest.raises(ReleaseError, match="was made with schema 'my_hospital'"):
        folder_schema(copy, hint=other)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text('{"exported_by": "the hospital"}')
    assert not is_release_folder(tmp_path / "data") and not is_release_folder(tmp_path / "nowhere")
