"""The risk policy: YAML thresholds that turn evaluation results into pass / warn / fail and one risk level.

A policy is a list of rules. A rule names results (glob patterns over result names), the statistic
it reads (``value``, ``ci_low``, ``ci_high``, ``excess_over_baseline`` = attack_rate - baseline_rate and
``deficit_from_baseline`` = baseline_rate - attack_rate of the result's ``rates`` details row) and its
thresholds (``warn_above`` / ``fail_above``, or ``warn_below`` / ``fail_below``). Every result matched
gets the worst verdict of its rules, with the threshold crossed; a result that is missing or skipped
is reported as ``skipped`` and changes nothing, unless its rule is ``required`` (then it warns).
``required: release`` requires a result only when a release is evaluated (``synthmed evaluate
RELEASE_ID``, evaluation summary ``mode: release``): the shadow-model attack refits the release's
generator, which folders from another tool do not have, so there it is reported as skipped with
the reason that it could not run.
The overall risk level is ``high`` when any result fails, ``medium`` when any warns, ``low`` otherwise.
The reasons list the thresholds crossed, then what was not checked (one line per rule whose results
were skipped, with why), so a verdict never reads as covering an attack or an audit that did not run.

The default policy ships as ``evaluate/default_policy.yaml`` (documented in the README).
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from evaluate.errors import EvaluationError
from evaluate.result import EvaluationResult, MetricResult

Status = Literal["pass", "warn", "fail", "skipped"]
RiskLevel = Literal["low", "medium", "high"]
STATISTICS = ("value", "ci_low", "ci_high", "excess_over_baseline", "deficit_from_baseline")
_RULE_KEYS = {"metric", "statistic", "warn_above", "fail_above", "warn_below", "fail_below", "required", "why"}
_ORDER = {"pass": 0, "skipped": 0, "warn": 1, "fail": 2}


class PolicyError(EvaluationError, ValueError):
    """A policy file that cannot be read or is malformed; the message lists every problem."""


@dataclass(frozen=True)
class Rule:
    """Thresholds for the results whose names match ``metric`` (a glob)."""

    metric: str
    statistic: str = "value"
    warn_above: float | None = None
    fail_above: float | None = None
    warn_below: float | None = None
    fail_below: float | None = None
    required: bool | Literal["release"] = False
    why: str = ""

    def required_for(self, release: bool) -> bool:
        """Whether a missing or skipped result warns: always, or only when a release is evaluated."""
        return self.required is True or (self.required == "release" and release)


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    rules: tuple[Rule, ...]
    source: str = "<memory>"


@dataclass(frozen=True)
class MetricVerdict:
    """One result's verdict: the statistic read, the threshold crossed (if any) and why it matters."""

    metric: str
    status: Status
    statistic: str
    observed: float | None
    threshold: float | None
    comparison: Literal["above", "below"] | None
    rule: str
    reason: str


@dataclass(frozen=True)
class PolicyVerdict:
    """Per-result verdicts, the overall risk level and the reasons for it."""

    policy: str
    version: int
    risk_level: RiskLevel
    verdicts: tuple[MetricVerdict, ...]
    reasons: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "warn": 0, "fail": 0, "skipped": 0}
        for v in self.verdicts:
            out[v.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "policy": self.policy,
            "version": self.version,
            "risk_level": self.risk_level,
            "counts": self.counts(),
            "reasons": list(self.reasons),
            "verdicts": [asdict(v) for v in self.verdicts],
        }


