"""End to end in a real headless Chromium: `synthmed app` serves the store, a reviewer compares two releases,
rejects one, and the audit row is in the catalog. Screenshots of the main pages go under the test's tmp_path.

Uses Playwright's Python package with the system's Chromium (Debian package ``chromium``) via
``executable_path``; skips with the reason when either is missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from synth.release import Store

pytestmark = pytest.mark.slow

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXCEPTION = '[data-testid="stException"]'


def _chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no system Chromium ({', '.join(CHROMIUM_CANDIDATES)}) on PATH: install the Debian package "
                "`chromium` (scripts/install --test does) to run the browser test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def demo_store(demo_run, tmp_path: Path) -> Store:
    """A private copy of the store `synthmed demo` made (two evaluated releases), without its real data."""
    store, result = demo_run
    assert result.returncode == 0, result.stderr
    shutil.copytree(store, tmp_path / "store", ignore=shutil.ignore_patterns("demo"))
    return Store(tmp_path / "store")


@pytest.fixture()
def served(demo_store: Store, tmp_path: Path) -> Iterator[str]:
    """`synthmed app --store` on a free port; yields its URL and stops it afterwards."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthmed", "app", "--store", str(demo_store.root), "--port", str(port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SYNTHMED_STORE": ""},
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"the app did not start (exit {proc.poll()}):\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def _settle(page) -> None:  # noqa: ANN001 (playwright Page)
    """Wait until the script run is over and the page has drawn its charts."""
    page.wait_for_selector(IDLE, timeout=60_000)
    page.wait_for_timeout(700)
    page.wait_for_selector(IDLE, timeout=60_000)


def test_compare_review_and_audit_in_chromium(demo_store: Store, served: str, tmp_path: Path) -> None:
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is part of the test extra")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    tvae_id = next(r["release_id"] for r in demo_store.catalog.releases() if r["generator"] == "tvae")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2200})
            # 1. the releases overview
            page.goto(served)
            _settle(page)
            assert page.get_by_role("heading", name="Releases").is_visible()
            assert page.get_by_text("2 of 2 release(s)").is_visible()
            page.screenshot(path=str(shots / "releases.png"), full_page=True)
            assert page.locator(EXCEPTION).count() == 0

            # 2. the comparison of the two evaluated releases, through the overview's link
            page.get_by_role("link", name="Compare the 2 releases").click()
            page.wait_for_url("**/compare?**")
            _settle(page)
            assert page.get_by_role("heading", name="Compare releases").is_visible()
            assert page.get_by_text("Worst attack AUC", exact=True).count() == 2
            assert page.get_by_text(tvae_id).first.is_visible()
            page.screenshot(path=str(shots / "compare.png"), full_page=True)
            for tab in ("Membership attacks", "Anonymeter risks"):
                page.get_by_role("tab", name=tab).click()
                _settle(page)
                page.screenshot(path=str(shots / f"compare-{tab.split()[0].lower()}.png"), full_page=True)
            assert page.locator(EXCEPTION).count() == 0
            assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 6

            # 3. review the TVAE release from its score card: reject it
            page.goto(f"{served}/review?release={tvae_id}")
            page.wait_for_url("**/review?**")
            _settle(page)
            assert page.get_by_text("Every file matches the release's manifest").is_visible()
            page.get_by_text("reject", exact=True).click()
            page.get_by_label("Reviewer").fill("Ada Lovelace")
            page.get_by_label("Comment").fill("synthetic records sit closer to training patients than to the holdout")
            page.get_by_role("button", name="Record the review").click()
            page.get_by_text("Recorded: reject by Ada Lovelace").wait_for(timeout=60_000)
            _settle(page)
            assert page.get_by_role("button", name="Download the audit trail (CSV)").is_visible()
            page.screenshot(path=str(shots / "review.png"), full_page=True)
            assert page.locator(EXCEPTION).count() == 0
        finally:
            browser.close()

    # 4. the audit row, read from the catalog
    (row,) = demo_store.catalog.reviews()
    assert (row["release_id"], row["decision"], row["reviewer"]) == (tvae_id, "reject", "Ada Lovelace")
    assert row["comment"] == "synthetic records sit closer to training patients than to the holdout"
    assert row["manifest_hash"] == demo_store.catalog.release(tvae_id)["manifest_hash"]
    saved = sorted(p.name for p in shots.iterdir())
    assert {"releases.png", "compare.png", "review.png"} <= set(saved)
    assert all((shots / name).stat().st_size > 10_000 for name in saved)
