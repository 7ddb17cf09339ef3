"""Helpers of the browser tests: the system Chromium, free ports, `synthmed app` and the OIDC provider as processes.

Playwright's Python package drives the system's Chromium (Debian package ``chromium``) via
``executable_path``; a test skips with the reason when either is missing.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXCEPTION = '[data-testid="stException"]'


def chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no system Chromium ({', '.join(CHROMIUM_CANDIDATES)}) on PATH: install the Debian package "
                "`chromium` (scripts/install --test does) to run the browser tests")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen, log: Path, *, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start (exit {proc.poll()}):\n{log.read_text()}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@contextmanager
def serve_app(store: Path, workdir: Path, *, port: int, auth: Path | None = None) -> Iterator[str]:
    """`synthmed app --store` (with `--auth` when given) on ``port``; yields its URL, stops it afterwards."""
    log_path = workdir / f"app-{port}.log"
    argv = [sys.executable, "-m", "synthmed", "app", "--store", str(store), "--port", str(port)]
    if auth is not None:
        argv += ["--auth", str(auth)]
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTHMED_STORE", "SYNTHMED_AUTH")}
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://localhost:{port}"
            _wait_http(f"{url}/_stcore/health", proc, log_path, what="the app")
            yield url
        finally:
            _stop(proc)


@contextmanager
def oidc_provider(workdir: Path, users: list[dict]) -> Iterator[str]:
    """A real OpenID Connect provider on loopback (PyPI ``oidc-provider-mock``) with predefined users; yields its URL.

    Each user is a dict of claims with a ``sub``; the provider's sign-in page has one button per user.
    """
    if importlib.util.find_spec("oidc_provider_mock") is None:  # run as a process: never imported here
        pytest.skip("oidc-provider-mock is part of the test extra: pip install -e '.[test]'")
    port = free_port()
    log_path = workdir / "oidc.log"
    argv = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--host", "127.0.0.1"]
    for user in users:
        argv += ["--user-claims", json.dumps(user)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(f"{url}/.well-known/openid-configuration", proc, log_path, what="the OIDC provider")
            yield url
        finally:
            _stop(proc)


def settle(page) -> None:  # noqa: ANN001 (playwright Page)
    """Wait until the script run is over and the page has drawn its charts."""
    page.wait_for_selector(IDLE, timeout=60_000)
    page.wait_for_timeout(700)
    page.wait_for_selector(IDLE, timeout=60_000)
