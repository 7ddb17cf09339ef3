"""Immutable releases: ``<store>/releases/<release_id>/`` with one Parquet file per table and a manifest.

The folder is written under a temporary name, its catalog row inserted in a transaction during which
the folder is renamed into place, and the transaction committed. A process killed at any point leaves
either nothing or a temporary / unregistered folder, which ``reconcile`` removes the next time the
store is opened, so a release is in the catalog whole or not at all.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from data_schemas.model import Schema
from synth.catalog import Catalog, utcnow
from synth.errors import ReleaseError
from synth.load import Dataset

FAIL_ENV = "SYNTHMED_FAIL_AT"  # failure injection for tests: "<point>" raises, "<point>:kill" exits hard
FAIL_POINTS = ("after_files", "after_manifest", "before_rename", "after_rename", "after_commit")
TMP_PREFIX = ".tmp-"
LIBRARIES = ("synthmed", "sdv", "ctgan", "copulas", "rdt", "torch", "duckdb", "pandas", "numpy", "pyarrow")


class InjectedFailure(RuntimeError):
    """Raised at a failure point named in SYNTHMED_FAIL_AT (tests of atomicity only)."""


def _checkpoint(point: str) -> None:
    wanted = os.environ.get(FAIL_ENV, "")
    if not wanted:
        return
    name, _, mode = wanted.partition(":")
    if name == point:
        if mode == "kill":
            os._exit(97)
        raise InjectedFailure(f"injected failure at {point}")


@dataclass(frozen=True)
class Store:
    """A store folder: ``catalog.duckdb`` and ``releases/``."""

    root: Path

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.root / "catalog.duckdb")

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    def release_dir(self, release_id: str) -> Path:
        return self.releases_dir / release_id

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """An exclusive lock on the store's releases for one writer (released by the OS if it dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".write.lock").open("a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def reconcile(self) -> list[str]:
        """Remove temporary folders and folders with no catalog row (left by a killed write).

        Call it holding ``write_lock`` so that no other writer's folder is in flight.
        """
        removed: list[str] = []
        if not self.releases_dir.is_dir():
            return removed
        known = self.catalog.release_ids()
        for child in self.releases_dir.iterdir():
            if child.is_dir() and (child.name.startswith(TMP_PREFIX) or child.name not in known):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child.name)
        return removed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def new_release_id(schema: str, generator: str) -> str:
    return f"{schema}-{generator}-{utcnow():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ReleaseInfo:
    """A release as registered: id, folder and manifest."""

    release_id: str
    path: Path
    manifest: dict[str, Any]
    manifest_hash: str


def write_release(
    store: Store,
    synthetic: Dataset,
    *,
    schema: Schema,
    generator: str,
    family: str,
    params: dict[str, Any],
    seed: int,
    source: dict[str, Any],
    sample_report: dict[str, Any],
    differentially_private: bool = False,
    epsilon: float | None = None,
    delta: float | None = None,
    release_id: str | None = None,
    privacy: dict[str, Any] | None = None,
) -> ReleaseInfo:
    """Write the folder and register it atomically (see the module docstring)."""
    with store.write_lock():
        store.reconcile()
        release_id = release_id or new_release_id(schema.name, generator)
        final = store.release_dir(release_id)
        if final.exists():
            raise ReleaseError(f"release folder {final} already exists")
        store.releases_dir.mkdir(parents=True, exist_ok=True)
        tmp = store.releases_dir / f"{TMP_PREFIX}{release_id}"
        try:
            paths = synthetic.write(tmp)
            _checkpoint("after_files")
            rows = synthetic.row_counts()
            manifest: dict[str, Any] = {
                "release_id": release_id,
                "created_at": utcnow().isoformat(timespec="seconds") + "Z",
                "schema": {"name": schema.name, "version": schema.version, "hash": schema.fingerprint},
                "generator": {
                    "name": generator,
                    "family": family,
                    "params": params,
                    "differentially_private": differentially_private,
                    "epsilon": epsilon,
                    "delta": delta,
                    "privacy_accounting": privacy,
                },
                "library_versions": library_versions(),
                "seed": seed,
                "n_patients": rows.get(schema.patient.table, 0)
                if schema.patient_table.primary_key == [schema.patient.column]
                else _distinct_patients(synthetic),
                "rows": rows,
                "source": source,
                "sample_report": sample_report,
                "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in paths.values()},
            }
            manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
            (tmp / "manifest.json").write_bytes(manifest_bytes)
            _fsync_dir(tmp)
            _checkpoint("after_manifest")
            manifest_hash = hashlib.sha256(manifest_bytes).hexdigest()

            def rename() -> None:
                _checkpoint("before_rename")
                os.replace(tmp, final)
                _checkpoint("after_rename")

            store.catalog.add_release(
                {
                    "release_id": release_id,
                    "created_at": utcnow(),
                    "schema_name": schema.name,
                    "schema_hash": schema.fingerprint,
                    "generator": generator,
                    "family": family,
                    "differentially_private": differentially_private,
                    "epsilon": epsilon,
                    "delta": delta,
                    "seed": seed,
                    "n_patients": manifest["n_patients"],
                    "rows_json": json.dumps(rows),
                    "params_json": json.dumps(params, default=str),
                    "source_fingerprint": source.get("fingerprint"),
                    "manifest_hash": manifest_hash,
                    "path": str(final),
                },
                before_commit=rename,
            )
            _checkpoint("after_commit")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists() and release_id not in store.catalog.release_ids():
                shutil.rmtree(final, ignore_errors=True)
            raise
        return ReleaseInfo(release_id, final, manifest, manifest_hash)


def _distinct_patients(dataset: Dataset) -> int:
    schema = dataset.schema
    return int(
        dataset.con.execute(
            f'SELECT count(DISTINCT "{schema.patient.column}") FROM {dataset.sql_name(schema.patient.table)}'
        ).fetchall()[0][0]
    )


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir():
        with child.open("rb") as fh:
            os.fsync(fh.fileno())


@dataclass
class VerifyResult:
    """What ``releases verify`` found: ok, or every difference."""

    release_id: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(store: Store, release_id: str) -> dict[str, Any]:
    path = store.release_dir(release_id) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"cannot read the manifest of release {release_id} at {path}: {exc}") from None


def verify_release(store: Store, release_id: str) -> VerifyResult:
    """Recompute every file hash against the manifest, and the manifest hash against the catalog."""
    row = store.catalog.release(release_id)
    result = VerifyResult(release_id)
    folder = store.release_dir(release_id)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        result.problems.append(f"{manifest_path} is missing")
        return result
    actual_hash = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    if actual_hash != row["manifest_hash"]:
        result.problems.append(
            f"manifest.json was modified: sha256 {actual_hash[:16]}... differs from the catalog's {row['manifest_hash'][:16]}..."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        result.problems.append(f"manifest.json is not valid JSON: {exc}")
        return result
    files = manifest.get("files", {})
    for name, info in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            result.problems.append(f"{name} is missing")
            continue
        digest = sha256_file(path)
        if digest != info.get("sha256"):
            result.problems.append(f"{name} was modified: sha256 {digest[:16]}... differs from the manifest's {str(info.get('sha256'))[:16]}...")
    for path in sorted(folder.iterdir()):
        if path.name != "manifest.json" and path.name not in files:
            result.problems.append(f"{path.name} is not listed in the manifest")
    return result
