"""The whole store checked (``synthmed audit verify``) and the catalog rebuilt from manifests (``audit rebuild``).

Verification reads only: the catalog's chain and signed head, every release against its manifest and row,
folders the catalog does not know, and what sits in quarantine. A rebuild never deletes: the old catalog
and head are renamed beside the new ones, and the rebuild itself is a chained ``store_events`` row.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from synth.catalog import HEAD_FILE, ChainState, utcnow
from synth.errors import CatalogError, CatalogLockedError, ReleaseError
from synth.release import RELEASE_ID, TMP_PREFIX, Store, file_problems, verify_release


@dataclass
class AuditResult:
    """What ``audit verify`` found: problems (the store cannot be trusted as it is) and notes."""

    store: Path
    chain: ChainState | None = None
    releases: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: Store) -> AuditResult:
    """Check everything in a store; never changes it."""
    result = AuditResult(store.root)
    folders = _release_folders(store)
    if not store.catalog.path.exists():
        if folders:
            result.problems.append(
                f"no catalog ({store.catalog.path}) but {len(folders)} release folder(s): rebuild it with "
                f"`synthmed audit rebuild --store {store.root}`"
            )
        else:
            result.notes.append(f"no catalog at {store.catalog.path} and no releases: an empty store")
        return result
    result.chain = store.catalog.chain_state()
    result.problems += [f"catalog: {p}" for p in result.chain.problems]
    try:
        rows = store.catalog.releases()
    except CatalogError as exc:
        result.problems.append(str(exc))
        return result
    known = {r["release_id"] for r in rows}
    for row in rows:
        result.releases += 1
        try:
            check = verify_release(store, row["release_id"], chain=False)
        except (ReleaseError, CatalogError) as exc:
            result.problems.append(f"release {row['release_id']}: {exc}")
            continue
        result.problems += [f"release {row['release_id']}: {p}" for p in check.problems]
    for name in sorted(set(folders) - known):
        result.problems.append(
            f"releases/{name} has no catalog row: it is quarantined by the next release, or registered by "
            "`synthmed audit rebuild` if the catalog lost it"
        )
    if store.quarantine_dir.is_dir():
        for path in sorted(store.quarantine_dir.iterdir()):
            result.notes.append(f"quarantined (not deleted, not in the catalog): {path}")
    return result


def _release_folders(store: Store) -> list[str]:
    if not store.releases_dir.is_dir():
        return []
    return sorted(p.name for p in store.releases_dir.iterdir() if not p.name.startswith(TMP_PREFIX))


def manifest_row(manifest: dict[str, Any], manifest_hash: str, path: Path) -> dict[str, Any]:
    """The catalog's release row as the manifest states it (``requested_by`` is not public, so unknown)."""
    gen = manifest["generator"]
    return {
        "release_id": manifest["release_id"],
        "created_at": datetime.fromisoformat(str(manifest["created_at"]).rstrip("Z")),
        "schema_name": manifest["schema"]["name"],
        "schema_hash": manifest["schema"]["hash"],
        "generator": gen["name"],
        "family": gen["family"],
        "differentially_private": bool(gen["differentially_private"]),
        "epsilon": gen.get("epsilon"),
        "delta": gen.get("delta"),
        "seed": manifest["seed"],
        "n_patients": manifest["n_patients"],
        "rows_json": json.dumps(manifest["rows"]),
        "params_json": json.dumps(gen["params"], default=str),
        "manifest_hash": manifest_hash,
        "path": str(path),
        "schema_yaml": _schema_text(path, manifest),
    }


def _schema_text(folder: Path, manifest: dict[str, Any]) -> str | None:
    """The release's ``schema.yaml`` (issue 15) as the catalog keeps it; None for releases made before."""
    name = manifest["schema"].get("file")
    path = folder / str(name)
    if not name or not RELEASE_ID.fullmatch(str(name)) or ".." in str(name):  # a plain name inside the folder only
        return None
    if not path.is_file() or path.is_symlink():  # a missing file is already one of the folder's file problems
        return None
    return path.read_bytes().decode("utf-8", errors="replace")


@dataclass
class Rebuilt:
    """What ``audit rebuild`` did: releases registered, folders left out (and why), where the old files went."""

    registered: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    kept: list[Path] = field(default_factory=list)
    event_id: str | None = None


def rebuild_catalog(store: Store) -> Rebuilt:
    """A new catalog registering every release folder whose files match its manifest.

    Refused while the current catalog's chain is intact (there is nothing to rebuild). The old catalog and
    head are renamed ``*.replaced-<time>`` and kept; evaluations and reviews are not carried over (they were
    not verifiable), so releases are evaluated again.
    """
    done = Rebuilt()
    with store.write_lock():
        cat = store.catalog
        if cat.path.exists():
            try:
                state = cat.chain_state()
            except CatalogLockedError:
                raise
            except CatalogError:
                state = None  # unreadable: rebuilt below, the file kept
            if state is not None and state.ok:
                raise CatalogError(
                    f"the catalog {cat.path} and its chain are intact ({state.entries:,} entries): there is nothing "
                    "to rebuild (`synthmed audit verify` checks it)"
                )
        stamp = f"{utcnow():%Y%m%dT%H%M%S%f}"
        for path in (cat.path, cat.path.with_name(cat.path.name + ".wal"), store.root / HEAD_FILE):
            if path.exists():
                kept = path.with_name(f"{path.name}.replaced-{stamp}")
                os.replace(path, kept)
                done.kept.append(kept)
        rows = []
        for name in _release_folders(store):
            folder = store.releases_dir / name
            problems, row = _registrable(folder, name)
            if problems:
                done.skipped[name] = problems
            else:
                rows.append(row)
        rows.sort(key=lambda r: r["created_at"])
        done.registered = [r["release_id"] for r in rows]
        pending = store.pending_dir
        if pending.is_dir():
            for journal in pending.iterdir():
                journal.unlink()
        done.event_id = cat.add_store_event(
            "catalog_rebuilt",
            {"registered": done.registered, "skipped": done.skipped, "kept": [str(p) for p in done.kept]},
            releases=rows,
        )
    return done


def _registrable(folder: Path, name: str) -> tuple[list[str], dict[str, Any]]:
    if not folder.is_dir() or folder.is_symlink():
        return [f"{folder} is not a plain folder"], {}
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file() or manifest_path.is_symlink():
        return ["manifest.json is missing"], {}
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
        if manifest.get("release_id") != name:
            return [f"its manifest names release {manifest.get('release_id')!r}, not the folder's name"], {}
        problems = file_problems(folder, manifest)
        row = manifest_row(manifest, hashlib.sha256(raw).hexdigest(), folder)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return [f"manifest.json cannot be read as a synthmed manifest ({type(exc).__name__}: {exc})"], {}
    return problems, row

