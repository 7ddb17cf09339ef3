"""Sign-in as a user meets it: headless Chromium, `synthmed app --auth` and a real OpenID Connect provider on loopback.

One provider and one app server for the module (the store built once per session, copied). Each test
signs a different person in through the provider's own page, in a fresh browser context:
an anonymous visitor sees only the sign-in; a reviewer approves and the catalog records their identity;
a reader cannot decide; the person who requested a release cannot approve it; a high-risk approval needs
an override with a justification and shows in red; an injected schema name is text. The server also
refuses requests and WebSocket upgrades that name a host it was not started for (DNS rebinding).
"""
from __future__ import annotations

import http.client
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synth.catalog import utcnow
from synth.release import Store
from tests.app.browser import EXCEPTION, chromium, free_port, oidc_provider, serve_app, settle
from tests.app.conftest import CREATOR_EMAIL, AppStore, write_review_config

pytestmark = pytest.mark.slow

USERS = [
    {"sub": "ada", "email": "ada@hospital.example", "name": "Ada Lovelace", "groups": ["synthmed-reviewers"]},
    {"sub": "alice", "email": CREATOR_EMAIL, "name": "Alice Creator", "groups": ["synthmed-reviewers"]},
    {"sub": "eve", "email": "eve@hospital.example", "name": "Eve Reader", "groups": ["staff"]},
]
INJECTED_SCHEMA = "**APPROVED by DPO** :green-badge[low risk] ![seal](http://evil.example/seal.png)"
INJECTED_GENERATOR = "[safe generator](http://evil.example/phish)"
JUSTIFICATION = "Only aggregate tables leave; the DPO board accepted the residual risk on 2026-12-01."


@dataclass(frozen=True)
class Served:
    url: str
    idp: str
    store: Store
    injected: str
    shots: Path


def _inject(store: Store) -> str:
    """A release row whose schema and generator names carry Markdown (as a crafted schema file would)."""
    release_id = f"{INJECTED_SCHEMA}-{INJECTED_GENERATOR}-20261201T000000-abcdef"
    store.catalog.add_release({
        "release_id": release_id, "created_at": utcnow(), "schema_name": INJECTED_SCHEMA, "schema_hash": "0" * 64,
        "generator": INJECTED_GENERATOR, "family": "baseline", "differentially_private": False, "epsilon": None,
        "delta": None, "seed": 0, "n_patients": 1, "rows_json": "{}", "params_json": "{}", "manifest_hash": "0" * 64, "path": str(store.release_dir("nowhere")),
        "requested_by": "mallory", "requested_os_user": "mallory",
    })
    return release_id


@pytest.fixture(scope="module")
def served(app_store: AppStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("signin")
    store = Store(base / "store")
    shutil.copytree(app_store.root, store.root)
    injected = _inject(store)
    write_review_config(store)
    shots = base / "screenshots"
    shots.mkdir()
    with oidc_provider(base, USERS) as idp:
        port = free_port()
        auth = base / "auth.toml"
        auth.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            f'cookie_secret = "{os.urandom(24).hex()}"\n'
            'client_id = "synthmed-review"\n'
            'client_secret = "test-client-secret"\n'
            f'server_metadata_url = "{idp}/.well-known/openid-configuration"\n'
        )
        with serve_app(store.root, base, port=port, auth=auth) as url:
            yield Served(url, idp, store, injected, shots)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is part of the test extra")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def new_page(browser) -> Iterator[object]:  # noqa: ANN001
    """A page in a fresh browser context (no cookies: nobody signed in)."""
    contexts = []

    def make():  # noqa: ANN202
        context = browser.new_context(viewport={"width": 1440, "height": 2000})
        contexts.append(context)
        return context.new_page()

    yield make
    for c in contexts:
        c.close()


