"""Who may decide, enforced where a review is appended: identities, roles, separation of duties, overrides,
two approvals, the audit chain; the CSV export; sign-in settings, the Host allow-list and `synthmed app`'s checks.

The decision tests run on a private copy of the real evaluated store (DuckDB and its hash chain, never
mocked) and call ``record_decision`` directly, as an attacker who skips the app's form would.
"""
from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from synth.errors import CatalogError
from synth.release import Store
from synthmed.review_app import data
from synthmed.review_app.access import Identity, parse_review_config
from synthmed.review_app.decisions import ReviewRow, override_reasons, record_decision, release_status
from synthmed.review_app.errors import ReviewConfigError, ReviewRefusedError, ServeError, SignInConfigError
from synthmed.review_app.hosts import allowed_hosts, host_allowed, is_loopback
from synthmed.review_app.launch import ASGI_FILE, plan
from synthmed.review_app.signin import check_auth_section, find_sign_in
from tests.app.conftest import AUTH_SECTION, CREATOR_EMAIL, ISSUER, AppStore, claims, write_review_config

NOW = time.time()  # when the identity provider signed these people in
ADA = Identity(ISSUER, "ada-0001", "ada@hospital.example", "Ada Lovelace", groups=("synthmed-reviewers",), issued_at=NOW)
GRACE = Identity(ISSUER, "grace-0002", "grace@hospital.example", "Grace Hopper", issued_at=NOW)
EVE = Identity(ISSUER, "eve-0003", "eve@hospital.example", "Eve Reader", groups=("staff",), issued_at=NOW)
ALICE = Identity(ISSUER, "alice-0004", CREATOR_EMAIL, "Alice Creator", groups=("synthmed-reviewers",), issued_at=NOW)
WHY = "The board accepted the residual risk for this aggregate-only use (minutes 2026-12-01)."


@pytest.fixture()
def reviewed_store(store_copy: Store) -> Store:
    """The store copy with reviewers: the group synthmed-reviewers, and Grace by name."""
    write_review_config(store_copy, named=((GRACE.issuer, GRACE.subject),))
    return store_copy


def refused(store: Store, release_id: str, **kw: object) -> str:
    with pytest.raises(ReviewRefusedError) as info:
        record_decision(store, release_id, **kw)
    return " ".join(info.value.problems)


# -- identities and roles ------------------------------------------------------------------------------------


def test_identity_comes_from_the_token_claims_only() -> None:
    assert Identity.from_claims({"is_logged_in": False, "iss": ISSUER, "sub": "x"}) is None
    assert Identity.from_claims({"is_logged_in": True, "sub": "x"}) is None  # no issuer: not identified
    assert Identity.from_claims({"is_logged_in": True, "iss": ISSUER, "sub": " "}) is None
    ada = Identity.from_claims(claims("ada", name="Ada", groups=["a", "b"]))
    assert ada is not None and ada.key == (ISSUER, "ada") and ada.groups == ("a", "b") and ada.display == "Ada"
    one = Identity.from_claims({**claims("x"), "roles": "dpo"}, groups_claim="roles")
    assert one is not None and one.groups == ("dpo",)
    assert Identity.from_claims(claims("y", groups={"not": "a list"})).groups == ()  # type: ignore[union-attr]


def test_is_named_matches_subject_email_username_and_local_part() -> None:
    alice = Identity(ISSUER, "s-1", "Alice@Hospital.example", "Alice", username="alice.c")
    for name in ("s-1", "alice@hospital.example", "ALICE", "alice.c", f"{ISSUER}|s-1"):
        assert alice.is_named(name), name
    for name in ("", "bob", "alice@elsewhere.example", "s-2"):
        assert not alice.is_named(name), name


def test_roles_from_named_identities_and_groups() -> None:
    config = parse_review_config({"review": {
        "reviewer_groups": ["synthmed-reviewers"], "reviewers": [{"issuer": GRACE.issuer, "subject": GRACE.subject}]}})
    assert config.role_of(ADA).label == "reviewer (group synthmed-reviewers)"
    assert config.role_of(GRACE).label == "reviewer (named in review.toml)"
    assert not config.role_of(EVE).can_decide and not config.role_of(None).can_decide
    # the same subject at another issuer is another person
    assert not config.role_of(Identity("https://other.example", GRACE.subject)).can_decide
    pinned = parse_review_config({"review": {"reviewer_groups": ["synthmed-reviewers"], "groups_issuer": "https://x"}})
    assert not pinned.role_of(ADA).can_decide  # groups count only from the pinned issuer


