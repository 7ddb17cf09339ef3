"""Review a release: verify its files, read its verdict, approve / reject / request changes; history and audit CSV.

The decision is recorded under the signed-in identity (``st.user``); the rules (reviewer role, separation
of duties, overrides, two approvals) are enforced by ``decisions.record_decision`` where the row is
appended, and only mirrored here to say in advance what the form needs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from synth.catalog import DECISIONS, ChainState
from synth.release import Store, VerifyResult
from synthmed.review_app import data, ui
from synthmed.review_app.decisions import MAX_SIGN_IN_AGE_S, MIN_JUSTIFICATION, override_reasons
from synthmed.review_app.errors import ReviewRefusedError

OVERRIDE_STYLE = "background-color: #fde0e0; color: #a50e0e; font-weight: 600"
HISTORY_COLUMNS = ["created_at", "decision", "display_name", "override", "justification", "comment", "role", "email",
                   "risk_level", "evaluation_id", "manifest_hash", "issuer", "subject"]


@st.cache_data(max_entries=128, show_spinner="Verifying the release's files against its manifest...")
def _verified(root: str, release_id: str, manifest_hash: str, signature: tuple[tuple[str, int, int], ...]) -> VerifyResult:
    """Verification, recomputed whenever a file's size or time, or the catalog's manifest hash, changes."""
    return data.verify(Store(Path(root)), release_id)


@st.cache_data(max_entries=8, show_spinner="Checking the catalog's audit chain...")
def _chain(root: str, signature: tuple[int, ...]) -> ChainState:
    """The chain's state, rechecked whenever the catalog or its signed head changes."""
    return data.chain_state(Store(Path(root)))


def render() -> None:
    store = ui.current_store()
    st.title("Review a release")
    with ui.plain_errors(store):
        frame = ui.require_releases(store)
    session = ui.current_session(store)
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
    chain = _chain(str(store.root), data.chain_signature(store))
    if check.ok:
        st.success("Every file matches the release's manifest, and the manifest matches the catalog.",
                   icon=":material/verified:")
    else:
        st.error("This release fails verification, so it cannot be approved:", icon=":material/gpp_bad:")
        st.text("\n".join(f"• {p}" for p in check.problems))
    if chain.ok:
        st.success("The catalog's audit chain is intact: every release, evaluation and decision is as it was "
                   "appended, under the store's signed head.", icon=":material/link:")
        st.text(chain.summary)
    else:
        st.error("The catalog's audit chain is broken, so no release can be approved until `synthmed audit verify` "
                 "is clean:", icon=":material/link_off:")
        st.text("\n".join(f"• {p}" for p in chain.problems))

    st.subheader("Decision")
    if _decision_form(store, session, release_id, row, ev):
        row = data.releases_frame(store).set_index("release_id").loc[release_id]
    with summary:
        _summary(store, release_id, row, ev)
    _history(store, release_id, row)


def _decision_form(store: Store, session: ui.Session, release_id: str, row: pd.Series,
                   ev: data.StoredEvaluation | None) -> bool:
    """The form for reviewers, or why this visitor cannot decide; True when a review was recorded."""
    if session.sign_in is None:
        st.info(ui.SIGN_IN_HELP, icon=":material/lock_open:")
        return False
    identity = session.identity
    if identity is None:
        st.info("Sign in to decide on this release.", icon=":material/login:")
        return False
    if not session.role.can_decide:
        st.info("You are signed in as a reader: you can read everything here, but only the store's reviewers "
                "decide. If you should be one, ask the store's administrator to add the issuer and subject shown "
                "under 'Your identity' in the sidebar to review.toml.", icon=":material/visibility:")
        return False
    if identity.issued_at is None or time.time() - identity.issued_at > MAX_SIGN_IN_AGE_S:
        st.warning(f"Your sign-in is more than {MAX_SIGN_IN_AGE_S // 3600} hours old: sign out and in again before "
                   "deciding, so the identity provider confirms who you are and your groups.", icon=":material/schedule:")
    creator = next((who for who in (row.get("requested_by"), row.get("requested_os_user")) if who and identity.is_named(who)), None)
    if creator:
        st.warning("You requested this release, so you cannot approve it (separation of duties): another reviewer "
                   "must. You may still reject it or request changes.", icon=":material/group:")
    reasons = override_reasons(ev.risk_level, ev.policy) if ev is not None else []
    if reasons:
        st.warning("Approving this release needs an explicit override with a written justification, recorded with "
                   "your decision and shown in red in the history, because:", icon=":material/report:")
        st.text("\n".join(f"• {r}" for r in reasons))
    if session.review_config.approvals_required > 1:
        st.caption(f"This store needs {session.review_config.approvals_required} approvals from different reviewers "
                   "before a release counts as approved.")
    with st.form("review_form"):
        decision = st.radio("Decision", DECISIONS, format_func=lambda d: data.DECISION_LABELS[d], horizontal=True,
                            key="rv_decision")
        comment = st.text_area("Comment", key="rv_comment",
                               placeholder="what you checked; required to reject or request changes")
        override, justification = False, ""
        if reasons:
            override = st.checkbox("Override the policy verdict (approvals only)", key="rv_override")
            justification = st.text_area(
                "Justification of the override", key="rv_justification",
                placeholder=f"why this release may leave despite its verdict (at least {MIN_JUSTIFICATION} characters)")
        st.caption("Recorded under your signed-in identity, with your role, the time, the manifest hash, the "
                   "evaluation and its verdict.")
        submitted = st.form_submit_button("Record the decision", type="primary")
    if not submitted:
        return False
    with ui.plain_errors(store):
        try:
            review_id = data.submit_review(store, release_id, identity=identity, decision=decision, comment=comment,
                                           override=override, justification=justification)
        except ReviewRefusedError as exc:
            st.error("The decision was not recorded:", icon=":material/block:")
            st.text("\n".join(f"• {p}" for p in exc.problems))
            return False
    st.success(f"Recorded: {data.DECISION_LABELS[decision]}" + (" with an override" if override else "")
               + f" by {ui.code_span(identity.display)} ({review_id}).", icon=":material/check:")
    return True


