"""End to end in a real headless Chromium, without sign-in configured: `synthmed app` serves the store read-only
on loopback; a visitor compares two releases and reads the review page, which says how to enable sign-in and
offers no decision. Screenshots of the main pages go under the test's tmp_path. (Signed in: test_app_signin_browser.)
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from synth.release import Store
from tests.app.browser import EXCEPTION, chromium, free_port, serve_app, settle

pytestmark = pytest.mark.slow


@pytest.fixture()
def demo_store(demo_run, tmp_path: Path) -> Store:
    """A private copy of the store `synthmed demo` made (two evaluated releases), without its real data."""
    store, result = demo_run
    assert result.returncode == 0, result.stderr
    shutil.copytree(store, tmp_path / "store", ignore=shutil.ignore_patterns("demo"))
    return Store(tmp_path / "store")


@pytest.fixture()
def served(demo_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`synthmed app --store` on a free port, no sign-in anywhere; yields its URL and stops it afterwards."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.streamlit/secrets.toml
    with serve_app(demo_store.root, tmp_path, port=free_port()) as url:
        yield url


def test_compare_and_read_only_review_in_chromium(demo_store: Store, served: str, tmp_path: Path) -> None:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is part of the test extra")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    cart_id = next(r["release_id"] for r in demo_store.catalog.releases() if r["generator"] == "cart")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2200})
            # 1. the releases overview
            page.goto(served)
            settle(page)
            assert page.get_by_role("heading", name="Releases").is_visible()
            assert page.get_by_text("2 of 2 release(s)").is_visible()
            page.screenshot(path=str(shots / "releases.png"), full_page=True)
            assert page.locator(EXCEPTION).count() == 0

            # 2. the comparison of the two evaluated releases, through the overview's link
            page.get_by_role("link", name="Compare the 2 releases").click()
            page.wait_for_url("**/compare?**")
            settle(page)
            assert page.get_by_role("heading", name="Compare releases").is_visible()
            assert page.get_by_text("Worst attack AUC", exact=True).count() == 2
            assert page.get_by_text(cart_id).first.is_visible()
            page.screenshot(path=str(shots / "compare.png"), full_page=True)
            for tab in ("Membership attacks", "Anonymeter risks"):
                page.get_by_role("tab", name=tab).click()
                settle(page)
                page.screenshot(path=str(shots / f"compare-{tab.split()[0].lower()}.png"), full_page=True)
            assert page.locator(EXCEPTION).count() == 0
            assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 6

            # 3. the review page of the TVAE release: evidence and history, but no decision without sign-in
            page.goto(f"{served}/review?release={cart_id}")
            page.wait_for_url("**/review?**")
            settle(page)
            assert page.get_by_text("Every file matches the release's manifest").is_visible()
            assert page.get_by_text("The catalog's audit chain is intact").is_visible()
            assert page.get_by_text("Sign-in is not configured, so this app is read-only").first.is_visible()
            assert page.get_by_role("button", name="Record the decision").count() == 0
            assert page.get_by_role("button", name="Sign in").count() == 0
            assert page.get_by_role("button", name="Download the audit trail (CSV)").is_visible()
            page.screenshot(path=str(shots / "review.png"), full_page=True)
            assert page.locator(EXCEPTION).count() == 0
        finally:
            browser.close()

    assert demo_store.catalog.reviews() == []
    saved = sorted(p.name for p in shots.iterdir())
    assert {"releases.png", "compare.png", "review.png"} <= set(saved)
    assert all((shots / name).stat().st_size > 10_000 for name in saved)