def test_review_config_collects_every_problem() -> None:
    with pytest.raises(ReviewConfigError) as info:
        parse_review_config({"review": {"approvals_required": 3, "reviewers": [{"issuer": ISSUER}],
                                        "reviewer_groups": "admins", "colour": "red"}})
    message = str(info.value)
    for part in ("approvals_required", "reviewers[0]", "reviewer_groups", "colour"):
        assert part in message, part
    with pytest.raises(ReviewConfigError, match=r"\[review\]"):
        parse_review_config({})


# -- the rules, enforced at the append -------------------------------------------------------------------------


def test_only_signed_in_reviewers_decide(reviewed_store: Store, app_store: AppStore) -> None:
    assert "sign in first" in refused(reviewed_store, app_store.copy, identity=None, decision="reject", comment="no")
    assert "not a reviewer" in refused(reviewed_store, app_store.copy, identity=EVE, decision="reject", comment="no")
    assert reviewed_store.catalog.reviews() == []
    data.submit_review(reviewed_store, app_store.copy, identity=GRACE, decision="reject", comment="exact copies")
    (row,) = reviewed_store.catalog.reviews()
    assert (row["issuer"], row["subject"], row["email"], row["display_name"], row["role"]) == (
        ISSUER, GRACE.subject, GRACE.email, "Grace Hopper", "reviewer (named in review.toml)")


def test_a_stale_or_undated_sign_in_cannot_decide(reviewed_store: Store, app_store: AppStore) -> None:
    """Streamlit's sign-in cookie lasts 30 days: a decision needs the identity provider's word from today."""
    stale = replace(ADA, issued_at=NOW - 13 * 3600)
    assert "13 hours old" in refused(reviewed_store, app_store.copy, identity=stale, decision="reject", comment="x")
    undated = replace(ADA, issued_at=None)
    assert "unknown age" in refused(reviewed_store, app_store.copy, identity=undated, decision="reject", comment="x")
    fresh = Identity.from_claims(claims("ada", groups=["synthmed-reviewers"]))
    assert fresh is not None and fresh.issued_at is not None and NOW - 60 < fresh.issued_at <= time.time()
    assert reviewed_store.catalog.reviews() == []


def test_without_review_config_nobody_decides(store_copy: Store, app_store: AppStore) -> None:
    assert "not a reviewer" in refused(store_copy, app_store.copy, identity=ADA, decision="reject", comment="x")


def test_approval_records_identity_role_time_manifest_evaluation_and_verdict(reviewed_store: Store,
                                                                              app_store: AppStore) -> None:
    review_id = record_decision(reviewed_store, app_store.independent, identity=ADA, decision="approve")
    (row,) = reviewed_store.catalog.reviews()
    (ev,) = reviewed_store.catalog.evaluations(app_store.independent)
    release = reviewed_store.catalog.release(app_store.independent)
    assert row["review_id"] == review_id and row["created_at"] is not None
    # the review keeps the verdict it was made on (an independent release: low, or medium on a small sample)
    assert ev["risk_level"] in ("low", "medium")
    assert (row["manifest_hash"], row["evaluation_id"], row["risk_level"]) == (
        release["manifest_hash"], ev["evaluation_id"], ev["risk_level"])
    assert row["override"] is False and row["justification"] == ""
    assert data.releases_frame(reviewed_store).set_index("release_id").loc[app_store.independent, "review_status"] == "approved"
    assert reviewed_store.catalog.chain_state().ok  # the review went in through the chain


