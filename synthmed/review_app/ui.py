"""Streamlit pieces shared by the pages: the store, plain messages for empty and broken states, small widgets."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import streamlit as st

from synth.errors import CatalogError, ReleaseError
from synth.release import Store
from synth.store import STORE_ENV, resolve_store
from synthmed.review_app import data

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
        st.warning(f"{exc}", icon=":material/lock:" if "in use" in str(exc) else ":material/warning:")
        if "in use" in str(exc):
            st.caption("Another synthmed command is writing to this store. Reload this page when it has finished.")
        st.stop()
    except ReleaseError as exc:
        st.warning(str(exc), icon=":material/warning:")
        st.stop()
    except duckdb.Error as exc:
        st.warning(
            f"The catalog {store.catalog.path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "It may have been written by another version of synthmed; `synthmed releases list` shows what it holds.",
            icon=":material/warning:",
        )
        st.stop()


def require_releases(store: Store) -> Any:
    """The releases frame, or a plain message saying what to run when there is no catalog or no release."""
    if not data.has_catalog(store):
        st.info(
            f"No catalog at `{store.catalog.path}`, so there is nothing to review yet.\n\n"
            "Run `synthmed demo` to make a demo store with two evaluated releases, or `synthmed release ...` then "
            f"`synthmed evaluate RELEASE_ID --data DIR` on your own data. To open another store, start the app with "
            f"`synthmed app --store DIR` (or set `{STORE_ENV}`).",
            icon=":material/info:",
        )
        st.stop()
    frame = data.releases_frame(store)
    if frame.empty:
        st.info(
            f"The catalog at `{store.catalog.path}` has no releases yet. Run `synthmed release --data DIR --schema S "
            "--generator G` (or `synthmed demo`), then `synthmed evaluate RELEASE_ID --data DIR`.",
            icon=":material/info:",
        )
        st.stop()
    return frame


def not_evaluated_message(release_id: str) -> str:
    return (f"Release `{release_id}` has no evaluation yet: run `synthmed evaluate {release_id} --data DIR` "
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


_MARKDOWN_SPECIAL = "\\`*_[]<>#~$|"


def plain(text: str) -> str:
    """Text from the catalog made safe to embed in Markdown (no emphasis, links or HTML from its characters)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in str(text))
