"""The app's pages for ``st.navigation`` (``app.py``) and for links between pages."""
from __future__ import annotations

import streamlit as st

from synthmed.review_app.pages import compare, overview, review

RELEASES, COMPARE, REVIEW = "releases", "compare", "review"


def pages() -> dict[str, st.Page]:
    """The pages by url path, releases overview first (the default)."""
    return {
        RELEASES: st.Page(overview.render, title="Releases", icon=":material/table_view:", url_path=RELEASES, default=True),
        COMPARE: st.Page(compare.render, title="Compare", icon=":material/compare:", url_path=COMPARE),
        REVIEW: st.Page(review.render, title="Review", icon=":material/fact_check:", url_path=REVIEW),
    }