def test_creator_cannot_approve_but_may_reject(reviewed_store: Store, app_store: AppStore) -> None:
    problems = refused(reviewed_store, app_store.independent, identity=ALICE, decision="approve")
    assert "requested this release" in problems and CREATOR_EMAIL in problems
    data.submit_review(reviewed_store, app_store.independent, identity=ALICE, decision="reject", comment="not yet")
    # `--requested-by` cannot hide the OS user who ran `synthmed release` (here: whoever runs the tests)
    os_user = reviewed_store.catalog.release(app_store.copy)["requested_os_user"]
    same_login = replace(ADA, subject="x-9", email=f"{os_user}@hospital.example", name="Same Login")
    assert "requested this release" in refused(reviewed_store, app_store.copy, identity=same_login,
                                               decision="approve", override=True, justification=WHY)


def test_high_risk_approval_needs_an_override_with_a_justification(reviewed_store: Store, app_store: AppStore) -> None:
    assert "explicit override" in refused(reviewed_store, app_store.copy, identity=ADA, decision="approve")
    assert "justification" in refused(reviewed_store, app_store.copy, identity=ADA, decision="approve",
                                      override=True, justification="ok")
    assert "approvals only" in refused(reviewed_store, app_store.copy, identity=ADA, decision="reject",
                                       comment="no", override=True, justification=WHY)
    assert "needs no override" in refused(reviewed_store, app_store.independent, identity=ADA, decision="approve",
                                          override=True, justification=WHY)
    record_decision(reviewed_store, app_store.copy, identity=ADA, decision="approve", override=True, justification=WHY)
    (row,) = reviewed_store.catalog.reviews()
    assert row["override"] is True and row["justification"] == WHY and row["risk_level"] == "high"
    history = data.reviews_frame(reviewed_store, app_store.copy)
    assert history["override"].tolist() == [True]


def test_override_reasons() -> None:
    assert override_reasons("low", {"risk_level": "low", "verdicts": [{"metric": "m", "status": "pass"}]}) == []
    assert override_reasons("high", {"verdicts": []}) == ["the policy verdict is high risk"]
    failed = override_reasons("medium", {"verdicts": [{"metric": "m", "status": "fail"}]})
    assert failed == ["failed: m"]
    missing = [{"metric": "a", "status": "warn", "reason": "a: not in the evaluation; the policy requires it"},
               {"metric": "b", "status": "warn", "required": True, "reason": "b"},
               {"metric": "c", "status": "warn", "reason": "c: above the warn threshold"}]
    assert override_reasons("medium", {"verdicts": missing}) == ["required result missing: a", "required result missing: b"]
    assert override_reasons(None, None) == ["the evaluation has no policy verdict, so nothing says the risk is acceptable"]


def test_two_approvals_from_different_reviewers(reviewed_store: Store, app_store: AppStore) -> None:
    write_review_config(reviewed_store, named=((GRACE.issuer, GRACE.subject),), approvals_required=2)
    rid = app_store.independent
    record_decision(reviewed_store, rid, identity=ADA, decision="approve")
    status = data.releases_frame(reviewed_store).set_index("release_id").loc[rid, "review_status"]
    assert status == "approved by 1 of 2"
    assert "different reviewer" in refused(reviewed_store, rid, identity=ADA, decision="approve")
    record_decision(reviewed_store, rid, identity=GRACE, decision="approve")
    assert data.releases_frame(reviewed_store).set_index("release_id").loc[rid, "review_status"] == "approved"


def test_release_status_counts_distinct_approvals_since_the_last_rejection() -> None:
    a, b, c = ("i", "a"), ("i", "b"), ("i", "c")
    rows = [ReviewRow("approve", *a, "h"), ReviewRow("reject", *b, "h"), ReviewRow("approve", *c, "h")]
    assert release_status(rows, "h", 2) == "approved by 1 of 2"
    assert release_status(rows[:2], "h", 1) == "rejected"
    assert release_status([ReviewRow("approve", *a, "old")], "h", 1) == "not reviewed"  # another manifest
    assert release_status([], "h", 1) == "not reviewed"
    assert release_status(rows + [ReviewRow("approve", *c, "h"), ReviewRow("approve", *a, "h")], "h", 2) == "approved"


def test_broken_chain_blocks_approvals(reviewed_store: Store, app_store: AppStore) -> None:
    con = duckdb.connect(str(reviewed_store.catalog.path))
    con.execute("UPDATE evaluations SET risk_level = 'low' WHERE release_id = ?", [app_store.copy])  # a forger
    con.close()
    assert not reviewed_store.catalog.chain_state().ok
    problems = refused(reviewed_store, app_store.independent, identity=ADA, decision="approve")
    assert "audit chain is broken" in problems
    assert reviewed_store.catalog.reviews() == []


