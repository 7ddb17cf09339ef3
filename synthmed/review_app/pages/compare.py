"""Compare two or more releases side by side: score cards, trade-off, marginals, pair trends, attacks, policy."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from synthmed.review_app import charts, data, ui
from synthmed.review_app.data import StoredEvaluation

TABS = ["Trade-off", "Marginals", "Pair trends", "Membership attacks", "Distances (DCR)", "Anonymeter risks",
        "Policy verdict", "All results"]


def render() -> None:
    store = ui.current_store()
    st.title("Compare releases")
    with ui.plain_errors(store):
        frame = ui.require_releases(store)
    ids = frame["release_id"].tolist()
    asked = ui.query_list("release")
    unknown = [r for r in asked if r not in ids]
    if unknown:
        st.warning("Not in the catalog:", icon=":material/warning:")
        st.text("\n".join(unknown))
    default = [r for r in asked if r in ids] or ids[:2]
    selected = st.multiselect("Releases", ids, default=default, key="cmp_releases",
                              help="two or more releases; newest first")
    st.query_params["release"] = selected
    if len(ids) < 2:
        st.info("The catalog has a single release; a comparison needs two or more. Make another with "
                "`synthmed release --data DIR --schema S --generator G` and evaluate it.", icon=":material/info:")
        st.stop()
    if len(selected) < 2:
        st.info("Pick two or more releases to compare.", icon=":material/info:")
        st.stop()

    rows = frame.set_index("release_id")
    with ui.plain_errors(store):
        evals = {rid: data.latest_evaluation(store, rid, results=ui.cached_results(store)) for rid in selected}
    _score_cards(rows, evals)
    for rid, ev in evals.items():
        if ev is None:
            st.info(ui.not_evaluated_message(rid), icon=":material/info:")
    evaluated = {rid: ev for rid, ev in evals.items() if ev is not None}

    tabs = st.tabs(TABS)
    with tabs[0]:
        with ui.plain_errors(store):
            _tradeoff(data.tradeoff_frame(store), selected)
    if not evaluated:
        for tab in tabs[1:]:
            tab.info("None of the selected releases has an evaluation yet.", icon=":material/info:")
        return
    with tabs[1]:
        _marginals(evaluated)
    with tabs[2]:
        _pairs(evaluated)
    with tabs[3]:
        _attacks(evaluated, rows)
    with tabs[4]:
        _dcr(evaluated)
    with tabs[5]:
        _anonymeter(evaluated)
    with tabs[6]:
        _policy(evaluated)
    with tabs[7]:
        st.caption("Every stored result: value [95% CI], or why it was skipped.")
        st.dataframe(data.results_matrix(evaluated), width="stretch", key="cmp_all_results")


def _score_cards(rows: pd.DataFrame, evals: dict[str, StoredEvaluation | None]) -> None:
    from synthmed.review_app.navigation import REVIEW, pages

    review_page = pages()[REVIEW]
    for col, (rid, ev) in zip(st.columns(len(evals)), evals.items()):
        row = rows.loc[rid]
        h = data.headline(ev)
        with col.container(border=True):
            st.text(f"{row['generator']} · {row['schema']} · {row['patients']:,} patients")
            st.text(rid)
            st.markdown(ui.RISK_BADGES.get(h.get("risk_level") or "", ":gray-badge[not evaluated]"))
            st.text(str(h.get("verdict", "")))
            a, b = st.columns(2)
            a.metric("Overall fidelity", data.fmt(h.get("fidelity")), help="mean of column shapes and pair trends")
            b.metric("Worst attack AUC", data.fmt(h.get("mia_auc")),
                     help=f"highest membership-inference AUC ({h.get('mia_attack') or 'none run'}); 0.5 = random guess")
            a.metric("DCR closer to train", _judged(ev, "privacy.dcr.share_closer_to_train"),
                     help="share of synthetic records closer to a training than to a holdout patient (0.5 is ideal), its "
                          "95% CI and the policy's verdict, which reads the CI's low end; a mean, so a few near-copies "
                          "barely move it: see the near-copy share")
            b.metric("Exact copies", _judged(ev, "privacy.exact_copies"),
                     help="share of synthetic patients copying a training patient, and the policy's verdict on the excess "
                          "over chance (the holdout's rate per reference patient)")
            a.metric("Near-copies", _judged(ev, "privacy.dcr.near_copy_share"),
                     help="estimated share of synthetic records that are near-copies of training patients beyond chance, "
                          "its 95% CI and the policy's verdict (0 is ideal)")
            eps = row["epsilon"]
            a.metric("DP ε", "not DP" if pd.isna(eps) else f"{eps:g}",
                     help="the generator's differential-privacy budget" + ("" if pd.isna(row["delta"]) else f" (δ = {row['delta']:g})"))
            empirical = data.empirical_epsilons(ev)
            b.metric("Empirical ε ≥", data.fmt(max(e["value"] for e in empirical)) if empirical else "–",
                     help="lower bound on epsilon from the canary audit (`--audit canaries`), where the evaluation has one"
                     + "".join(f"; {e['limit_text']}" for e in empirical if e["limit_text"]))
            st.text(f"review: {row['review_status']}")
            st.page_link(review_page, label="Review this release", icon=":material/fact_check:", query_params={"release": rid})


def _judged(ev: StoredEvaluation | None, name: str) -> str:
    """A result's value, its CI and the policy's verdict on it, as one card text ("0.583 [0.57, 0.60] fail")."""
    r = ev.get(name) if ev is not None else None
    if r is None or r.get("value") is None:
        return "–"
    ci = r.get("ci")
    status = next((v.get("status") for v in ((ev.policy or {}).get("verdicts") or []) if v.get("metric") == name), None)
    return (data.fmt(r["value"]) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            + (f" {status}" if status and status != "skipped" else ""))


def _tradeoff(frame: pd.DataFrame, selected: list[str]) -> None:
    st.caption("Every evaluated release of the catalog: fidelity against the strongest membership attack. "
               "Top left is the worst place to be, bottom right the best; the selected releases are large and labelled.")
    plotted = frame.dropna(subset=["fidelity", "mia_auc"])
    if plotted.empty:
        st.info("No evaluated release has both an overall fidelity and a membership-attack AUC yet.", icon=":material/info:")
        return
    st.altair_chart(charts.tradeoff(plotted, selected), width="stretch", key="cmp_tradeoff")
    left_out = sorted(set(frame["release_id"]) - set(plotted["release_id"]))
    if left_out:
        st.caption("Not plotted (no fidelity or no attack AUC):")
        st.text("\n".join(left_out))


def _marginals(evaluated: dict[str, StoredEvaluation]) -> None:
    scores = data.column_scores(evaluated)
    if scores.empty:
        st.info("No column-shape aggregates were stored (`fidelity.column_shapes` was not run).", icon=":material/info:")
        return
    wide = scores.pivot_table(index=["table", "column", "metric"], columns="release_id", values="value").reset_index()
    release_cols = [c for c in wide.columns if c in evaluated]
    wide = wide.assign(worst=wide[release_cols].min(axis=1)).sort_values("worst")
    st.caption("Per-column shape score (KS complement for numbers and dates, TV complement for categories), "
               "worst first; pick a column to see its distributions.")
    st.dataframe(wide.drop(columns="worst"), hide_index=True, width="stretch", key="cmp_column_scores",
                 column_config={c: st.column_config.ProgressColumn(ui.short_id(c, 32), min_value=0.0, max_value=1.0, format="%.3f")
                                for c in release_cols})
    c1, c2 = st.columns(2)
    tables = sorted(scores["table"].unique())
    table = c1.selectbox("Table", tables, key="cmp_marg_table")
    in_table = wide[wide["table"] == table]
    column = c2.selectbox("Column", in_table["column"].tolist(), key="cmp_marg_column")
    for col, (rid, ev) in zip(st.columns(len(evaluated)), evaluated.items()):
        frame = data.marginal_frame(ev, table, column)
        with col:
            if frame is None:
                st.text(f"{rid}: no aggregate stored for {table}.{column}")
            else:
                st.altair_chart(charts.marginal(frame, title=f"{ui.short_id(rid, 48)}"), width="stretch",
                                key=f"cmp_marg_{rid}")


def _pairs(evaluated: dict[str, StoredEvaluation]) -> None:
    frames = {rid: data.pair_frame(ev) for rid, ev in evaluated.items()}
    tables = sorted({t for f in frames.values() for t in f["table"].unique()})
    if not tables:
        st.info("No pair-trend aggregates were stored (`fidelity.column_pair_trends` was not run).", icon=":material/info:")
        return
    st.caption("Similarity of each pair of columns' trend, real vs synthetic (correlation similarity for two numbers, "
               "contingency similarity otherwise): green = as in the real data, red = different.")
    table = st.selectbox("Table", tables, key="cmp_pair_table")
    for rid, frame in frames.items():
        part = frame[frame["table"] == table]
        if part.empty:
            st.text(f"{rid}: no pair scored in {table}")
            continue
        mean = part["value"].mean()
        st.altair_chart(charts.pair_heatmap(part, title=f"{rid} · mean {mean:.3f}"), width="stretch",
                        key=f"cmp_pairs_{rid}")


def _attacks(evaluated: dict[str, StoredEvaluation], rows: pd.DataFrame) -> None:
    roc = data.roc_frame(evaluated)
    if roc.empty:
        st.info("No membership-inference attack was run on these releases (it needs the real holdout at evaluation).",
                icon=":material/info:")
    else:
        st.caption("ROC curves of the membership-inference attacks on the same member (train) and non-member (holdout) "
                   "targets; the diagonal is a random guess, which is what a private release should look like.")
        attacks = sorted(roc["attack"].unique())
        for col, attack in zip(st.columns(len(attacks)), attacks):
            with col:
                st.altair_chart(charts.roc(roc[roc["attack"] == attack], title=f"{attack} attack"), key=f"cmp_roc_{attack}")
        st.dataframe(data.mia_table(evaluated), hide_index=True, width="stretch", key="cmp_mia_table")
    st.markdown("**Epsilon**")  # fixed text
    eps_rows = []
    for rid, ev in evaluated.items():
        row = rows.loc[rid]
        empirical = data.empirical_epsilons(ev)
        eps_rows.append({
            "release_id": rid,
            "differentially private": bool(row["differentially_private"]),
            "DP ε (theoretical)": None if pd.isna(row["epsilon"]) else float(row["epsilon"]),
            "δ": None if pd.isna(row["delta"]) else float(row["delta"]),
            "empirical ε lower bound": "; ".join(
                f"{e['name']}: {data.fmt(e['value'])}" + (f" [{data.fmt(e['ci'][0])}, {data.fmt(e['ci'][1])}]" if e["ci"] else "")
                for e in empirical) or "not in the results",
            "the audit cannot show more than": "; ".join(data.fmt(e["limit"], 2) for e in empirical if e["limit"] is not None) or None,
        })
    st.dataframe(pd.DataFrame(eps_rows), hide_index=True, width="stretch", key="cmp_epsilon")


def _dcr(evaluated: dict[str, StoredEvaluation]) -> None:
    hist = data.dcr_histogram_frame(evaluated)
    if hist.empty:
        st.info("No distance-to-closest-record results were stored (`privacy.dcr` needs the real holdout).",
                icon=":material/info:")
        return
    st.caption("Distance of each synthetic record to its closest training record and to its closest holdout record "
               "(same-size samples). If the generator learnt the population rather than its patients, the two "
               "distributions coincide and half the records are closer to train.")
    st.dataframe(data.dcr_table(evaluated), hide_index=True, width="stretch", key="cmp_dcr_table")
    with_hist = [rid for rid in evaluated if (hist["release_id"] == rid).any()]
    for col, rid in zip(st.columns(len(with_hist)), with_hist):
        with col:
            st.altair_chart(charts.dcr(hist[hist["release_id"] == rid], title=ui.short_id(rid, 48)), width="stretch",
                            key=f"cmp_dcr_{rid}")


def _anonymeter(evaluated: dict[str, StoredEvaluation]) -> None:
    frame = data.anonymeter_frame(evaluated)
    if frame.empty:
        st.info("No singling-out, linkability or attribute-inference risk was stored (they need the real holdout).",
                icon=":material/info:")
        return
    st.caption("Anonymeter-style residual risks (attack success over the control set's, 0 = no risk) with 95% CIs; "
               "the rates behind each are in the table.")
    st.altair_chart(charts.risks(frame), width="stretch", key="cmp_risks")
    st.dataframe(frame, hide_index=True, width="stretch", key="cmp_risk_table",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                for c in ("value", "ci_low", "ci_high", "attack_rate", "baseline_rate", "control_rate")})
    weak = frame[frame["better_than_baseline"] == False]  # noqa: E712 (None means unknown)
    for r in weak.itertuples(index=False):
        st.warning(f"{ui.code_span(r.release_id)}: the {r.risk} attack is no better than a random guess, so "
                   "its risk estimate cannot be trusted.", icon=":material/warning:")


def _policy(evaluated: dict[str, StoredEvaluation]) -> None:
    show_all = st.toggle("Show passing and skipped results too", value=False, key="cmp_policy_all")
    for col, (rid, ev) in zip(st.columns(len(evaluated)), evaluated.items()):
        with col:
            st.text(ui.short_id(rid, 48))
            if ev.policy is None:
                st.caption("no policy verdict stored")
                continue
            badge = ui.RISK_BADGES.get(ev.policy.get("risk_level", ""))
            if badge:
                st.markdown(badge)
            st.text(f"policy {ev.policy.get('policy')} v{ev.policy.get('version')}")
            st.text("\n".join(f"• {reason}" for reason in ev.policy.get("reasons", [])))
            frame = data.policy_frame(ev)
            if not show_all:
                frame = frame[frame["status"].isin(["fail", "warn"])].drop(columns="reason")
            st.dataframe(frame, hide_index=True, width="stretch", key=f"cmp_policy_{rid}")
