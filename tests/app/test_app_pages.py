"""Each page of the review app under Streamlit's AppTest: content, filters, review form, empty and broken states."""
from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from synth.release import Store
from tests.app.conftest import AUTH_SECTION, CREATOR_EMAIL, REPO, AppStore, claims, write_review_config

TIMEOUT = 60


def page(name: str, *, query: dict[str, list[str] | str] | None = None, user: dict | None = None) -> AppTest:
    """One page of the app, run on its own (the store comes from $SYNTHMED_STORE).

    With ``user`` (``st.user``'s claims), sign-in is configured (Streamlit's ``[auth]`` secrets); without, it is not.
    """
    at = AppTest.from_string(f"from synthmed.review_app.pages import {name}\n{name}.render()\n", default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if user is not None:
        at.secrets["auth"] = AUTH_SECTION
        at.user = user
    return at.run()


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def frames(at: AppTest, *columns: str) -> list:
    """The tables shown (as pandas frames) that have all these columns, in page order."""
    return [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]


def frame(at: AppTest, *columns: str):  # noqa: ANN201
    found = frames(at, *columns)
    assert found, f"no table with columns {columns}"
    return found[0]


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


# -- the whole app --------------------------------------------------------------------------------------------


def test_app_entrypoint_opens_on_the_releases(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    no_exception(at)
    assert [t.value for t in at.title] == ["Releases"]
    assert str(app_store.root) in texts(at, "text")
    assert any("Sign-in is not configured, so this app is read-only" in i for i in texts(at, "info"))


def test_app_entrypoint_shows_only_the_sign_in_to_anonymous_visitors(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.secrets["auth"] = AUTH_SECTION
    at.user = {"is_logged_in": False}
    at.run()
    no_exception(at)
    assert [t.value for t in at.title] == ["synthmed review"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe and app_store.copy not in " ".join(texts(at, "text") + texts(at, "markdown"))


def test_app_entrypoint_shows_who_is_signed_in(store_copy: Store, use_store) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.secrets["auth"] = AUTH_SECTION
    at.user = claims("ada", name="Ada Lovelace", groups=["synthmed-reviewers"])
    at.run()
    no_exception(at)
    assert [t.value for t in at.title] == ["Releases"]
    shown = texts(at, "text")
    assert "Ada Lovelace\nada@hospital.example" in shown and "role: reviewer (group synthmed-reviewers)" in shown
    assert any('subject = "ada"' in c.value for c in at.code)
    assert "Sign out" in [b.label for b in at.button]


def test_app_entrypoint_refuses_a_broken_auth_section(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.secrets["auth"] = {**AUTH_SECTION, "cookie_secret": "short"}
    at.user = claims("ada")
    at.run()
    no_exception(at)
    assert any("Sign-in is configured but cannot be used" in e for e in texts(at, "error"))
    assert any("cookie_secret" in t for t in texts(at, "text")) and not at.title


# -- releases overview ----------------------------------------------------------------------------------------


def test_overview_lists_every_release_with_its_verdict(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = page("overview")
    no_exception(at)
    table = at.dataframe[0].value
    assert set(table["release_id"]) == {app_store.unevaluated, app_store.independent, app_store.copy}
    assert {"schema", "generator", "patients", "created", "fidelity", "risk_level", "policy_verdict",
            "review_status", "epsilon"} <= set(table.columns)
    by_id = table.set_index("release_id")
    assert by_id.loc[app_store.copy, "risk_level"] == "high"
    assert "fail" in by_id.loc[app_store.copy, "policy_verdict"]
    assert by_id.loc[app_store.unevaluated, "risk_level"] == "not evaluated"
    assert (table["review_status"] == "not reviewed").all()
    # the release without evaluation is named, with the command to run
    assert any("synthmed evaluate RELEASE_ID --data DIR" in i for i in texts(at, "info"))
    assert app_store.unevaluated in texts(at, "text")
    # newest first by default: the two evaluated releases are picked for comparison
    assert sorted(at.multiselect(key="ov_pick").value) == sorted(app_store.evaluated)
    assert len(at.get("page_link")) == 2


def test_overview_filters_and_sorts(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = page("overview")
    at.multiselect(key="ov_generator").set_value(["copy"]).run()
    no_exception(at)
    assert list(at.dataframe[0].value["release_id"]) == [app_store.copy]
    assert "1 of 3 release(s)" in texts(at, "caption")
    at.multiselect(key="ov_generator").set_value([]).run()
    at.selectbox(key="ov_sort").set_value("overall fidelity").run()
    at.toggle(key="ov_desc").set_value(False).run()
    ordered = list(at.dataframe[0].value["release_id"])
    assert ordered == [app_store.independent, app_store.copy, app_store.unevaluated]  # lower fidelity first, none last
    at.text_input(key="ov_search").input("no-such-release").run()
    assert at.dataframe[0].value.empty
    no_exception(at)


# -- compare ----------------------------------------------------------------------------------------------------


def test_compare_shows_every_section_for_two_releases(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = page("compare", query={"release": app_store.evaluated})
    no_exception(at)
    assert at.multiselect(key="cmp_releases").value == app_store.evaluated
    metrics = {(m.label, m.value) for m in at.metric}
    assert ("DP ε", "not DP") in metrics
    labels = [m.label for m in at.metric]
    for label in ("Overall fidelity", "Worst attack AUC", "DCR closer to train", "Exact copies", "Empirical ε ≥"):
        assert labels.count(label) == 2, label
    assert [t.label for t in at.tabs] == ["Trade-off", "Marginals", "Pair trends", "Membership attacks",
                                          "Distances (DCR)", "Anonymeter risks", "Policy verdict", "All results"]
    # trade-off, 2 marginals, 2 heatmaps, 2 ROC attacks, 2 DCR histograms, 1 risk chart
    assert charts(at) == 10
    mia = frame(at, "attack", "auc")
    assert set(mia["attack"]) == {"distance", "domias"} and set(mia["release_id"]) == set(app_store.evaluated)
    risks = frame(at, "risk", "ci_low")
    assert set(risks["risk"]) == {"singling out", "linkability", "attribute inference"}
    assert (risks["ci_low"] <= risks["value"]).all() and (risks["value"] <= risks["ci_high"]).all()
    assert not frame(at, "share_closer_to_train").empty
    policy_copy = frames(at, "status", "threshold")[0]  # releases in the order selected
    assert (policy_copy["status"] == "fail").any() and policy_copy["threshold"].notna().all()
    assert frames(at, *app_store.evaluated)  # every result by release
    eps = frame(at, "empirical ε lower bound")
    assert list(eps["empirical ε lower bound"]) == ["not in the results"] * 2


def test_compare_switches_marginal_column_and_policy_view(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = page("compare", query={"release": app_store.evaluated})
    at.selectbox(key="cmp_marg_table").set_value("patients").run()
    columns = at.selectbox(key="cmp_marg_column").options
    assert "sex" in columns
    at.selectbox(key="cmp_marg_column").set_value("sex").run()
    at.toggle(key="cmp_policy_all").set_value(True).run()
    no_exception(at)
    full = frames(at, "status", "threshold")[1]
    assert "pass" in set(full["status"]) and "reason" in full.columns


def test_compare_needs_two_releases_and_names_unknown_ones(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = page("compare", query={"release": [app_store.copy, "kr_claims-nope"]})
    no_exception(at)
    assert texts(at, "warning") == ["Not in the catalog:"] and "kr_claims-nope" in texts(at, "text")
    assert any("Pick two or more" in i for i in texts(at, "info"))
    assert charts(at) == 0
    at.multiselect(key="cmp_releases").set_value([]).run()
    no_exception(at)
    assert any("Pick two or more" in i for i in texts(at, "info"))


def test_compare_with_a_release_without_evaluation(app_store: AppStore, use_store) -> None:
    use_store(app_store.root)
    at = page("compare", query={"release": [app_store.unevaluated, app_store.copy]})
    no_exception(at)
    infos = texts(at, "info")
    assert any(f"synthmed evaluate {app_store.unevaluated} --data DIR" in i for i in infos)
    assert ("Overall fidelity", "–") in {(m.label, m.value) for m in at.metric}
    assert set(frame(at, "attack", "auc")["release_id"]) == {app_store.copy}


# -- review -------------------------------------------------------------------------------------------------------


REVIEWER = claims("ada", name="Ada Lovelace", groups=["synthmed-reviewers"])
CREATOR = claims("alice", name="Alice Creator", email=CREATOR_EMAIL, groups=["synthmed-reviewers"])
READER = claims("eve", name="Eve Reader", groups=["staff"])
WHY = "The board accepted the residual risk for aggregate-only use (minutes 2026-12-01)."


def submit(at: AppTest, decision: str, comment: str = "", *, justification: str | None = None) -> AppTest:
    at.radio(key="rv_decision").set_value(decision)
    at.text_area(key="rv_comment").input(comment)
    if justification is not None:
        at.checkbox(key="rv_override").check()
        at.text_area(key="rv_justification").input(justification)
    return at.button[0].click().run()


def test_review_without_sign_in_is_read_only(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.copy})
    no_exception(at)
    assert any("Sign-in is not configured, so this app is read-only" in i for i in texts(at, "info"))
    assert not at.button and not at.get("form")


def test_reader_sees_everything_but_cannot_decide(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.copy}, user=READER)
    no_exception(at)
    assert any("signed in as a reader" in i for i in texts(at, "info"))
    assert not at.button and any("Every file matches" in s for s in texts(at, "success"))


def test_review_appends_under_the_signed_in_identity_and_exports_csv(store_copy: Store, use_store,
                                                                     app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.copy}, user=REVIEWER)
    no_exception(at)
    assert at.selectbox(key="rv_release").value == app_store.copy
    assert any("Every file matches" in s for s in texts(at, "success"))
    assert any("audit chain is intact" in s for s in texts(at, "success"))
    assert "No review yet." in texts(at, "caption")
    assert "• the policy verdict is high risk" in " ".join(texts(at, "text")).replace("\n", " ")
    at = submit(at, "reject", "membership attacks succeed; exact copies of patients")
    no_exception(at)
    assert any("Recorded: reject by `Ada Lovelace`" in s for s in texts(at, "success"))
    # the summary box at the top shows the review just recorded, on the same run
    assert "review status: rejected" in texts(at, "text")
    (row,) = store_copy.catalog.reviews(app_store.copy)
    assert (row["subject"], row["display_name"], row["role"]) == ("ada", "Ada Lovelace", "reviewer (group synthmed-reviewers)")
    history = frame(at, "decision", "same_manifest")
    assert list(history["decision"]) == ["reject"] and history["same_manifest"].all()
    from synthmed.review_app.data import audit_csv

    rows = list(csv.DictReader(io.StringIO(audit_csv(store_copy).decode())))
    assert [(r["display_name"], r["subject"], r["release_id"]) for r in rows] == [("Ada Lovelace", "ada", app_store.copy)]
    assert len(at.get("download_button")) == 1


def test_review_form_says_what_is_missing(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = submit(page("review", query={"release": app_store.independent}, user=REVIEWER), "reject", "  ")
    no_exception(at)
    assert "The decision was not recorded:" in texts(at, "error")
    assert any("say why in the comment" in t for t in texts(at, "text"))
    assert store_copy.catalog.reviews() == []


def test_high_risk_approval_needs_an_override_in_red(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.copy}, user=REVIEWER)
    at = submit(at, "approve")
    assert any("explicit override" in t for t in texts(at, "text"))
    at = submit(at, "approve", justification=WHY)
    no_exception(at)
    assert any("Recorded: approve with an override" in s for s in texts(at, "success"))
    assert any("overrode the policy verdict" in e for e in texts(at, "error"))
    (row,) = store_copy.catalog.reviews()
    assert row["override"] is True and row["justification"] == WHY
    history = at.dataframe[-1]
    assert history.value["override"].tolist() == [True]
    assert "a50e0e" in str(history.proto)  # the override row is styled red


def test_creator_is_warned_and_refused(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.independent}, user=CREATOR)
    assert any("You requested this release" in w for w in texts(at, "warning"))
    at = submit(at, "approve")
    assert any("separation of duties" in t for t in texts(at, "text"))
    assert store_copy.catalog.reviews() == []


def test_approval_refused_when_files_fail_verification(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    target = next(p for p in store_copy.release_dir(app_store.independent).glob("*.parquet"))
    target.write_bytes(target.read_bytes() + b"tampered")
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.independent}, user=REVIEWER)
    no_exception(at)
    assert any("fails verification" in e for e in texts(at, "error"))
    assert any(target.name in t for t in texts(at, "text"))
    at = submit(at, "approve")
    assert any(f"{target.name} was modified" in t for t in texts(at, "text"))
    assert store_copy.catalog.reviews() == []
    at = submit(at, "reject", "files were modified after release")  # rejecting it is fine
    assert [r["decision"] for r in store_copy.catalog.reviews()] == ["reject"]


def test_approval_refused_without_evaluation(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.unevaluated}, user=REVIEWER)
    assert any("no evaluation yet" in i for i in texts(at, "info"))
    at = submit(at, "approve")
    assert any("no evaluation" in t for t in texts(at, "text"))
    assert store_copy.catalog.reviews() == []


def test_approval_of_a_verified_evaluated_release(store_copy: Store, use_store, app_store: AppStore) -> None:
    write_review_config(store_copy)
    use_store(store_copy.root)
    at = submit(page("review", query={"release": app_store.independent}, user=REVIEWER), "approve")
    no_exception(at)
    assert [r["decision"] for r in store_copy.catalog.reviews(app_store.independent)] == ["approve"]
    overview = page("overview")
    status = overview.dataframe[0].value.set_index("release_id").loc[app_store.independent, "review_status"]
    assert status == "approved"


def test_injected_names_are_text_on_every_page(store_copy: Store, use_store, app_store: AppStore) -> None:
    from synth.catalog import utcnow

    evil = "**APPROVED by DPO** :green-badge[low risk] ![x](http://evil.example/x.png) `code`"
    rid = f"{evil}-rid"
    store_copy.catalog.add_release({
        "release_id": rid, "created_at": utcnow(), "schema_name": evil, "schema_hash": "0", "generator": evil,
        "family": "x", "differentially_private": False, "epsilon": None, "delta": None, "seed": 0, "n_patients": 1,
        "rows_json": "{}", "params_json": "{}", "manifest_hash": "0", "path": "nowhere"})
    use_store(store_copy.root)
    for name, query in (("overview", None), ("review", {"release": rid}), ("compare", {"release": [rid, app_store.copy]})):
        at = page(name, query=query, user=READER)
        no_exception(at)
        markdown = " ".join(texts(at, "markdown") + texts(at, "caption") + texts(at, "info") + texts(at, "warning")
                            + texts(at, "error") + texts(at, "success"))
        outside_code_spans = re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", markdown)  # CommonMark: never parsed inside
        assert "APPROVED" not in outside_code_spans and "evil.example" not in outside_code_spans, name
        assert any(evil in t for t in texts(at, "text")), name


# -- never the real records -------------------------------------------------------------------------------------


def test_every_page_works_with_the_real_data_deleted(app_store: AppStore, use_store) -> None:
    assert not app_store.real_dir.exists()  # the fixture deleted the real and prepared folders
    use_store(app_store.root)
    for name, query in (("overview", None), ("compare", {"release": app_store.evaluated}),
                        ("review", {"release": app_store.copy})):
        at = page(name, query=query)
        no_exception(at)
        assert not [w for w in texts(at, "warning") if "no better than a random guess" not in w], name
        assert not texts(at, "error"), name
        if name == "compare":
            assert charts(at) == 10


# -- empty and broken states ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["overview", "compare", "review"])
def test_no_catalog_says_what_to_run(name: str, tmp_path: Path, use_store) -> None:
    use_store(tmp_path / "nowhere")
    at = page(name)
    no_exception(at)
    (info,) = texts(at, "info")
    assert "No catalog" in info and "synthmed demo" in info
    assert not (tmp_path / "nowhere").exists()  # the app never creates a store


@pytest.mark.parametrize("name", ["overview", "compare", "review"])
def test_empty_catalog_says_what_to_run(name: str, tmp_path: Path, use_store) -> None:
    with Store(tmp_path / "store").catalog.connect():
        pass  # creates the tables
    use_store(tmp_path / "store")
    at = page(name)
    no_exception(at)
    (info,) = texts(at, "info")
    assert "no releases yet" in info and "synthmed release" in info


def test_single_release_cannot_be_compared(store_copy: Store, use_store, app_store: AppStore) -> None:
    with store_copy.catalog.transaction() as con:
        con.execute("DELETE FROM releases WHERE release_id <> ?", [app_store.copy])
    use_store(store_copy.root)
    at = page("compare")
    no_exception(at)
    assert any("single release" in i for i in texts(at, "info"))


def test_not_a_catalog_file(tmp_path: Path, use_store) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "catalog.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    use_store(tmp_path / "store")
    at = page("overview")
    no_exception(at)
    (warning,) = texts(at, "warning")
    assert "catalog" in warning


def test_missing_release_folder_blocks_approval(store_copy: Store, use_store, app_store: AppStore) -> None:
    import shutil

    shutil.rmtree(store_copy.release_dir(app_store.copy))
    use_store(store_copy.root)
    at = page("review", query={"release": app_store.copy})
    no_exception(at)
    assert any("fails verification" in e for e in texts(at, "error"))
    assert any("folder" in t and "missing" in t for t in texts(at, "text"))
    expander = " ".join(texts(at, "warning"))
    assert "manifest" in expander


LOCKER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("name", ["overview", "compare", "review"])
def test_catalog_locked_by_another_process(name: str, store_copy: Store, use_store) -> None:
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(store_copy.catalog.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        use_store(store_copy.root)
        at = page(name)
        no_exception(at)
        (warning,) = texts(at, "warning")
        assert "in use by another synthmed process" in warning
        assert any("Reload this page" in c for c in texts(at, "caption"))
    finally:
        locker.communicate("", timeout=30)
    at = page(name)  # once the other process is done, the page works again
    no_exception(at)
    assert not any("in use" in w for w in texts(at, "warning"))


def test_dp_epsilon_and_empirical_lower_bound_are_shown(store_copy: Store, use_store, app_store: AppStore) -> None:
    import json

    (ev,) = store_copy.catalog.evaluations(app_store.copy)
    bound = {"name": "privacy.epsilon_lower_bound", "family": "privacy", "value": 2.25, "ci": None, "goal": "minimize",
             "range": [0.0, 3.3], "n": 60, "details": [], "skipped": [], "notes": []}
    with store_copy.catalog.transaction() as con:
        con.execute("UPDATE releases SET differentially_private = true, epsilon = 1.0, delta = 1e-5 WHERE release_id = ?",
                    [app_store.independent])
        con.execute("INSERT INTO metric_results (evaluation_id, name, family, value, goal, result_json) VALUES (?, ?, ?, ?, ?, ?)",
                    [ev["evaluation_id"], bound["name"], "privacy", 2.25, "minimize", json.dumps(bound)])
    use_store(store_copy.root)
    at = page("compare", query={"release": app_store.evaluated})
    no_exception(at)
    metrics = [(m.label, m.value) for m in at.metric]
    assert ("DP ε", "1") in metrics and ("DP ε", "not DP") in metrics
    assert ("Empirical ε ≥", "2.250") in metrics
    (card,) = [m for m in at.metric if m.label == "Empirical ε ≥" and m.value == "2.250"]
    assert "the audit cannot show more than 3.30" in card.proto.help  # the design's limit, beside the bound
    eps = frame(at, "empirical ε lower bound").set_index("release_id")
    assert eps.loc[app_store.independent, "DP ε (theoretical)"] == 1.0
    assert eps.loc[app_store.copy, "empirical ε lower bound"] == "privacy.epsilon_lower_bound: 2.250"
    assert eps.loc[app_store.copy, "the audit cannot show more than"] == "3.30"
    overview = page("overview").dataframe[0].value.set_index("release_id")
    assert overview.loc[app_store.independent, "epsilon"] == 1.0