def test_decision_is_judged_again_inside_the_append_transaction(reviewed_store: Store, app_store: AppStore) -> None:
    """A new evaluation lands between the form's checks and the append: the decision is refused, not misfiled."""
    def verify_then_evaluate(store: Store, release_id: str) -> list[str]:
        store.catalog.add_evaluation(release_id, results=[], seed=0, versions={}, summary={}, fidelity=0.1,
                                     risk_level="high", policy={"risk_level": "high", "verdicts": []})
        return []

    with pytest.raises(ReviewRefusedError, match="changed while you decided"):
        record_decision(reviewed_store, app_store.independent, identity=ADA, decision="approve",
                        verify=verify_then_evaluate)
    assert reviewed_store.catalog.reviews() == []


def test_approval_refused_on_tampered_files_and_without_evaluation(reviewed_store: Store, app_store: AppStore) -> None:
    target = next(reviewed_store.release_dir(app_store.independent).glob("*.parquet"))
    target.write_bytes(target.read_bytes() + b"tampered")
    assert f"{target.name} was modified" in refused(reviewed_store, app_store.independent, identity=ADA,
                                                    decision="approve")
    assert "no evaluation" in refused(reviewed_store, app_store.unevaluated, identity=ADA, decision="approve")
    assert "say why" in refused(reviewed_store, app_store.unevaluated, identity=ADA, decision="request_changes")
    assert reviewed_store.catalog.reviews() == []


def test_catalog_add_review_refuses_rows_without_identity_or_justification(reviewed_store: Store,
                                                                           app_store: AppStore) -> None:
    base = dict(decision="approve", comment="", manifest_hash="h", email=None, display_name="x", role="reviewer",
                evaluation_id=None, risk_level=None)
    with pytest.raises(CatalogError, match="identity"):
        reviewed_store.catalog.add_review(app_store.copy, issuer="", subject="s", **base)
    with pytest.raises(CatalogError, match="justification"):
        reviewed_store.catalog.add_review(app_store.copy, issuer=ISSUER, subject="s", override=True, **base)
    assert reviewed_store.catalog.reviews() == []


# -- the audit CSV ---------------------------------------------------------------------------------------------


def test_audit_csv_neutralises_formulas(reviewed_store: Store, app_store: AppStore) -> None:
    evil = replace(ADA, subject="@evil", email="x@hospital.example", name="=cmd|' /C calc'!A0")
    comments = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "fine = ok"]
    for comment in comments:
        record_decision(reviewed_store, app_store.copy, identity=evil, decision="reject", comment=comment)
    rows = list(csv.DictReader(io.StringIO(data.audit_csv(reviewed_store).decode())))
    # comments are stripped when recorded; the tab and CR ones start with a letter afterwards
    assert [r["comment"] for r in rows] == ["'" + comments[0], "'+1+1", "'-2", "'@SUM(A1)", "TAB", "CR", "fine = ok"]
    assert {r["display_name"] for r in rows} == {"'=cmd|' /C calc'!A0"} and {r["subject"] for r in rows} == {"'@evil"}
    assert data.spreadsheet_safe("\t=1") == "'\t=1" and data.spreadsheet_safe("\r=1") == "'\r=1"
    assert data.spreadsheet_safe(-2.5) == -2.5  # numbers are numbers


# -- sign-in settings, hosts, `synthmed app` ---------------------------------------------------------------------


def test_auth_section_checks_collect_every_problem() -> None:
    assert check_auth_section(AUTH_SECTION).provider == "default"
    named = {k: AUTH_SECTION[k] for k in ("redirect_uri", "cookie_secret")} | {
        "keycloak": {k: AUTH_SECTION[k] for k in ("client_id", "client_secret", "server_metadata_url")}}
    assert check_auth_section(named).provider == "keycloak"
    with pytest.raises(SignInConfigError) as info:
        check_auth_section({"redirect_uri": "http://app.hospital.example/callback", "cookie_secret": "short",
                            "client_id": "x", "server_metadata_url": "ftp://idp"})
    message = str(info.value)
    for part in ("https", "cookie_secret", "client_secret", "server_metadata_url"):
        assert part in message, part
    with pytest.raises(SignInConfigError, match="oauth2callback"):
        check_auth_section({**AUTH_SECTION, "redirect_uri": "https://app.hospital.example/"})


