"""Releases overview: every release with its latest evaluation and review status; filter, sort, pick to compare."""
from __future__ import annotations

import streamlit as st

from synthmed.review_app import data, ui

SORTS = {
    "created": "created",
    "overall fidelity": "fidelity",
    "risk level": "risk_level",
    "patients": "patients",
    "DP epsilon": "epsilon",
    "generator": "generator",
    "review status": "review_status",
}
SHOWN = ["release_id", "schema", "generator", "patients", "created", "fidelity", "risk_level", "policy_verdict",
         "review_status", "epsilon"]
COLUMNS = {
    "release_id": st.column_config.TextColumn("release", width="medium"),
    "schema": "schema",
    "generator": "generator",
    "patients": st.column_config.NumberColumn("patients", format="localized"),
    "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
    "fidelity": st.column_config.ProgressColumn("overall fidelity", min_value=0.0, max_value=1.0, format="%.3f"),
    "risk_level": "risk level",
    "policy_verdict": st.column_config.TextColumn("policy verdict", help="results that fail, warn or pass the policy"),
    "review_status": "latest review",
    "epsilon": st.column_config.NumberColumn("DP ε", help="differential-privacy epsilon; empty: not DP", format="%.3g"),
}


def render() -> None:
    store = ui.current_store()
    st.title("Releases")
    st.caption("Every synthetic release of the store with its latest evaluation and review.")
    with ui.plain_errors(store):
        frame = ui.require_releases(store)

    with st.container(border=True):
        c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
        text = c1.text_input("Search", key="ov_search", placeholder="release id, generator or schema")
        schemas = c2.multiselect("Schema", sorted(frame["schema"].unique()), key="ov_schema")
        generators = c3.multiselect("Generator", sorted(frame["generator"].unique()), key="ov_generator")
        risks = c4.multiselect("Risk level", sorted(frame["risk_level"].unique(), key=lambda r: data.RISK_ORDER.get(r, 3)),
                               key="ov_risk")
        c5, c6, c7 = st.columns([2, 1, 1])
        reviews = c5.multiselect("Review status", sorted(frame["review_status"].unique()), key="ov_review")
        sort_label = c6.selectbox("Sort by", list(SORTS), key="ov_sort")
        descending = c7.toggle("Descending", value=True, key="ov_desc")
    shown = data.filter_releases(frame, text=text, schemas=schemas, generators=generators, risk_levels=risks,
                                 review_statuses=reviews, sort_by=SORTS[sort_label], descending=descending)
    st.caption(f"{len(shown)} of {len(frame)} release(s)")
    st.dataframe(shown[SHOWN], column_config=COLUMNS, hide_index=True, width="stretch", key="ov_table")

    missing = frame[frame["evaluation_id"].isna()]["release_id"].tolist()
    if missing:
        st.info(
            f"{len(missing)} release(s) have no evaluation yet, so they show no fidelity or risk: run "
            "`synthmed evaluate RELEASE_ID --data DIR` for each of these:",
            icon=":material/info:",
        )
        st.text("\n".join(missing[:5]) + ("\n..." if len(missing) > 5 else ""))

    from synthmed.review_app.navigation import COMPARE, REVIEW, pages

    st.subheader("Compare or review")
    options = shown["release_id"].tolist()
    picked = st.multiselect("Releases to compare", options, default=options[:2], key="ov_pick",
                            help="two or more releases, shown side by side")
    nav = pages()
    c1, c2 = st.columns(2)
    with c1:
        if len(picked) >= 2:
            st.page_link(nav[COMPARE], label=f"Compare the {len(picked)} releases", icon=":material/compare:",
                         query_params={"release": picked})
        else:
            st.caption("Pick two or more releases to compare them.")
    with c2:
        if picked:
            st.page_link(nav[REVIEW], label="Review the first release picked", icon=":material/fact_check:",
                         query_params={"release": picked[0]})
            st.text(ui.short_id(picked[0]))