def _history(store: Store, release_id: str, row: pd.Series) -> None:
    st.subheader("History of this release")
    with ui.plain_errors(store):
        history = data.reviews_frame(store, release_id)
        audit = data.audit_csv(store)
    if history.empty:
        st.caption("No review yet.")
    else:
        current = history[HISTORY_COLUMNS].assign(same_manifest=history["manifest_hash"] == row["manifest_hash"])
        overrides = int(current["override"].sum())
        if overrides:
            st.error(f"{overrides} approval(s) of this release overrode the policy verdict: the red rows, with "
                     "their justification.", icon=":material/report:")
        styled = current.style.apply(
            lambda r: [OVERRIDE_STYLE if r["override"] else "" for _ in r], axis=1)
        st.dataframe(styled, hide_index=True, width="stretch", key="rv_history",
                     column_config={
                         "display_name": "reviewer",
                         "same_manifest": st.column_config.CheckboxColumn(
                             "manifest unchanged", help="the review's manifest hash is the release's current one"),
                         "override": st.column_config.CheckboxColumn("override", help="approved against the verdict"),
                     })
    st.subheader("Audit trail")
    st.caption("Every decision on every release, oldest first. Decisions are appended to the catalog and never "
               "changed. Cells a spreadsheet would run as formulas are prefixed with an apostrophe.")
    st.download_button("Download the audit trail (CSV)", audit, file_name="synthmed-audit-trail.csv", mime="text/csv",
                       icon=":material/download:", key="rv_audit_csv")


def _summary(store: Store, release_id: str, row: pd.Series, ev: data.StoredEvaluation | None) -> None:
    h = data.headline(ev)
    with st.container(border=True):
        st.text(f"{row['generator']} on {row['schema']} · {row['patients']:,} patients · created "
                f"{str(row['created'])[:19]} UTC · requested by {row.get('requested_by') or 'unknown'}")
        st.text(f"review status: {row['review_status']}")
        st.caption("Manifest hash")
        st.code(str(row["manifest_hash"]), language=None)
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Overall fidelity", data.fmt(h.get("fidelity")))
        c2.metric("Risk level", str(h.get("risk_level") or "not evaluated"))
        c3.metric("Worst attack AUC", data.fmt(h.get("mia_auc")))
        eps = row["epsilon"]
        c4.metric("DP ε", "not DP" if pd.isna(eps) else f"{eps:g}")
    if ev is None:
        st.info(ui.not_evaluated_message(release_id) + " A release needs an evaluation before it can be approved.",
                icon=":material/info:")
    elif ev.policy:
        flagged = [v for v in ev.policy.get("verdicts", []) if v["status"] in ("fail", "warn")]
        label = f"Policy verdict: {ui.code_span(h.get('verdict'))}"
        with st.expander(label, expanded=0 < len(flagged) <= 5):
            st.text("\n".join(f"• {reason}" for reason in ev.policy.get("reasons", [])))
    manifest = data.manifest_summary(store, release_id)
    with st.expander("Manifest"):
        if "error" in manifest:
            st.warning("The manifest cannot be read.", icon=":material/warning:")
            st.text(manifest["error"])
        else:
            st.code(json.dumps(manifest, indent=2, sort_keys=True, default=str), language="json")