# -- loading -----------------------------------------------------------------------------------------


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in the YAML file at ``path``, or the default policy when None."""
    if path is None:
        text = resources.files("evaluate").joinpath("default_policy.yaml").read_text(encoding="utf-8")
        return parse_policy(text, source="default_policy.yaml")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {p}: {exc.strerror or exc}") from None
    return parse_policy(text, source=str(p))


def parse_policy(text: str, *, source: str = "<string>") -> Policy:
    """Parse and check a policy; raise PolicyError naming every problem at once."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    problems: list[str] = []
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a mapping with 'name', 'version' and 'rules'")
    unknown = sorted(set(data) - {"name", "version", "rules"})
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: name, version, rules)")
    name = data.get("name", Path(source).stem)
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        problems.append(f"version must be an integer; got {version!r}")
        version = 1
    raw_rules = data.get("rules")
    rules: list[Rule] = []
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.append("rules must be a non-empty list")
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping; got {raw!r}")
            continue
        extra = sorted(set(raw) - _RULE_KEYS)
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(extra)} (allowed: {', '.join(sorted(_RULE_KEYS))})")
        metric = raw.get("metric")
        if not isinstance(metric, str) or not metric:
            problems.append(f"{where}.metric: must be a result name or glob; got {metric!r}")
            metric = ""
        stat = raw.get("statistic", "value")
        if stat not in STATISTICS:
            problems.append(f"{where}.statistic: must be one of {', '.join(STATISTICS)}; got {stat!r}")
        values: dict[str, float | None] = {}
        for key in ("warn_above", "fail_above", "warn_below", "fail_below"):
            v = raw.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(float(v))):
                problems.append(f"{where}.{key}: must be a number; got {v!r}")
                v = None
            values[key] = None if v is None else float(v)
        above = values["warn_above"] is not None or values["fail_above"] is not None
        below = values["warn_below"] is not None or values["fail_below"] is not None
        if above == below:
            problems.append(f"{where}: give warn_above/fail_above or warn_below/fail_below (exactly one direction)")
        if above and None not in (values["warn_above"], values["fail_above"]) and values["warn_above"] > values["fail_above"]:  # type: ignore[operator]
            problems.append(f"{where}: warn_above {values['warn_above']} is above fail_above {values['fail_above']}")
        if below and None not in (values["warn_below"], values["fail_below"]) and values["warn_below"] < values["fail_below"]:  # type: ignore[operator]
            problems.append(f"{where}: warn_below {values['warn_below']} is below fail_below {values['fail_below']}")
        required = raw.get("required", False)
        if not isinstance(required, bool) and required != "release":
            problems.append(f"{where}.required: must be true, false or release; got {required!r}")
            required = False
        rules.append(Rule(metric, str(stat), values["warn_above"], values["fail_above"], values["warn_below"],
                          values["fail_below"], required, str(raw.get("why", ""))))
    if problems:
        raise PolicyError(f"{source}: {len(problems)} problem(s) in the policy:\n  - " + "\n  - ".join(problems))
    return Policy(str(name), version, tuple(rules), source)


# -- applying --------------------------------------------------------------------------------------------


def statistic(result: MetricResult, name: str) -> tuple[float | None, str | None]:
    """The statistic ``name`` of a result, or None and why it is unavailable."""
    if result.value is None:
        reason = result.skipped[0].reason if result.skipped else "no value"
        return None, f"skipped: {reason}"
    if name == "value":
        return float(result.value), None
    if name in ("ci_low", "ci_high"):
        if result.ci is None:
            return None, "the result has no confidence interval"
        return float(result.ci.low if name == "ci_low" else result.ci.high), None
    rates = next((d for d in result.details if d.get("kind") == "rates"), None)
    if rates is None or rates.get("baseline_rate") is None:
        return None, "the result has no baseline rate (a holdout is needed)"
    attack = rates.get("attack_rate")
    attack = float(result.value) if attack is None else float(attack)
    base = float(rates["baseline_rate"])
    return (attack - base if name == "excess_over_baseline" else base - attack), None