def sign_in(page, served: Served, sub: str) -> None:  # noqa: ANN001
    """Through the provider's own page: the app's Sign in button, then the user's button at the provider."""
    page.goto(served.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served.idp}/**", timeout=30_000)
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(f"{served.url}/**", timeout=30_000)
    settle(page)
    page.get_by_role("heading", name="Releases").wait_for(timeout=30_000)


def decide(page, decision: str, *, comment: str = "", justification: str | None = None) -> None:  # noqa: ANN001
    page.get_by_test_id("stRadioGroup").get_by_text(decision, exact=True).click()
    if comment:
        page.get_by_label("Comment").fill(comment)
    if justification is not None:
        box = page.get_by_role("checkbox", name="Override the policy verdict (approvals only)")
        if not box.is_checked():  # the form keeps its values after a refused submit
            page.get_by_text("Override the policy verdict (approvals only)").click()
        page.get_by_label("Justification of the override").fill(justification)
    page.get_by_role("button", name="Record the decision").click()
    settle(page)


def open_review(page, served: Served, release_id: str) -> None:  # noqa: ANN001
    from urllib.parse import quote

    page.goto(f"{served.url}/review?release={quote(release_id)}")
    settle(page)
    page.get_by_role("heading", name="Review a release").wait_for(timeout=30_000)


EVIL_ELEMENTS = """() => [...document.querySelectorAll('a[href], img[src]')]
    .map(e => new URL(e.href || e.src, document.baseURI))
    .filter(u => u.hostname === 'evil.example').map(u => u.href)"""


def evil_elements(page) -> list[str]:  # noqa: ANN001
    """Links and images that point at the injected host (the app's own links may carry it encoded in a query)."""
    return page.evaluate(EVIL_ELEMENTS)


def test_anonymous_visitor_sees_only_the_sign_in(served: Served, app_store: AppStore, new_page) -> None:
    page = new_page()
    for path in ("", f"/review?release={app_store.copy}", "/compare"):
        page.goto(served.url + path)
        settle(page)
        assert page.get_by_role("button", name="Sign in").is_visible()
        body = page.inner_text("body")
        assert "Releases" not in body and "Review a release" not in body
        assert app_store.copy not in body and app_store.independent not in body
    page.screenshot(path=str(served.shots / "anonymous.png"), full_page=True)


def test_reviewer_approves_and_the_audit_trail_carries_their_identity(served: Served, app_store: AppStore,
                                                                        new_page) -> None:
    page = new_page()
    sign_in(page, served, "ada")
    assert page.get_by_text("role: reviewer (group synthmed-reviewers)").is_visible()
    open_review(page, served, app_store.independent)
    assert page.get_by_role("button", name="Record the decision").is_visible()
    decide(page, "approve", comment="fidelity and attack results within policy")
    page.get_by_text("Recorded: approve by Ada Lovelace").wait_for(timeout=30_000)
    page.screenshot(path=str(served.shots / "approved.png"), full_page=True)
    assert page.locator(EXCEPTION).count() == 0
    (row,) = [r for r in served.store.catalog.reviews(app_store.independent) if r["subject"] == "ada"]
    assert (row["decision"], row["issuer"], row["email"], row["display_name"]) == (
        "approve", served.idp, "ada@hospital.example", "Ada Lovelace")
    assert row["role"] == "reviewer (group synthmed-reviewers)" and row["override"] is False
    release = served.store.catalog.release(app_store.independent)
    (ev,) = served.store.catalog.evaluations(app_store.independent)
    assert (row["manifest_hash"], row["evaluation_id"], row["risk_level"]) == (
        release["manifest_hash"], ev["evaluation_id"], ev["risk_level"])


def test_reader_cannot_decide(served: Served, app_store: AppStore, new_page) -> None:
    page = new_page()
    sign_in(page, served, "eve")
    assert page.get_by_text("role: reader (not a reviewer of this store)").is_visible()
    open_review(page, served, app_store.copy)
    assert page.get_by_text("You are signed in as a reader").is_visible()
    assert page.get_by_role("button", name="Record the decision").count() == 0
    assert not [r for r in served.store.catalog.reviews() if r["subject"] == "eve"]


def test_creator_cannot_approve_their_own_release(served: Served, app_store: AppStore, new_page) -> None:
    page = new_page()
    sign_in(page, served, "alice")
    open_review(page, served, app_store.independent)
    assert page.get_by_text("You requested this release, so you cannot approve it").is_visible()
    decide(page, "approve")
    page.get_by_text("The decision was not recorded").wait_for(timeout=30_000)
    assert page.get_by_text(f"recorded as '{CREATOR_EMAIL}'", exact=False).is_visible()
    assert not [r for r in served.store.catalog.reviews() if r["subject"] == "alice"]


def test_high_risk_approval_needs_a_justified_override_shown_in_red(served: Served, app_store: AppStore,
                                                                    new_page) -> None:
    page = new_page()
    sign_in(page, served, "ada")
    open_review(page, served, app_store.copy)
    assert page.get_by_text("the policy verdict is high risk").is_visible()
    decide(page, "approve")
    page.get_by_text("The decision was not recorded").wait_for(timeout=30_000)
    assert page.get_by_text("approving needs an explicit override", exact=False).is_visible()
    decide(page, "approve", justification="")
    page.get_by_text("an override needs a written justification", exact=False).wait_for(timeout=30_000)
    assert not served.store.catalog.reviews(app_store.copy)
    decide(page, "approve", justification=JUSTIFICATION)
    page.get_by_text("Recorded: approve with an override by Ada Lovelace").wait_for(timeout=30_000)
    assert page.get_by_text("approval(s) of this release overrode the policy verdict", exact=False).is_visible()
    page.screenshot(path=str(served.shots / "override.png"), full_page=True)
    history = page.get_by_test_id("stDataFrame").last
    history.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(served.shots / "override-history.png"))
    (row,) = served.store.catalog.reviews(app_store.copy)
    assert row["override"] is True and row["justification"] == JUSTIFICATION and row["risk_level"] == "high"


def test_injected_schema_name_shows_as_text(served: Served, app_store: AppStore, new_page) -> None:
    from urllib.parse import quote

    page = new_page()
    sign_in(page, served, "eve")  # reading is enough
    open_review(page, served, served.injected)
    body = page.inner_text("body")
    assert INJECTED_SCHEMA in body and INJECTED_GENERATOR in body  # every character as stored
    assert evil_elements(page) == []
    assert page.get_by_text("low risk", exact=True).count() == 0  # no badge made from the name
    page.screenshot(path=str(served.shots / "injected.png"), full_page=True)
    for path in ("", f"/compare?release={quote(served.injected)}&release={quote(app_store.copy)}"):
        page.goto(served.url + path)
        settle(page)
        assert INJECTED_SCHEMA in page.inner_text("body"), path
        assert evil_elements(page) == [], path
        assert page.locator(EXCEPTION).count() == 0, path


# -- the Host header: DNS rebinding --------------------------------------------------------------------------


def _request(url: str, host: str, *, upgrade: bool = False) -> int:
    """The status of a GET (or a WebSocket upgrade of Streamlit's stream) sent with this Host header."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    conn = http.client.HTTPConnection("127.0.0.1", parsed.port, timeout=10)
    headers = {"Host": host}
    path = "/"
    if upgrade:
        path = "/_stcore/stream"
        headers.update({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": f"http://{host}"})
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_server_refuses_a_forged_host(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    assert _request(served.url, f"localhost:{port}") == 200
    assert _request(served.url, f"127.0.0.1:{port}") == 200
    assert _request(served.url, f"localhost:{port}", upgrade=True) == 101
    for forged in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", f"[::2]:{port}"):
        assert _request(served.url, forged) == 400, forged
        assert _request(served.url, forged, upgrade=True) == 403, forged
