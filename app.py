"""synthmed review app: ``synthmed app [--store DIR] [--auth auth.toml]`` (or ``streamlit run app.py`` on loopback).

Privacy officers compare synthetic releases, read their fidelity and privacy evidence and the policy
verdict, and approve, reject or request changes, with an audit trail. With sign-in configured (Streamlit's
OpenID Connect, ``[auth]``), a visitor must sign in with the hospital's identity provider first, and only
the store's reviewers decide; without it the app is read-only. The store is $SYNTHMED_STORE, else
./synthmed-data. The pages live in ``synthmed/review_app/pages`` (each testable on its own).
"""
import streamlit as st

from synthmed.review_app.navigation import pages
from synthmed.review_app.ui import current_store, require_sign_in

st.set_page_config(page_title="synthmed review", page_icon=":material/health_and_safety:", layout="wide")
store = current_store()
require_sign_in(store)
st.sidebar.caption("Store")
st.sidebar.text(str(store.root))
st.sidebar.caption("Reads the catalog's aggregates and the synthetic release files only; never real records.")
st.navigation(list(pages().values())).run()
