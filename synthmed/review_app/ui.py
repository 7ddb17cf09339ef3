"""Streamlit pieces shared by the pages: the store, plain messages for empty and broken states, small widgets."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import streamlit as st

from synth.errors import CatalogError, ReleaseError
from synth.release import Store
from synth.store import STORE_ENV, resolve_store
from synthmed.review_app import data
from synthmed.review_app.access import READER, Identity, ReviewConfig, Role, load_review_config
from synthmed.review_app.errors import ReviewConfigError, SignInConfigError
from synthmed.review_app.signin import SignInSettings, check_auth_section

RISK_BADGES = {"low": ":green-badge[low risk]", "medium": ":orange-badge[medium risk]",
               "high": ":red-badge[high risk]"}
DECISION_BADGES = {"approve": ":green-badge[approved]", "reject": ":red-badge[rejected]",
                   "request_changes": ":orange-badge[changes requested]"}


def current_store() -> Store:
    """The store the app was started on: $SYNTHMED_STORE (set by ``synthmed app --store``), else ./synthmed-data."""
    return Store(resolve_store().absolute())


@contextmanager
def plain_errors(store: Store) -> Iterator[None]:
    """Turn a catalog or release failure into a plain warning that says what to do, then stop the page."""
    try:
        yield
    except CatalogError as exc:
        if "in use" in str(exc):
            st.warning("The catalog is in use by another synthmed process.", icon=":material/lock:")
        else:
            st.warning("The catalog cannot be read.", icon=":material/warning:")
        st.text(str(exc))
        if "in use" in str(exc):
            st.caption("Another synthmed command is writing to this store. Reload this page when it has finished.")
        st.stop()
    except (ReleaseError, ReviewConfigError) as exc:
        st.warning("A release or the store's settings cannot be read.", icon=":material/warning:")
        st.text(str(exc))
        st.stop()
    except duckdb.Error as exc:
        st.warning(
            f"The catalog {code_span(store.catalog.path)} cannot be read ({type(exc).__name__}: {code_span(str(exc).splitlines()[0])}). "
            "It may have been written by another version of synthmed; `synthmed releases list` shows what it holds.",
            icon=":material/warning:",
        )
        st.stop()


def require_releases(store: Store) -> Any:
    """The releases frame, or a plain message saying what to run when there is no catalog or no release."""
    if not data.has_catalog(store):
        st.info(
            f"No catalog at {code_span(store.catalog.path)}, so there is nothing to review yet.\n\n"
            "Run `synthmed demo` to make a demo store with two evaluated releases, or `synthmed release ...` then "
            f"`synthmed evaluate RELEASE_ID --data DIR` on your own data. To open another store, start the app with "
            f"`synthmed app --store DIR` (or set `{STORE_ENV}`).",
            icon=":material/info:",
        )
        st.stop()
    frame = data.releases_frame(store)
    if frame.empty:
        st.info(
            f"The catalog at {code_span(store.catalog.path)} has no releases yet. Run `synthmed release --data DIR --schema S "
            "--generator G` (or `synthmed demo`), then `synthmed evaluate RELEASE_ID --data DIR`.",
            icon=":material/info:",
        )
        st.stop()
    return frame


def not_evaluated_message(release_id: str) -> str:
    return (f"Release {code_span(release_id)} has no evaluation yet: run {code_span(f'synthmed evaluate {release_id} --data DIR')} "
            "(DIR: the data it was released from) to measure its fidelity and privacy risk.")


def cached_results(store: Store) -> Callable[[str], list[dict[str, Any]]]:
    """A reader of an evaluation's stored results, cached by catalog and evaluation id (evaluations never change)."""
    path = str(store.catalog.path)

    def read(evaluation_id: str) -> list[dict[str, Any]]:
        return _results(path, evaluation_id)

    return read


@st.cache_data(max_entries=64, show_spinner=False)
def _results(catalog_path: str, evaluation_id: str) -> list[dict[str, Any]]:
    return data.read_results(Store(Path(catalog_path).parent), evaluation_id)


def query_list(name: str) -> list[str]:
    """All values of a repeated query parameter (``?release=a&release=b``)."""
    return [v for v in st.query_params.get_all(name) if v]


