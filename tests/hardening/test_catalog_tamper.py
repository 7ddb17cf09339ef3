"""A tampered catalog is caught: every UPDATE, DELETE or INSERT done behind synthmed's back, on every table.

The attacker here can write the store's files (the catalog, manifests, the head file) but does not have
the store key. Each case changes a copy of an evaluated, reviewed store with plain DuckDB, then
``synthmed audit verify`` and ``synthmed releases verify`` must fail naming what changed, and the
untouched copy must verify (so the checks can fail for the right reason only).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import duckdb
import pytest

from synth.catalog import GENESIS
from synth.release import Store


def _sql(store: Store, *statements: str) -> None:
    con = duckdb.connect(str(store.catalog.path))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def _verify(cli, store: Store, release_id: str) -> tuple[str, str]:
    code, out, audit_err = cli("audit", "verify", "--store", store.root)
    assert code == 1, out
    code, out, release_err = cli("releases", "verify", release_id, "--store", store.root)
    assert code == 1, out
    return audit_err, release_err


def test_the_untouched_store_verifies(built_store, cli) -> None:
    code, out, err = cli("audit", "verify", "--store", built_store.root)
    assert code == 0 and "chain intact" in out, err
    code, out, err = cli("releases", "verify", built_store.release_id, "--store", built_store.root)
    assert code == 0 and "chain intact" in out, err


TAMPERING = {
    "release made DP": ("UPDATE releases SET generator = 'dp_mst', epsilon = 0.5", "releases row"),
    "release row deleted": ("DELETE FROM releases", "releases row chained"),
    "evaluation risk lowered": ("UPDATE evaluations SET risk_level = 'low', fidelity = 0.99", "evaluations row"),
    "evaluation deleted": ("DELETE FROM evaluations", "evaluations row chained"),
    "metric result changed": ("UPDATE metric_results SET value = 0.99", "metric_results row"),
    "metric result inserted": ("INSERT INTO metric_results (evaluation_id, name, value) VALUES ('x', 'privacy.fake', 0)",
                               "not in the chain"),
    "review flipped": ("UPDATE reviews SET decision = 'approve'", "reviews row"),
    "review deleted": ("DELETE FROM reviews", "reviews row chained"),
    "review inserted in 2030": (
        "INSERT INTO reviews (review_id, release_id, decision, reviewer, created_at) "
        "SELECT 'review-forged', release_id, 'approve', 'nobody', TIMESTAMP '2030-01-01' FROM releases",
        "review_id='review-forged'"),
    "newest rows and their chain entries deleted": (
        "DELETE FROM reviews; DELETE FROM chain WHERE seq = (SELECT max(seq) FROM chain)", "newest catalog rows were deleted"),
    "chain dropped": ("DROP TABLE chain", "no hash chain"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_caught(case: str, store_copy: Store, built_store, cli) -> None:
    sql, expected = TAMPERING[case]
    _sql(store_copy, *[s for s in sql.split("; ") if s])
    audit_err, release_err = _verify(cli, store_copy, built_store.release_id)
    assert expected in audit_err, audit_err
    assert "catalog:" in release_err


def test_manifest_and_catalog_hash_changed_together(store_copy: Store, built_store, cli) -> None:
    """The old verify compared the two and said OK; the chain and the row-vs-manifest check do not."""
    folder = store_copy.release_dir(built_store.release_id)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["generator"]["name"], manifest["generator"]["epsilon"] = "dp_mst", 0.5
    raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (folder / "manifest.json").write_bytes(raw)
    _sql(store_copy, f"UPDATE releases SET manifest_hash = '{hashlib.sha256(raw).hexdigest()}'")
    audit_err, release_err = _verify(cli, store_copy, built_store.release_id)
    assert "the catalog says generator = 'independent' but the manifest says 'dp_mst'" in release_err
    assert "releases row" in audit_err


def test_a_rechained_catalog_without_the_key_is_caught(store_copy: Store, built_store, cli) -> None:
    """Recomputing every entry hash after an edit gives a consistent chain, but not signatures under store.key."""
    from synth.catalog import _entry_hash, _row_hash, _tables, canonical_row

    con = duckdb.connect(str(store_copy.catalog.path))
    try:
        con.execute("UPDATE reviews SET decision = 'approve'")
        con.execute("DELETE FROM chain")
        guess = b"not the store key"
        prev, seq = GENESIS, 0
        for table in [t for t in _tables(con) if t != "chain"]:
            cur = con.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            for values in cur.fetchall():
                canonical = canonical_row(dict(zip(names, values)))
                seq += 1
                entry = _entry_hash(prev, table, canonical)
                mac = hmac.new(guess, f"{seq}:{entry}".encode(), hashlib.sha256).hexdigest()
                con.execute("INSERT INTO chain VALUES (?, ?, ?, ?, ?, ?, 'forged', NULL)",
                            [seq, table, _row_hash(canonical), prev, entry, mac])
                prev = entry
    finally:
        con.close()
    (store_copy.root / "catalog.head").write_text(json.dumps({"seq": seq, "entry_hash": prev, "mac": "0" * 64}))
    audit_err, _ = _verify(cli, store_copy, built_store.release_id)
    assert "not signed by this store's key" in audit_err


def test_a_missing_head_or_key_is_caught(store_copy: Store, built_store, cli) -> None:
    (store_copy.root / "catalog.head").unlink()
    audit_err, _ = _verify(cli, store_copy, built_store.release_id)
    assert "signed chain head" in audit_err and "missing" in audit_err
    (store_copy.root / "store.key").unlink()
    audit_err, _ = _verify(cli, store_copy, built_store.release_id)
    assert "store key" in audit_err


def test_a_store_key_others_can_read_is_refused(store_copy: Store, built_store, cli) -> None:
    key = store_copy.root / "store.key"
    key.chmod(0o644)
    audit_err, _ = _verify(cli, store_copy, built_store.release_id)
    assert "can be read by other users" in audit_err and "chmod 600" in audit_err
    code, _, err = cli("release", "--schema", "kr_claims", "--data", built_store.prepared, "-g", "independent",
                       "-n", "10", "--store", store_copy.root, "-q")
    assert code == 2 and "chmod 600" in err


def test_writes_are_refused_on_a_cut_chain(store_copy: Store, built_store) -> None:
    """Appending after the newest rows were deleted would overwrite the head and hide the deletion."""
    from synth.errors import CatalogError

    _sql(store_copy, "DELETE FROM reviews", "DELETE FROM chain WHERE seq = (SELECT max(seq) FROM chain)")
    with pytest.raises(CatalogError, match="no longer reaches its signed head"):
        store_copy.catalog.add_review(
            built_store.release_id, decision="approve", comment="", manifest_hash="x", issuer="i", subject="s",
            email=None, display_name="d", role="privacy_officer", evaluation_id=None, risk_level=None,
        )


def test_chain_state_for_the_app(built_store, store_copy: Store) -> None:
    state = Store(built_store.root).catalog.chain_state()
    assert state.ok and state.entries >= 4 and state.head and "intact" in state.summary
    _sql(store_copy, "UPDATE reviews SET decision = 'approve'")
    broken = store_copy.catalog.chain_state()
    assert not broken.ok and "BROKEN" in broken.summary and broken.problems


def test_an_old_catalog_without_chain_says_how_to_rebuild(tmp_path: Path, built_store, cli) -> None:
    import shutil

    root = tmp_path / "old"
    shutil.copytree(built_store.root, root)
    store = Store(root)
    _sql(store, "DROP TABLE chain")
    (root / "catalog.head").unlink()
    code, _, err = cli("release", "--schema", "kr_claims", "--data", built_store.prepared, "-g", "independent", "-n", "10",
                       "--store", root, "-q")
    assert code == 2 and "synthmed audit rebuild" in err
    assert {p.name for p in store.releases_dir.iterdir()} == {built_store.release_id}
    code, out, err = cli("audit", "rebuild", "--store", root)
    assert code == 0 and "registered 1 release(s)" in out, err
    assert [p.name for p in root.iterdir() if ".replaced-" in p.name]  # the old catalog is kept
    code, out, err = cli("audit", "verify", "--store", root)
    assert code == 0, err
    assert store.catalog.store_events()[0]["kind"] == "catalog_rebuilt"


def test_a_forged_approval_does_not_survive_a_rebuild(store_copy: Store, built_store, cli) -> None:
    """The officer rejected the release; an edit turns it into an approval and breaks the chain. The rebuild
    brings the release back with no review and no evaluation (neither can be verified), not with the forgery."""
    _sql(store_copy, "UPDATE reviews SET decision = 'approve'", "UPDATE evaluations SET risk_level = 'low'")
    assert not store_copy.catalog.chain_state().ok
    code, out, err = cli("audit", "rebuild", "--store", store_copy.root)
    assert code == 0 and "registered 1 release(s)" in out, err
    assert store_copy.catalog.release_ids() == {built_store.release_id}
    assert store_copy.catalog.reviews() == [] and store_copy.catalog.evaluations(built_store.release_id) == []
    code, _, err = cli("audit", "verify", "--store", store_copy.root)
    assert code == 0, err
    kept = [p for p in store_copy.root.iterdir() if p.name.startswith("catalog.duckdb.replaced-")]
    assert len(kept) == 1  # the tampered file is kept for the record, not read back
    con = duckdb.connect(str(kept[0]), read_only=True)
    try:
        assert con.execute("SELECT decision FROM reviews").fetchall() == [("approve",)]
    finally:
        con.close()


def test_a_garbled_head_file_is_a_broken_chain_not_a_crash(store_copy: Store, built_store, cli) -> None:
    (store_copy.root / "catalog.head").write_text("{garbage")
    state = store_copy.catalog.chain_state()
    assert not state.ok and any("catalog.head" in p for p in state.problems)
    audit_err, _ = _verify(cli, store_copy, built_store.release_id)
    assert "cannot be read" in audit_err
