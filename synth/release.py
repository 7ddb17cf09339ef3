"""Immutable releases: ``<store>/releases/<release_id>/`` with one Parquet file per table and a manifest.

The folder is written under a temporary name, its catalog row inserted in a transaction during which
the folder is renamed into place, and the transaction committed. A process killed at any point leaves
either nothing or a temporary folder / a folder named in ``.pending/``, which ``reconcile`` removes the
next time the store is written, so a release is in the catalog whole or not at all. A folder the tool
cannot account for (no catalog row, not its own) is moved to ``quarantine/`` and reported, never deleted;
release folders without any catalog stop every write until the catalog is rebuilt (``synthmed audit rebuild``).
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from data_schemas.errors import SchemaError
from data_schemas.io import builtin_names, load_schema, parse_schema, schema_to_yaml
from data_schemas.model import Schema
from synth.catalog import Catalog, ChainState, load_store_key, utcnow
from synth.errors import CatalogError, ReleaseError, SynthError
from synth.load import Dataset
from synth.spool import WrittenCohort, distinct_patients

FAIL_ENV = "SYNTHMED_FAIL_AT"  # failure injection for tests: "<point>" raises, "<point>:kill" exits hard
FAIL_POINTS = ("after_staging", "after_files", "after_manifest", "before_rename", "after_rename", "after_commit")
TMP_PREFIX = ".tmp-"
QUARANTINE = "quarantine"
PENDING = ".pending"
STAGING = ".staging"  # releases being sampled, outside the write lock (Store.staging)
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
SCHEMA_FILE = "schema.yaml"  # the schema a release was made with, hashed in its manifest (issue 15)
LIBRARIES = ("synthmed", "sdv", "ctgan", "copulas", "rdt", "torch", "duckdb", "pandas", "numpy", "pyarrow")


class InjectedFailure(RuntimeError):
    """Raised at a failure point named in SYNTHMED_FAIL_AT (tests of atomicity only)."""


def checkpoint(point: str) -> None:
    """Fail here when SYNTHMED_FAIL_AT names ``point`` (tests of atomicity only)."""
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
    """A store folder: ``catalog.duckdb``, ``releases/``, ``store.key`` and ``quarantine/``."""

    root: Path
    notify: Callable[[str], None] | None = field(default=None, compare=False, repr=False)  # waits, quarantines

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.root / "catalog.duckdb", on_wait=self.notify)

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE

    @property
    def pending_dir(self) -> Path:
        return self.root / PENDING

    @property
    def staging_dir(self) -> Path:
        return self.root / STAGING

    @contextmanager
    def staging(self, release_id: str) -> Iterator[Path]:
        """A private folder for a release's files while they are sampled, before the write lock is taken
        (so other writers are not held up for the whole sample). Removed on failure; a folder whose writer died
        is removed by the next ``reconcile`` (its lock file is free then)."""
        self.release_dir(release_id)  # the id is checked before it names a folder
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        folder, lock = self.staging_dir / release_id, self.staging_dir / f"{release_id}.lock"
        while True:
            fh = lock.open("a")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # held until the files are in the release (or removed)
            if lock.exists() and os.stat(lock).st_ino == os.fstat(fh.fileno()).st_ino:
                break  # still the file at that name: a reconcile did not remove it between open and lock
            fh.close()
        try:
            folder.mkdir()
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # gone already when the release was written
            lock.unlink(missing_ok=True)
            fh.close()

    def release_dir(self, release_id: str) -> Path:
        """``releases/<release_id>``, refused unless the id is a plain name that resolves inside ``releases/``."""
        if not isinstance(release_id, str) or not RELEASE_ID.fullmatch(release_id) or ".." in release_id:
            raise ReleaseError(
                f"{release_id!r} is not a release id (letters, digits, '.', '_' and '-' only, starting with a letter or digit)"
            )
        path = self.releases_dir / release_id
        base = self.releases_dir.resolve()
        if path.resolve().parent != base and path.exists():
            raise ReleaseError(f"release folder {path} resolves to {path.resolve()}, outside {base}")
        return path

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """An exclusive lock on the store's releases for one writer (released by the OS if it dies).

        Waits for another writer, saying so once through ``notify``, rather than failing.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".write.lock").open("a") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.notify is not None:
                    self.notify(f"waiting for another synthmed process writing to the store {self.root}")
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def preflight(self, *, secret: bytes | None = None) -> None:
        """Before hours of fitting or evaluating: fail now if the result could not be registered at the end
        (and refuse a pseudonymisation ``secret`` that is the store's own key)."""
        self.check_catalog()
        self.catalog.preflight()
        key = load_store_key(self.root, create=False)
        if secret is not None and key is not None and secret.strip() in (key, key.hex().encode()):
            raise ReleaseError(
                f"the pseudonymisation key is the store key {self.root / 'store.key'}; they must be different secrets"
            )

    def check_catalog(self) -> None:
        """Refuse to go on when release folders exist but the catalog is gone (it would hide them)."""
        if self.catalog.path.exists() or not self.releases_dir.is_dir():
            return
        folders = [p.name for p in self.releases_dir.iterdir() if not p.name.startswith(TMP_PREFIX)]
        if folders:
            raise ReleaseError(
                f"the store {self.root} has {len(folders)} release folder(s) but no catalog ({self.catalog.path} is "
                f"missing); nothing was changed. Put the catalog back, or rebuild it from the release manifests with "
                f"`synthmed audit rebuild --store {self.root}`"
            )

    def reconcile(self) -> Reconciled:
        """Finish what killed writers left: remove this tool's own unfinished folders, quarantine the rest.

        Removed: ``releases/.tmp-*`` folders and folders a pending-write journal names that never reached the
        catalog (both written only by ``write_release``). Any other folder without a catalog row is moved to
        ``quarantine/`` and reported, never deleted. Call it holding ``write_lock``.
        """
        self.check_catalog()
        done = Reconciled(removed=self._remove_dead_staging())
        if not self.releases_dir.is_dir():
            return done
        with self.catalog.connect(read_only=True, wait=_catalog_wait()) if self.catalog.path.exists() else _nothing() as con:
            known = {r[0] for r in con.execute("SELECT release_id FROM releases").fetchall()} if con is not None else set()
        pending = {p.name for p in self.pending_dir.iterdir()} if self.pending_dir.is_dir() else set()
        for child in sorted(self.releases_dir.iterdir()):
            if child.name.startswith(TMP_PREFIX) and child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
                done.removed.append(child.name)
            elif child.name in known:
                continue
            elif child.name in pending and child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
                done.removed.append(child.name)
            else:
                self.quarantine_dir.mkdir(exist_ok=True)
                target = self.quarantine_dir / f"{child.name}.{utcnow():%Y%m%dT%H%M%S%f}"
                os.replace(child, target)
                done.quarantined.append(str(target))
                if self.notify is not None:
                    self.notify(f"releases/{child.name} had no catalog row and was not left by synthmed: moved to {target}")
        for name in pending:
            (self.pending_dir / name).unlink(missing_ok=True)
        return done

    def _remove_dead_staging(self) -> list[str]:
        """Staging folders whose writer is gone (their lock file can be taken): removed."""
        removed: list[str] = []
        if not self.staging_dir.is_dir():
            return removed
        names = {p.name.removesuffix(".lock") for p in self.staging_dir.iterdir() if not p.is_symlink()}
        for name in sorted(names):
            folder, lock = self.staging_dir / name, self.staging_dir / f"{name}.lock"
            with lock.open("a") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live release is still sampling into it
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(f"{STAGING}/{name}")
                lock.unlink(missing_ok=True)  # also a lock left alone when its folder had become the release
        return removed


