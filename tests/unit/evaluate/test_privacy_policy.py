"""The risk policy: the default file loads, malformed files name every problem, verdicts and risk levels."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluate.policy import PolicyError, apply_policy, load_policy, parse_policy
from evaluate.result import EvaluationResult, Interval, MetricResult, skipped_result


def _result(name: str, value: float | None, *, ci: tuple[float, float] | None = None, baseline: float | None = None,
            attack: float | None = None) -> MetricResult:
    details = () if baseline is None else ({"kind": "rates", "attack_rate": attack, "baseline_rate": baseline},)
    return MetricResult(name=name, family="privacy", value=value, goal="minimize",
                        ci=None if ci is None else Interval(*ci), details=details)


def test_default_policy_loads_and_covers_every_privacy_result() -> None:
    policy = load_policy()
    assert policy.name == "synthmed-default" and policy.rules
    patterns = [r.metric for r in policy.rules]
    assert "privacy.mia.*.auc" in patterns and "privacy.exact_copies" in patterns


def test_verdicts_thresholds_and_risk_levels() -> None:
    policy = load_policy()
    low = EvaluationResult((
        _result("privacy.mia.distance.auc", 0.52, ci=(0.49, 0.55)),
        _result("privacy.exact_copies", 0.0, ci=(0.0, 0.01), baseline=0.0, attack=0.0),
        skipped_result("privacy.mia.shadow.auc", "privacy", "minimize", "no generator"),
    ), seed=0)
    verdict = apply_policy(low, policy)
    assert verdict.risk_level == "low"
    status = {v.metric: v.status for v in verdict.verdicts}
    assert status["privacy.mia.distance.auc"] == "pass" and status["privacy.mia.shadow.auc"] == "skipped"
    medium = EvaluationResult((_result("privacy.mia.domias.auc", 0.65), *low.results[1:]), seed=0)
    v = apply_policy(medium, policy)
    assert v.risk_level == "medium"
    warn = next(x for x in v.verdicts if x.metric == "privacy.mia.domias.auc")
    assert warn.status == "warn" and warn.threshold == 0.6 and warn.comparison == "above"
    assert any("privacy.mia.domias.auc" in r and "warn threshold 0.6" in r for r in v.reasons)
    high = EvaluationResult((_result("privacy.exact_copies", 0.4, baseline=0.0, attack=0.4),), seed=0)
    v = apply_policy(high, policy)
    assert v.risk_level == "high"
    data = json.loads(json.dumps(v.to_dict()))
    assert data["risk_level"] == "high" and data["counts"]["fail"] == 1


def test_required_result_missing_warns() -> None:
    verdict = apply_policy(EvaluationResult((), seed=0), load_policy())
    assert verdict.risk_level == "medium"
    assert any("privacy.exact_copies" in r and "requires" in r for r in verdict.reasons)


def test_below_thresholds_and_statistics() -> None:
    policy = parse_policy("""
name: custom
rules:
  - {metric: "fidelity.*", statistic: ci_high, warn_below: 0.8, fail_below: 0.5}
  - {metric: privacy.nndr.median, statistic: deficit_from_baseline, warn_above: 0.05, fail_above: 0.15}
""")
    ev = EvaluationResult((
        _result("fidelity.shape", 0.9, ci=(0.4, 0.7)),
        _result("privacy.nndr.median", 0.5, baseline=0.9, attack=0.5),
    ), seed=0)
    got = {v.metric: v for v in apply_policy(ev, policy).verdicts}
    assert got["fidelity.shape"].status == "warn" and got["fidelity.shape"].observed == 0.7
    assert got["privacy.nndr.median"].status == "fail" and got["privacy.nndr.median"].observed == pytest.approx(0.4)


def test_malformed_policy_names_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("""
name: broken
colour: red
rules:
  - {metric: privacy.exact_copies, statistic: median, warn_above: 0.1}
  - {metric: privacy.x, warn_above: 0.5, fail_above: 0.2}
  - {statistic: value, warn_below: 1, warn_above: 2}