def _uncertainty(result: MetricResult, name: str) -> str:
    """How sure an excess over a baseline is, where both are shares of counted patients: the 95% interval of the
    difference (Newcombe's hybrid score method over two Wilson intervals). On a small cohort a reviewer sees that
    the finding may be the baseline's noise (Synthea: 19 holdout patients, baseline share 0.53 +- 0.2)."""
    if name not in ("excess_over_baseline", "deficit_from_baseline"):
        return ""
    rates = next((d for d in result.details if d.get("kind") == "rates"), None)
    try:
        p1, n1 = float(rates["attack_rate"]), int(rates["n_synthetic"])  # type: ignore[index]
        p2, n2 = float(rates["baseline_rate"]), int(rates["n_holdout"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return ""
    if not (0.0 <= p1 <= 1.0 and 0.0 <= p2 <= 1.0) or n1 < 1 or n2 < 1:
        return ""
    from evaluate.privacy.stats import wilson_interval

    a, b = wilson_interval(p1 * n1, n1), wilson_interval(p2 * n2, n2)
    d = p1 - p2
    lo = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    hi = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    if name == "deficit_from_baseline":
        d, lo, hi = -d, -hi, -lo
    return (f"; {p1:.3g} of {n1} synthetic against {p2:.3g} of {n2} holdout patients, "
            f"95% interval of the difference {lo:.2f} to {hi:.2f}")


def _required_note(rule: Rule, release: bool) -> str:
    if rule.required_for(release):
        return "; the policy requires this result" + (" when a release is evaluated" if rule.required == "release" else "")
    if rule.required == "release":
        return "; it could not run on folders (the policy requires it when a release is evaluated)"
    return ""


def _judge(rule: Rule, result: MetricResult, release: bool = False) -> MetricVerdict:
    observed, missing = statistic(result, rule.statistic)
    if observed is None:
        status: Status = "warn" if rule.required_for(release) else "skipped"
        reason = f"{result.name}: {missing}" + _required_note(rule, release)
        return MetricVerdict(result.name, status, rule.statistic, None, None, None, rule.metric, reason)
    checks: list[tuple[Status, float | None, Literal["above", "below"]]] = [
        ("fail", rule.fail_above, "above"), ("fail", rule.fail_below, "below"),
        ("warn", rule.warn_above, "above"), ("warn", rule.warn_below, "below"),
    ]
    for status, threshold, side in checks:
        if threshold is None:
            continue
        if (side == "above" and observed > threshold) or (side == "below" and observed < threshold):
            reason = (f"{result.name}: {rule.statistic} {observed:.4g} is {side} the {status} threshold {threshold:g}"
                      + (f" ({rule.why})" if rule.why else "") + _uncertainty(result, rule.statistic))
            return MetricVerdict(result.name, status, rule.statistic, observed, threshold, side, rule.metric, reason)
    return MetricVerdict(result.name, "pass", rule.statistic, observed, None, None, rule.metric,
                         f"{result.name}: {rule.statistic} {observed:.4g} within thresholds")


def apply_policy(evaluation: EvaluationResult, policy: Policy, *, release: bool | None = None) -> PolicyVerdict:
    """Verdicts of every result a rule matches, and the overall risk level with its reasons.

    ``release`` says whether a release (not folders) was evaluated, for ``required: release`` rules;
    by default it is read from the evaluation's summary (``mode: release``).
    """
    if release is None:
        release = evaluation.summary.get("mode") == "release"
    verdicts: dict[str, MetricVerdict] = {}
    for rule in policy.rules:
        matched = [r for r in evaluation.results if fnmatch.fnmatchcase(r.name, rule.metric)]
        if not matched:
            status: Status = "warn" if rule.required_for(release) else "skipped"
            v = MetricVerdict(rule.metric, status, rule.statistic, None, None, None, rule.metric,
                              f"{rule.metric}: not in the evaluation" + _required_note(rule, release))
            verdicts.setdefault(rule.metric, v)
            continue
        for result in matched:
            v = _judge(rule, result, release)
            old = verdicts.get(result.name)
            skipped_again = old is not None and old.status == v.status == "skipped" and bool(rule.required)
            if old is None or _ORDER[v.status] > _ORDER[old.status] or (old.status == "skipped" and v.status == "pass") \
                    or skipped_again:  # a rule that requires the result says more about why it is missing
                verdicts[result.name] = v
    ordered = tuple(verdicts.values())
    worst = max((_ORDER[v.status] for v in ordered), default=0)
    level: RiskLevel = "high" if worst == 2 else "medium" if worst == 1 else "low"
    reasons = tuple(v.reason for v in ordered if v.status == "fail") + tuple(v.reason for v in ordered if v.status == "warn")
    if not reasons:
        checked = sum(v.status == "pass" for v in ordered)
        reasons = (f"all {checked} checked result(s) are within the thresholds of policy {policy.name}",)
    return PolicyVerdict(policy.name, policy.version, level, ordered, reasons + _not_checked(ordered))


def _not_checked(verdicts: tuple[MetricVerdict, ...]) -> tuple[str, ...]:
    """What the verdict did not check (the epsilon audit that was not run, the shadow-model attack on folders,
    results not in the evaluation): one reason per distinct cause, naming its results, so that a reviewer
    sees the gaps beside the findings."""
    groups: dict[str, list[str]] = {}
    for v in verdicts:
        if v.status == "skipped":
            why = v.reason[len(v.metric) + 2:] if v.reason.startswith(f"{v.metric}: ") else v.reason
            groups.setdefault(why, []).append(v.metric)
    return tuple(f"not checked: {', '.join(names)} ({why})" for why, names in groups.items())