@dataclass
class Reconciled:
    """What ``Store.reconcile`` did: this tool's unfinished folders removed, foreign ones quarantined."""

    removed: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _catalog_wait() -> float:
    from synth.catalog import _lock_wait

    return _lock_wait()


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


def os_user() -> str:
    """The login name of the user running this process ('unknown' when the system cannot tell)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


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
    synthetic: Dataset | WrittenCohort,
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
    requested_by: str | None = None,
    private_source: dict[str, Any] | None = None,
    replicated_uniques: dict[str, Any] | None = None,
) -> ReleaseInfo:
    """Write the folder and register it atomically (see the module docstring).

    ``source`` is what the manifest says about the source data (split parameters only: it is public);
    ``private_source`` (split sizes and fingerprints, real row counts: ``synth.pipeline.private_source``)
    goes to the catalog's private ``release_sources`` table in the same transaction, never to the manifest.

    ``requested_by`` (default: the OS user) is recorded in the catalog row with the OS user, never in the
    public manifest: the review app refuses an approval by the identity that requested the release.

    ``replicated_uniques`` (``synth.uniques.ReplicatedUniques.to_dict``: counts only) goes to the manifest.

    ``synthetic`` is a dataset, written here, or a cohort already written batch by batch into a staging folder
    (``Store.staging``, ``synth.spool.write_batches``), moved into the release under the lock.
    """
    with store.write_lock():
        store.reconcile()
        release_id = release_id or new_release_id(schema.name, generator)
        final = store.release_dir(release_id)
        if final.exists():
            raise ReleaseError(f"release folder {final} already exists")
        store.releases_dir.mkdir(parents=True, exist_ok=True)
        tmp = store.releases_dir / f"{TMP_PREFIX}{release_id}"
        journal = store.pending_dir / release_id
        try:
            if isinstance(synthetic, WrittenCohort):
                os.replace(synthetic.folder, tmp)
                paths = {t: tmp / p.name for t, p in synthetic.paths.items()}
                rows, n_patients = dict(synthetic.rows), synthetic.n_patients
            else:
                paths = synthetic.write(tmp)
                rows, n_patients = synthetic.row_counts(), distinct_patients(synthetic)
            schema_text = _write_schema(tmp, schema)
            checkpoint("after_files")
            created_at = utcnow()
            manifest: dict[str, Any] = {
                "release_id": release_id,
                "created_at": created_at.isoformat(timespec="microseconds") + "Z",
                "schema": {"name": schema.name, "version": schema.version, "hash": schema.fingerprint, "file": SCHEMA_FILE},
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
                "n_patients": n_patients,
                "rows": rows,
                "source": source,
                "sample_report": sample_report,
                **({"replicated_uniques": replicated_uniques} if replicated_uniques is not None else {}),
                "files": {
                    p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in [*paths.values(), tmp / SCHEMA_FILE]
                },
            }
            manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
            (tmp / "manifest.json").write_bytes(manifest_bytes)
            _fsync_dir(tmp)
            checkpoint("after_manifest")
            manifest_hash = hashlib.sha256(manifest_bytes).hexdigest()

            def rename() -> None:
                checkpoint("before_rename")
                store.pending_dir.mkdir(exist_ok=True)
                journal.touch()  # names the folder as this tool's own until the commit (see Store.reconcile)
                os.replace(tmp, final)
                checkpoint("after_rename")

            store.catalog.add_release(
                {
                    "release_id": release_id,
                    "created_at": created_at,
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
                    "manifest_hash": manifest_hash,
                    "path": str(final),
                    "requested_by": (requested_by or "").strip() or os_user(),
                    "requested_os_user": os_user(),
                    "schema_yaml": schema_text,
                },
                private=None if private_source is None else {
                    "created_at": utcnow(),
                    "source_fingerprint": private_source.get("fingerprint"),
                    "split_json": json.dumps(private_source.get("split")),
                    "train_rows_json": json.dumps(private_source.get("train_rows")),
                    "holdout_rows_json": json.dumps(private_source.get("holdout_rows")),
                    # the chain hashes this row into the head that `audit verify` and the app show: without
                    # 128 random bits a guess of the exact counts could be checked against it
                    "salt": secrets.token_hex(16),
                },
                before_commit=rename,
            )
            journal.unlink(missing_ok=True)
            checkpoint("after_commit")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if journal.exists():  # renamed by us but maybe not committed: reconcile decides under the lock
                try:
                    store.reconcile()
                except SynthError:
                    pass  # the next write reconciles; the original failure is what the user must see
            raise
        return ReleaseInfo(release_id, final, manifest, manifest_hash)


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir():
        with child.open("rb") as fh:
            os.fsync(fh.fileno())


@dataclass
class VerifyResult:
    """What ``releases verify`` found: ok, or every difference."""

    release_id: str
    problems: list[str] = field(default_factory=list)
    chain: ChainState | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _write_schema(folder: Path, schema: Schema) -> str:
    """Write the schema beside the tables as YAML that reads back to the very same schema (same hash)."""
    text = schema_to_yaml(schema)
    if parse_schema(text, source=SCHEMA_FILE).fingerprint != schema.fingerprint:
        raise ReleaseError(f"schema {schema.name!r} does not read back from its YAML unchanged; the release cannot carry it")
    (folder / SCHEMA_FILE).write_text(text, encoding="utf-8")
    return text


def release_schema(store: Store, release_id: str, *, fallback: Schema | None = None) -> Schema:
    """The schema release ``release_id`` was made with, from its own folder, from any working folder.

    ``schema.yaml`` must match the hash the manifest lists for it and the catalog's copy, and read back to the
    schema hash of both the manifest and the catalog. A release made before releases carried their schema
    uses the built-in schema of its name, or ``fallback`` (a ``--schema``), checked against the same hash.
    """
    row = store.catalog.release(release_id)
    manifest = read_manifest(store, release_id)
    meta = manifest.get("schema") if isinstance(manifest.get("schema"), dict) else {}
    schema = _carried_schema(store.release_dir(release_id), manifest, catalog_copy=row.get("schema_yaml"))
    if schema is not None:
        if fallback is not None and fallback.fingerprint != schema.fingerprint:
            raise ReleaseError(
                f"release {release_id} carries its own schema {schema.name!r} (hash {schema.fingerprint[:12]}, "
                f"{schema.source}); the schema given ({fallback.source}, {fallback.name!r}, hash "
                f"{fallback.fingerprint[:12]}) is a different one: leave out --schema"
            )
    elif fallback is not None:
        schema = fallback
    elif meta.get("name") in builtin_names():
        schema = load_schema(str(meta["name"]))
    else:
        raise ReleaseError(
            f"release {release_id} was made before releases carried their schema, and its schema {meta.get('name')!r} "
            "is not a built-in one: give the schema file with --schema (it is checked against the release's schema hash)"
        )
    if schema.fingerprint != meta.get("hash") or schema.fingerprint != row.get("schema_hash"):
        raise ReleaseError(
            f"release {release_id} was made with schema {meta.get('name')!r} (hash {str(meta.get('hash'))[:12]}); "
            f"the schema {schema.source} has hash {schema.fingerprint[:12]}"
        )
    return schema


def is_release_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a release's manifest (a JSON object naming a release id and its schema)."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "release_id" in manifest and isinstance(manifest.get("schema"), dict)


def folder_schema(folder: str | Path, *, hint: Schema | None = None) -> Schema:
    """The schema a release folder carries: checked through its store's catalog when the folder sits in one
    (``<store>/releases/<id>``), else against the folder's own manifest (a copied release folder).

    ``hint`` (a ``--schema``) must be the same schema (same hash); it is used only for a release made before
    releases carried their schema, checked against the hash its manifest lists."""
    folder = Path(folder)
    store = Store(folder.parent.parent)
    if folder.parent.name == "releases" and store.catalog.path.is_file():
        return release_schema(store, folder.name, fallback=hint)
    path = folder / "manifest.json"
    if not folder.is_dir():
        raise ReleaseError(f"{folder} is neither a folder nor a release id of the store: give a data folder and its --schema")
    if not path.is_file():
        raise ReleaseError(f"{folder} is not a release folder (it has no manifest.json): give its schema with --schema")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read the manifest {path}: {exc}") from None
    schema = _carried_schema(folder, manifest, catalog_copy=None) if isinstance(manifest, dict) else None
    meta = manifest.get("schema") if isinstance(manifest, dict) and isinstance(manifest.get("schema"), dict) else {}
    if schema is not None:
        if hint is not None and hint.fingerprint != schema.fingerprint:
            raise ReleaseError(
                f"the release folder {folder} carries its own schema {schema.name!r} (hash {schema.fingerprint[:12]}); "
                f"the schema given ({hint.source}, {hint.name!r}, hash {hint.fingerprint[:12]}) is a different one: "
                "leave out --schema"
            )
        return schema
    if hint is None:
        raise ReleaseError(f"the release folder {folder} carries no schema (made before releases did): give it with --schema")
    if hint.fingerprint != meta.get("hash"):
        raise ReleaseError(
            f"the release folder {folder} was made with schema {meta.get('name')!r} (hash {str(meta.get('hash'))[:12]}); "
            f"the schema given ({hint.source}) has hash {hint.fingerprint[:12]}"
        )
    return hint


def _carried_schema(folder: Path, manifest: dict[str, Any], *, catalog_copy: str | None) -> Schema | None:
    """The ``schema.yaml`` a release folder carries, checked against its manifest (and the catalog's copy)."""
    meta = manifest.get("schema") if isinstance(manifest.get("schema"), dict) else {}
    name = meta.get("file")
    if not name:
        return None
    path = folder / str(name)
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    listed = files.get(name) if isinstance(files.get(name), dict) else {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read the release's schema {path}: {exc}") from None
    if hashlib.sha256(raw).hexdigest() != listed.get("sha256"):
        raise ReleaseError(f"{path} was modified since the release was made (its sha256 differs from the manifest's)")
    text = raw.decode("utf-8", errors="replace")
    if catalog_copy is not None and catalog_copy != text:
        raise ReleaseError(f"{path} differs from the copy of the schema kept in the catalog")
    try:
        schema = parse_schema(text, source=str(path))
    except SchemaError as exc:
        raise ReleaseError(f"the release's schema {path} cannot be read: {exc}") from None
    if schema.fingerprint != meta.get("hash"):
        raise ReleaseError(f"{path} has hash {schema.fingerprint[:12]}, not the manifest's schema hash {str(meta.get('hash'))[:12]}")
    return schema


def read_manifest(store: Store, release_id: str) -> dict[str, Any]:
    path = store.release_dir(release_id) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"cannot read the manifest of release {release_id} at {path}: {exc}") from None


def verify_release(store: Store, release_id: str, *, chain: bool = True) -> VerifyResult:
    """Check a release end to end: every file against the manifest, the manifest's hash and content against
    the catalog's row, and (``chain``) the catalog's hash chain, so a row and manifest changed together
    are caught too."""
    folder = store.release_dir(release_id)
    try:
        row: dict[str, Any] | None = store.catalog.release(release_id)
    except CatalogError:
        if not folder.is_dir():
            raise
        row = None  # a folder the catalog does not know: checked as far as it can be, and reported
    result = VerifyResult(release_id)
    if chain:
        result.chain = store.catalog.chain_state()
        result.problems += [f"catalog: {p}" for p in result.chain.problems]
    if row is None:
        result.problems.append(f"the release folder {folder} exists but the catalog has no row for it")
    if not folder.is_dir() or folder.is_symlink():
        result.problems.append(f"the release folder {folder} is missing (or is not a plain folder)")
        return result
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file() or manifest_path.is_symlink():
        result.problems.append(f"{manifest_path} is missing")
        return result
    actual_hash = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    if row is not None and actual_hash != row["manifest_hash"]:
        result.problems.append(
            f"manifest.json was modified: sha256 {actual_hash[:16]}... differs from the catalog's {str(row['manifest_hash'])[:16]}..."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        result.problems.append(f"manifest.json is not valid JSON: {exc}")
        return result
    if not isinstance(manifest, dict):
        result.problems.append("manifest.json is not a JSON object")
        return result
    if row is not None:
        result.problems += row_mismatches(row, manifest)
    result.problems += file_problems(folder, manifest)
    return result


def file_problems(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Every file of a release folder against its manifest: missing, modified, or not listed."""
    problems = []
    files = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
    for name, info in sorted(files.items()):
        path = folder / name
        if not RELEASE_ID.fullmatch(name) or ".." in name:
            problems.append(f"the manifest lists {name!r}, which is not a plain file name")
            continue
        if not path.is_file() or path.is_symlink():
            problems.append(f"{name} is missing (or is not a plain file)")
            continue
        digest = sha256_file(path)
        if not isinstance(info, dict) or digest != info.get("sha256"):
            expected = str(info.get("sha256") if isinstance(info, dict) else info)
            problems.append(f"{name} was modified: sha256 {digest[:16]}... differs from the manifest's {expected[:16]}...")
    for path in sorted(folder.iterdir()):
        if path.name != "manifest.json" and path.name not in files:
            problems.append(f"{path.name} is not listed in the manifest")
    return problems


def row_mismatches(row: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Where the catalog's release row says something other than the release's manifest (empty when they agree)."""
    gen = manifest.get("generator") if isinstance(manifest.get("generator"), dict) else {}
    sch = manifest.get("schema") if isinstance(manifest.get("schema"), dict) else {}
    expected = {
        "release_id": manifest.get("release_id"), "schema_name": sch.get("name"), "schema_hash": sch.get("hash"),
        "generator": gen.get("name"), "family": gen.get("family"),
        "differentially_private": gen.get("differentially_private"), "epsilon": gen.get("epsilon"),
        "delta": gen.get("delta"), "seed": manifest.get("seed"), "n_patients": manifest.get("n_patients"),
    }
    out = [
        f"the catalog says {col} = {row.get(col)!r} but the manifest says {want!r}"
        for col, want in expected.items()
        if row.get(col) != want
    ]
    for col, want in (("rows_json", manifest.get("rows")), ("params_json", gen.get("params"))):
        try:
            have = json.loads(row.get(col) or "null")
        except json.JSONDecodeError:
            have = row.get(col)
        if have != want:
            out.append(f"the catalog's {col[:-5]} ({have!r}) differ from the manifest's ({want!r})")
    stamp = str(manifest.get("created_at", "")).rstrip("Z")
    created = row.get("created_at")
    if stamp and created is not None and not created.isoformat(timespec="microseconds").startswith(stamp):
        out.append(f"the catalog says created_at = {created.isoformat()} but the manifest says {stamp}")
    return out