""")
    with pytest.raises(PolicyError) as err:
        load_policy(bad)
    text = str(err.value)
    for part in ("colour", "rules[0].statistic", "median", "rules[1]: warn_above 0.5 is above fail_above 0.2",
                 "rules[2].metric", "rules[2]: give warn_above/fail_above or warn_below/fail_below"):
        assert part in text
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "absent.yaml")


def test_shadow_attack_is_required_only_when_a_release_is_evaluated() -> None:
    policy = load_policy()
    skipped = skipped_result("privacy.mia.shadow.auc", "privacy", "minimize", "could not run: no generator to refit")
    base = (_result("privacy.exact_copies", 0.0, baseline=0.0, attack=0.0), skipped)
    folders = apply_policy(EvaluationResult(base, seed=0, summary={"mode": "folders"}), policy)
    shadow = next(v for v in folders.verdicts if v.metric == "privacy.mia.shadow.auc")
    assert folders.risk_level == "low" and shadow.status == "skipped"
    assert "could not run on folders" in shadow.reason
    release = apply_policy(EvaluationResult(base, seed=0, summary={"mode": "release"}), policy)
    assert release.risk_level == "medium"
    assert any("privacy.mia.shadow.auc" in r and "requires this result when a release is evaluated" in r for r in release.reasons)
    with pytest.raises(PolicyError, match="must be true, false or release"):
        parse_policy("rules:\n  - {metric: x, warn_above: 1, required: sometimes}\n")


def test_near_copy_share_and_epsilon_bound_have_rules() -> None:
    policy = load_policy()
    ev = EvaluationResult((
        _result("privacy.exact_copies", 0.0, baseline=0.0, attack=0.0),
        _result("privacy.dcr.near_copy_share", 0.03, ci=(0.02, 0.04)),
        _result("privacy.epsilon_lower_bound", 3.5, ci=(3.5, 3.5)),
    ), seed=0)
    got = {v.metric: v for v in apply_policy(ev, policy).verdicts}
    assert got["privacy.dcr.near_copy_share"].status == "fail"
    assert got["privacy.epsilon_lower_bound"].status == "fail"


def test_report_card_of_the_dcr_share_carries_the_policy_verdict() -> None:
    # the demo's tvae release read "DCR closer to train 0.830" on its card and passed: card and verdict now agree
    from evaluate.report import render_report

    share = _result("privacy.dcr.share_closer_to_train", 0.83, ci=(0.79, 0.87))
    ev = EvaluationResult((share, _result("privacy.exact_copies", 0.0, baseline=0.0, attack=0.0)), seed=0)
    verdict = apply_policy(ev, load_policy())
    assert next(v for v in verdict.verdicts if v.metric == share.name).status == "fail"
    html = render_report(ev, title="r", policy=verdict.to_dict())
    assert "DCR: share closer to train" in html and "policy: fail (ci_low 0.790, above 0.580)" in html


def test_a_skipped_audit_is_listed_as_not_checked_beside_a_low_verdict() -> None:
    # a verdict must not read as covering an audit that did not run: the reasons say what was not checked and why
    from evaluate.privacy.audit import HOW_TO_RUN

    policy = load_policy()
    audit = skipped_result("privacy.epsilon_lower_bound", "privacy", "minimize", f"the epsilon audit did not run: {HOW_TO_RUN}")
    ev = EvaluationResult((_result("privacy.exact_copies", 0.0, baseline=0.0, attack=0.0), audit), seed=0)
    verdict = apply_policy(ev, policy)
    assert verdict.risk_level == "low"
    assert verdict.reasons[0].startswith("all ")
    line = next(r for r in verdict.reasons if "privacy.epsilon_lower_bound" in r)
    assert line.startswith("not checked: privacy.epsilon_lower_bound") and "--audit canaries" in line
    # results the evaluation did not ask for share one line, after the findings
    assert sum(r.endswith("(not in the evaluation)") for r in verdict.reasons) == 1
    assert "canary audit" in next(r.why for r in policy.rules if r.metric == "privacy.epsilon_lower_bound")


def test_an_excess_over_a_baseline_of_counted_patients_carries_its_interval() -> None:
    """A warning on a share of synthetic vs holdout patients says how sure it is: the 95% interval of the difference
    by Newcombe's hybrid score method (his 1998 worked example, 56/70 vs 48/80: 0.0524 to 0.3339), so a reviewer of
    a small cohort sees when the baseline alone could explain the finding. Only the verdict's words change."""
    rates = {"kind": "rates", "attack_rate": 56 / 70, "baseline_rate": 48 / 80, "n_synthetic": 70, "n_holdout": 80}
    result = MetricResult(name="privacy.k_anonymity.small_class_share", family="privacy", value=56 / 70,
                          goal="minimize", details=(rates,))
    verdict = apply_policy(EvaluationResult((result,), seed=0), load_policy())
    reason = next(r for r in verdict.reasons if r.startswith("privacy.k_anonymity.small_class_share"))
    assert "is above the fail threshold 0.15" in reason
    assert "0.8 of 70 synthetic against 0.6 of 80 holdout patients, 95% interval of the difference 0.05 to 0.33" in reason
    small = {**rates, "attack_rate": 0.622, "baseline_rate": 10 / 19, "n_synthetic": 119, "n_holdout": 19}
    verdict = apply_policy(EvaluationResult((MetricResult(name=result.name, family="privacy", value=0.622,
                                                          goal="minimize", details=(small,)),), seed=0), load_policy())
    reason = next(r for r in verdict.reasons if r.startswith(result.name))
    assert "warn threshold" in reason and "interval of the difference -0.1" in reason  # crosses zero: could be noise
    plain = apply_policy(EvaluationResult((_result("privacy.exact_copies", 0.4, baseline=0.0, attack=0.4),), seed=0),
                         load_policy())
    assert not any("interval of the difference" in r for r in plain.reasons)  # no counts, no interval