def test_host_allow_list() -> None:
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("app.hospital.example")
    loop = allowed_hosts("localhost")
    assert loop == ["localhost", "127.0.0.1", "::1"]
    for ok in ("localhost:8501", "LOCALHOST", "127.0.0.1:1", "[::1]:8501", "localhost."):
        assert host_allowed(ok, loop), ok
    for bad in (None, "", "evil.example", "localhost.evil.example", "evil.example:8501", "user@localhost",
                "localhost:99999", "localhost/x", "[::2]"):
        assert not host_allowed(bad, loop), bad
    assert allowed_hosts("0.0.0.0", redirect_uri="https://review.hospital.example/oauth2callback",
                         extra=["proxy.hospital.example"]) == ["review.hospital.example", "proxy.hospital.example"]
    assert allowed_hosts("10.0.0.5") == ["10.0.0.5"]


def _auth_file(tmp_path: Path, **changes: str) -> Path:
    section = {**AUTH_SECTION, **changes}
    path = tmp_path / "auth.toml"
    path.write_text("[auth]\n" + "".join(f'{k} = "{v}"\n' for k, v in section.items()))
    return path


def test_plan_read_only_on_loopback_and_refuses_other_addresses_without_sign_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.streamlit/secrets.toml
    monkeypatch.delenv("SYNTHMED_AUTH", raising=False)
    serve = plan(Path("rel-store"), port=8600, cwd=tmp_path)
    assert serve.sign_in is None and serve.hosts == ["localhost", "127.0.0.1", "::1"]
    assert serve.argv[:5] == [sys.executable, "-m", "streamlit", "run", str(ASGI_FILE)]
    assert serve.argv[serve.argv.index("--server.port") + 1] == "8600" and "--secrets.files" not in serve.argv
    assert serve.env["SYNTHMED_STORE"] == str(Path.cwd() / "rel-store")
    for address in ("0.0.0.0", "10.0.0.5", "app.hospital.example"):
        with pytest.raises(ServeError, match="without sign-in"):
            plan(tmp_path, address=address, cwd=tmp_path)
    with pytest.raises(ValueError, match="'port'"):
        plan(tmp_path, port=0, cwd=tmp_path)


def test_plan_with_sign_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    auth = _auth_file(tmp_path, redirect_uri="https://review.hospital.example/oauth2callback",
                      server_metadata_url="https://idp.hospital.example/.well-known/openid-configuration")
    serve = plan(tmp_path, address="0.0.0.0", auth_file=auth, cwd=tmp_path)
    assert serve.sign_in is not None and serve.auth_file == auth
    assert serve.argv[serve.argv.index("--secrets.files") + 1] == str(auth.absolute())
    hosts = [serve.argv[i + 1] for i, a in enumerate(serve.argv) if a == "--server.allowedHosts"]
    assert hosts == ["review.hospital.example"]
    with pytest.raises(ServeError, match="port"):  # a loopback redirect must reach this port
        plan(tmp_path, port=8600, auth_file=_auth_file(tmp_path), cwd=tmp_path)
    # Streamlit's own secrets file counts too, and a broken [auth] there is an error, not a read-only app
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[auth]\nredirect_uri = "x"\n')
    with pytest.raises(SignInConfigError, match="secrets.toml"):
        find_sign_in(None, cwd=tmp_path)


def test_synthmed_app_refuses_to_serve_other_machines_without_sign_in(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synthmed", "app", "--store", str(tmp_path), "--address", "0.0.0.0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "without sign-in" in result.stderr and "--auth" in result.stderr
    bad = _auth_file(tmp_path, cookie_secret="short")
    result = subprocess.run(
        [sys.executable, "-m", "synthmed", "app", "--store", str(tmp_path), "--auth", str(bad)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode != 0 and "cookie_secret" in result.stderr and str(bad) in result.stderr
