"""How ``synthmed app`` starts the review app: checks first, then ``streamlit run`` on the ASGI wrapper, headless.

Before anything is served: sign-in settings are read and checked (``--auth FILE``, $SYNTHMED_AUTH, or
Streamlit's own ``.streamlit/secrets.toml``); an address other than loopback without them is refused;
the Host allow-list is derived from the address and the sign-in redirect URI. Without sign-in the app
runs read-only on loopback.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synth.pseudonymise import SECRET_ENV
from synth.store import STORE_ENV
from synthmed.review_app.errors import ServeError
from synthmed.review_app.hosts import allowed_hosts, is_loopback
from synthmed.review_app.signin import AUTH_ENV, SignInSettings, find_sign_in

APP_FILE = "app.py"
ASGI_FILE = Path(__file__).with_name("asgi.py")


def app_path() -> Path:
    """``app.py`` beside the ``synthmed`` package (the repository root, or site-packages for a wheel)."""
    return Path(__file__).resolve().parents[2] / APP_FILE


@dataclass(frozen=True)
class ServePlan:
    """What ``synthmed app`` will run: argv and environment, and what it checked on the way."""

    argv: list[str]
    env: dict[str, str]
    hosts: list[str]
    sign_in: SignInSettings | None
    auth_file: Path | None


def plan(
    store: Path,
    *,
    port: int = 8501,
    address: str = "localhost",
    auth_file: Path | None = None,
    extra_hosts: Sequence[str] = (),
    cwd: Path | None = None,
) -> ServePlan:
    """Check the request and build the ``streamlit run`` command; ServeError or SignInConfigError says what is wrong."""
    if not 1 <= port <= 65535:
        raise ValueError(f"The 'port' parameter must be in 1..65535; got {port} instead.")
    script = app_path()
    if not script.is_file():
        raise FileNotFoundError(f"the review app {script} is missing: reinstall synthmed (pip install -e .)")
    if auth_file is None and os.environ.get(AUTH_ENV):
        auth_file = Path(os.environ[AUTH_ENV])
    sign_in, source = find_sign_in(auth_file, cwd=cwd)
    if sign_in is None and not is_loopback(address):
        raise ServeError(
            f"refusing to serve the review app on {address} without sign-in: anyone who reaches it could read the "
            "catalog. Configure the hospital's identity provider (`synthmed app --auth auth.toml`, see the README, "
            "'Sign-in') or serve on localhost"
        )
    if sign_in is not None and sign_in.redirect_port not in (None, port) and is_loopback(sign_in.redirect_host):
        raise ServeError(f"the sign-in redirect_uri {sign_in.redirect_uri} points at port {sign_in.redirect_port}, "
                         f"but the app would listen on {port}: make them the same (--port {sign_in.redirect_port})")
    hosts = allowed_hosts(address, redirect_uri=sign_in.redirect_uri if sign_in else None, extra=extra_hosts)
    if not hosts:
        raise ServeError(f"serving on {address} needs the host name browsers will use: give --allowed-host NAME")
    argv = [
        sys.executable, "-m", "streamlit", "run", str(ASGI_FILE),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", address,
        "--server.runOnSave", "false",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]
    for host in hosts:
        argv += ["--server.allowedHosts", host]
    if auth_file is not None:
        argv += ["--secrets.files", str(Path(auth_file).absolute())]
    # the app never pseudonymises: the pseudonymisation key stays out of the web server's environment
    env = {**{k: v for k, v in os.environ.items() if k != SECRET_ENV}, STORE_ENV: str(store.absolute())}
    return ServePlan(argv, env, hosts, sign_in, source)
