"""Sign-in settings: Streamlit's ``[auth]`` section (``st.login`` / Authlib), checked before the app serves anyone.

The settings are exactly those Streamlit documents for OpenID Connect: ``redirect_uri`` (ending in
``/oauth2callback``), ``cookie_secret``, and one provider's ``client_id``, ``client_secret`` and
``server_metadata_url``, either directly in ``[auth]`` (the default provider) or in ``[auth.NAME]``. They
live in ``.streamlit/secrets.toml`` or in a file given to ``synthmed app --auth FILE``, which the launcher
hands to Streamlit as its secrets file. No Streamlit import here, so the checks are testable alone.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from synthmed.review_app.errors import SignInConfigError
from synthmed.review_app.hosts import is_loopback

PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
MIN_COOKIE_SECRET = 32
CALLBACK_PATH = "/oauth2callback"
AUTH_ENV = "SYNTHMED_AUTH"


@dataclass(frozen=True)
class SignInSettings:
    """A checked ``[auth]`` section: which provider ``st.login`` uses and where the IdP sends the browser back."""

    provider: str
    redirect_uri: str
    server_metadata_url: str

    @property
    def redirect_host(self) -> str:
        return urlparse(self.redirect_uri).hostname or ""

    @property
    def redirect_port(self) -> int | None:
        parsed = urlparse(self.redirect_uri)
        return parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)


def _url_problem(name: str, url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return f"{name} is missing"
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"{name} must be an http(s) URL; got {url!r}"
    if parsed.scheme == "http" and not is_loopback(parsed.hostname):
        return f"{name} must use https unless it is on this machine (localhost); got {url!r}"
    return None


def check_auth_section(auth: Any, *, where: str = "[auth]") -> SignInSettings:
    """Check an ``[auth]`` section, collecting every problem, and raise SignInConfigError once with all of them."""
    if not isinstance(auth, Mapping):
        raise SignInConfigError(f"{where}: no [auth] section (see the README, 'Sign-in')")
    problems: list[str] = []
    redirect = auth.get("redirect_uri")
    problem = _url_problem("redirect_uri", redirect)
    if problem:
        problems.append(problem)
    elif not str(redirect).rstrip("/").endswith(CALLBACK_PATH):
        problems.append(f"redirect_uri must end with {CALLBACK_PATH}; got {redirect!r}")
    secret = auth.get("cookie_secret")
    if not isinstance(secret, str) or len(secret) < MIN_COOKIE_SECRET:
        problems.append(f"cookie_secret must be a random string of at least {MIN_COOKIE_SECRET} characters "
                        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
    providers: dict[str, Mapping[str, Any]] = {}
    if any(k in auth for k in PROVIDER_KEYS):
        providers["default"] = auth
    for key, value in auth.items():
        if isinstance(value, Mapping) and any(k in value for k in PROVIDER_KEYS):
            providers[str(key)] = value
    if not providers:
        problems.append("no identity provider: give client_id, client_secret and server_metadata_url in [auth] "
                        "or in an [auth.NAME] table")
    elif len(providers) > 1:
        problems.append(f"name one identity provider, not {len(providers)} ({', '.join(sorted(providers))})")
    provider, section = next(iter(providers.items())) if providers else ("default", {})
    if "_" in provider:
        problems.append(f"the provider name {provider!r} must not contain '_' (Streamlit's rule)")
    missing = [k for k in PROVIDER_KEYS if not isinstance(section.get(k), str) or not section.get(k, "").strip()]
    if providers and missing:
        problems.append(f"provider {provider!r} is missing {', '.join(missing)}")
    metadata = section.get("server_metadata_url")
    if providers and "server_metadata_url" not in missing:
        problem = _url_problem("server_metadata_url", metadata)
        if problem:
            problems.append(problem)
    if problems:
        raise SignInConfigError(f"{where}: " + "; ".join(problems))
    return SignInSettings(provider, str(redirect), str(metadata))


def read_auth_file(path: Path) -> SignInSettings:
    """The checked ``[auth]`` section of a TOML file (``synthmed app --auth FILE`` or a ``secrets.toml``)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SignInConfigError(f"no sign-in settings file at {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SignInConfigError(f"cannot read the sign-in settings {path}: {exc}") from None
    return check_auth_section(raw.get("auth"), where=str(path))


def streamlit_secrets_files(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit looks for ``secrets.toml`` by default: ~/.streamlit and ./.streamlit (later wins)."""
    return [Path.home() / ".streamlit" / "secrets.toml", (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]


def find_sign_in(auth_file: Path | None, *, cwd: Path | None = None) -> tuple[SignInSettings | None, Path | None]:
    """The sign-in settings ``synthmed app`` will use, and the file they come from (None, None: not configured).

    ``auth_file`` (``--auth`` or $SYNTHMED_AUTH) wins; else the last of Streamlit's own secrets files with an
    ``[auth]`` section. A file that has one but gets it wrong is an error, never a silent read-only app.
    """
    if auth_file is not None:
        return read_auth_file(auth_file), auth_file
    found: tuple[SignInSettings | None, Path | None] = (None, None)
    for path in streamlit_secrets_files(cwd):
        if not path.is_file():
            continue
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SignInConfigError(f"cannot read Streamlit's secrets file {path}: {exc}") from None
        if "auth" in raw:
            found = (check_auth_section(raw["auth"], where=str(path)), path)
    return found