def short_id(release_id: str, width: int = 40) -> str:
    return release_id if len(release_id) <= width else release_id[: width - 1] + "…"


def code_span(text: object) -> str:
    """Stored text as a Markdown code span, the one Markdown construct whose content is never parsed.

    Inside a code span nothing is emphasis, a link, an autolink, an image, HTML, math, a badge or an icon.
    The fence is one backtick longer than the longest run of backticks in the text (CommonMark), and a
    space pads text that starts or ends with a backtick. Line breaks become spaces. Prefer ``st.text`` /
    ``st.code`` / dataframes for stored strings; this is for messages that mix fixed words with stored ones.
    """
    flat = " ".join(str(text).split()) or " "
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


# -- who is signed in --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """The visitor: their identity (None: not signed in), role, and the sign-in settings (None: not configured)."""

    identity: Identity | None
    role: Role
    sign_in: SignInSettings | None
    review_config: ReviewConfig

    @property
    def can_decide(self) -> bool:
        return self.identity is not None and self.role.can_decide


def sign_in_settings() -> SignInSettings | None:
    """Streamlit's checked ``[auth]`` section, None when absent; a broken one stops the page with what is wrong."""
    secrets = st.secrets
    if not secrets.load_if_toml_exists() or "auth" not in secrets:
        return None
    raw = secrets["auth"]
    try:
        return check_auth_section(raw.to_dict() if hasattr(raw, "to_dict") else raw, where="the [auth] secrets")
    except SignInConfigError as exc:
        st.error("Sign-in is configured but cannot be used, so the app shows nothing:", icon=":material/lock:")
        st.text(str(exc))
        st.stop()
        raise AssertionError("unreachable") from exc


def current_session(store: Store) -> Session:
    """Who is visiting, from ``st.user`` (the identity provider's verified claims); never from anything typed."""
    settings = sign_in_settings()
    try:
        config = load_review_config(store)
    except ReviewConfigError as exc:
        st.error("The store's reviewer settings cannot be read, so nobody can decide until they are fixed:",
                 icon=":material/gpp_bad:")
        st.text(str(exc))
        config = ReviewConfig()
    if settings is None:
        return Session(None, Role(READER, "sign-in not configured"), None, config)
    identity = Identity.from_claims(st.user.to_dict(), groups_claim=config.groups_claim)
    return Session(identity, config.role_of(identity), settings, config)


SIGN_IN_HELP = (
    "Sign-in is not configured, so this app is read-only: nobody can approve or reject here. To let the store's "
    "reviewers decide, give the app your hospital's identity provider (OpenID Connect: Keycloak, Entra ID, "
    "Google...) with `synthmed app --auth auth.toml`, and name the reviewers in the store's `review.toml` "
    "(README, 'Sign-in and reviewers')."
)


def require_sign_in(store: Store) -> Session:
    """The app's gate: with sign-in configured, an anonymous visitor sees the sign-in button and nothing else."""
    session = current_session(store)
    if session.sign_in is None:
        st.sidebar.info(SIGN_IN_HELP, icon=":material/lock_open:")
        return session
    if session.identity is None:
        st.title("synthmed review")
        if st.user.is_logged_in:  # signed in, but the token lacks an issuer or subject
            st.error("Your identity provider's token has no issuer or subject, so you cannot be identified.",
                     icon=":material/gpp_bad:")
            st.button("Sign out", on_click=st.logout, key="signout_incomplete")
            st.stop()
        st.write("This app shows the privacy evidence of synthetic releases and records who approved them. "
                 "Sign in with your hospital account to continue.")
        st.button("Sign in", type="primary", icon=":material/login:", key="signin",
                  on_click=st.login, args=(session.sign_in.provider,))
        st.stop()
    identity = session.identity
    with st.sidebar:
        st.caption("Signed in")
        st.text(identity.display + (f"\n{identity.email}" if identity.email and identity.email != identity.display else ""))
        st.text(f"role: {session.role.label}")
        with st.expander("Your identity"):
            st.caption("Issuer and subject: how review.toml names a reviewer.")
            st.code(f"issuer = {json.dumps(identity.issuer)}\nsubject = {json.dumps(identity.subject)}", language=None)
        st.button("Sign out", on_click=st.logout, key="signout", icon=":material/logout:")
    return session
