"""The Host header allow-list of the app's server, against DNS rebinding.

A page on ``evil.example`` whose name is re-pointed at 127.0.0.1 is same-origin with itself: the browser
sends ``Host: evil.example`` to the loopback app, and Origin matches Host, so Streamlit's origin check
alone lets its WebSocket in. Only the Host header tells the two apart. ``synthmed app`` derives the
allow-list from the address it binds (and the sign-in redirect URI), sets Streamlit's
``server.allowedHosts`` (its WebSocket check) to it, and serves the app behind ``HostAllowList``, an ASGI
middleware that refuses every HTTP request and WebSocket upgrade naming another host (400 / 403).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlparse

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def is_loopback(address: str) -> bool:
    """Whether binding ``address`` serves this machine only."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def hostname(host_header: str | None) -> str | None:
    """The host name of a Host header ('Example.org.:8501' -> 'example.org'), None when malformed."""
    if not host_header:
        return None
    try:
        parsed = urlparse(f"//{host_header}")
        _ = parsed.port  # raises on a malformed port
    except ValueError:
        return None
    name = parsed.hostname
    if not name or parsed.username is not None or parsed.password is not None or parsed.path or parsed.query \
            or parsed.fragment:
        return None
    return name.lower().rstrip(".")


def allowed_hosts(address: str, *, redirect_uri: str | None = None, extra: Iterable[str] = ()) -> list[str]:
    """The host names a browser may use to reach an app bound to ``address`` (order kept, no repeats)."""
    hosts: list[str] = []
    if is_loopback(address):
        hosts += LOOPBACK_NAMES
    elif address.strip() not in WILDCARD_ADDRESSES:
        hosts.append(address.strip().strip("[]").lower())
    if redirect_uri:
        name = urlparse(redirect_uri).hostname
        if name:
            hosts.append(name.lower())
    hosts += [h.strip().lower().rstrip(".") for h in extra if h.strip()]
    return list(dict.fromkeys(hosts))


def host_allowed(host_header: str | None, allowed: Iterable[str]) -> bool:
    """Whether the Host header names one of ``allowed`` (exact names; the port does not matter)."""
    name = hostname(host_header)
    return name is not None and name in {a.strip().lower().rstrip(".") for a in allowed}


def _configured_hosts() -> list[str]:
    """Streamlit's ``server.allowedHosts`` (set by ``synthmed app``), else the loopback names."""
    from streamlit import config

    return list(config.get_option("server.allowedHosts") or ()) or list(LOOPBACK_NAMES)


class HostAllowList:
    """ASGI middleware: requests and WebSocket upgrades whose Host is not allowed never reach Streamlit."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] | None = None) -> None:
        self.app = app
        self.allowed = list(allowed) if allowed is not None else None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
            if not host_allowed(host, self.allowed if self.allowed is not None else _configured_hosts()):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
                    return
                body = b"Invalid Host header: this synthmed app answers only to the names it was started for.\n"
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
