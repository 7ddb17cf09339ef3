"""Review a release: verify its files, read its verdict, approve / reject / request changes; history and audit CSV."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from synth.catalog import DECISIONS
from synth.release import Store, VerifyResult
from synthmed.review_app import data, ui
from synthmed.review_app.errors import ReviewRefusedError


@st.cache_data(max_entries=128, show_spinner="Verifying the release's files against its manifest...")
def _verified(root: str, release_id: str, manifest_hash: str, signature: tuple[tuple[str, int, int], ...]) -> VerifyResult:
    """Verification, recomputed whenever a file's size or time, or the catalog's manifest hash, changes."""
    return data.verify(Store(Path(root)), release_id)


def render() -> None:
    store = ui.current_store()
    st.title("Review a release")
    with ui.plain_errors(store):
        frame = ui.require_releases(store)
    ids = frame["release_id"].tolist()
    asked = [r for r in ui.query_list("release") if r in ids]
    index = ids.index(asked[0]) if asked else 0
    release_id = st.selectbox("Release", ids, index=index, key="rv_release")
    st.query_params["release"] = release_id
    row = frame.set_index("release_id").loc[release_id]

    with ui.plain_errors(store):
        ev = data.latest_evaluation(store, release_id, results=ui.cached_results(store))
    summary = st.container()  # filled after the form, so a review recorded on this run shows in it at once

    st.subheader("Verification")
    check = _verified(str(store.root), release_id, str(row["manifest_hash"]), data.files_signature(store, release_id))
    if check.ok:
        st.success("Every file matches the release's manifest, and the manifest matches the catalog.",
                   icon=":material/verified:")
    else:
        st.error("This release fails verification, so it cannot be approved:\n\n"
                 + "\n".join(f"- {ui.plain(p)}" for p in check.problems), icon=":material/gpp_bad:")

    st.subheader("Decision")
    with st.form("review_form"):
        decision = st.radio("Decision", DECISIONS, format_func=lambda d: data.DECISION_LABELS[d], horizontal=True,
                            key="rv_decision")
        reviewer = st.text_input("Reviewer", key="rv_reviewer", placeholder="your name")
        comment = st.text_area("Comment", key="rv_comment",
                               placeholder="what you checked; required to reject or request changes")
        submitted = st.form_submit_button("Record the review", type="primary")
    if submitted:
        with ui.plain_errors(store):
            try:
                review_id = data.submit_review(store, release_id, decision=decision, reviewer=reviewer, comment=comment)
            except ReviewRefusedError as exc:
                st.error("The review was not recorded:\n\n" + "\n".join(f"- {ui.plain(p)}" for p in exc.problems),
                         icon=":material/block:")
            else:
                st.success(f"Recorded: {data.DECISION_LABELS[decision]} by {ui.plain(reviewer.strip())} "
                           f"({review_id}, manifest hash {str(row['manifest_hash'])[:16]}...).", icon=":material/check:")
                row = data.releases_frame(store).set_index("release_id").loc[release_id]
    with summary:
        _summary(store, release_id, row, ev)

    st.subheader("History of this release")
    with ui.plain_errors(store):
        history = data.reviews_frame(store, release_id)
        audit = data.audit_csv(store)
    if history.empty:
        st.caption("No review yet.")
    else:
        current = history.assign(same_manifest=history["manifest_hash"] == row["manifest_hash"])
        st.dataframe(current, hide_index=True, width="stretch", key="rv_history",
                     column_config={"same_manifest": st.column_config.CheckboxColumn(
                         "manifest unchanged", help="the review's manifest hash is the release's current one")})
    st.subheader("Audit trail")
    st.caption("Every review of every release, oldest first. Reviews are appended to the catalog and never changed.")
    st.download_button("Download the audit trail (CSV)", audit, file_name="synthmed-audit-trail.csv", mime="text/csv",
                       icon=":material/download:", key="rv_audit_csv")


def _summary(store: Store, release_id: str, row: pd.Series, ev: data.StoredEvaluation | None) -> None:
    h = data.headline(ev)
    with st.container(border=True):
        st.markdown(f"**{row['generator']}** on {row['schema']} · {row['patients']:,} patients · created "
                    f"{str(row['created'])[:19]} UTC · latest review: {row['review_status']}")
        st.caption(f"manifest hash {row['manifest_hash']}")
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Overall fidelity", data.fmt(h.get("fidelity")))
        c2.metric("Risk level", h.get("risk_level") or "not evaluated")
        c3.metric("Worst attack AUC", data.fmt(h.get("mia_auc")))
        eps = row["epsilon"]
        c4.metric("DP ε", "not DP" if pd.isna(eps) else f"{eps:g}")
    if ev is None:
        st.info(ui.not_evaluated_message(release_id) + " A release needs an evaluation before it can be approved.",
                icon=":material/info:")
    elif ev.policy:
        flagged = [v for v in ev.policy.get("verdicts", []) if v["status"] in ("fail", "warn")]
        label = f"Policy verdict: {h.get('verdict')}"
        with st.expander(label, expanded=0 < len(flagged) <= 5):
            for reason in ev.policy.get("reasons", []):
                st.markdown(f"- {ui.plain(reason)}")
    manifest = data.manifest_summary(store, release_id)
    with st.expander("Manifest"):
        if "error" in manifest:
            st.warning(manifest["error"], icon=":material/warning:")
        else:
            st.code(json.dumps(manifest, indent=2, sort_keys=True, default=str), language="json")
