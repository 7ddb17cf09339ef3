"""synthmed review app: ``streamlit run app.py`` (or ``synthmed app [--store DIR]``).

Privacy officers compare synthetic releases, read their fidelity and privacy evidence and the policy
verdict, and approve, reject or request changes, with an audit trail. The store is $SYNTHMED_STORE,
else ./synthmed-data. The pages live in ``synthmed/review_app/pages`` (each testable on its own).
"""
import streamlit as st

from synthmed.review_app.navigation import pages
from synthmed.review_app.ui import current_store

st.set_page_config(page_title="synthmed review", page_icon=":material/health_and_safety:", layout="wide")
st.sidebar.caption(f"Store: `{current_store().root}`")
st.sidebar.caption("Reads the catalog's aggregates and the synthetic release files only; never real records.")
st.navigation(list(pages().values())).run()
