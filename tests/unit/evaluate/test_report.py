"""The standalone HTML report: well formed, self-contained, escaped, built from aggregates only."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from evaluate.report import bar_chart, heatmap, histogram, render_report
from evaluate.result import EvaluationResult, Interval, MetricResult, Skipped

EVIL = '<script>alert("x")</script>'
VOID = {"meta", "br", "img", "hr", "input", "link"}


class _Checker(HTMLParser):
    """Checks that every element is closed in order and that the page loads nothing from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.external += [v or "" for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def _check(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert not checker.stack and not checker.external
    return checker


def _evaluation() -> EvaluationResult:
    shapes = MetricResult(
        "fidelity.column_shapes", "fidelity", 0.9, "maximize", n=3,
        details=(
            {"table": "claims", "column": "care_type", "metric": "tv_complement", "value": 0.95,
             "frequencies": {"categories": ["outpatient", EVIL, "other"], "real": [0.5, 0.3, 0.2], "synthetic": [0.45, 0.35, 0.2]}},
            {"table": "claims", "column": "visit_date", "metric": "ks_complement", "value": 0.85,
             "bins": {"edges": ["2020-01-01", "2021-01-01", "2022-01-01"], "real": [0.4, 0.6], "synthetic": [0.5, 0.5]}},
            {"table": EVIL, "column": "x", "metric": "ks_complement", "value": 0.9, "bins": {"edges": [0, 1], "real": [1.0], "synthetic": [1.0]}},
        ),
        skipped=(Skipped("direct identifier: never scored", table="patients", column="name"),),
        notes=("a note & more",),
    )
    pairs = MetricResult(
        "fidelity.column_pair_trends", "fidelity", 0.8, "maximize",
        details=(
            {"table": "claims", "column_1": "care_type", "column_2": "total_cost", "metric": "contingency_similarity", "value": 0.8,
             "real_correlation": None, "synthetic_correlation": None, "real_association": 0.4, "contributes": True},
            {"table": "claims", "column_1": "total_cost", "column_2": "patient_share", "metric": "correlation_similarity", "value": 0.97,
             "real_correlation": 0.9, "synthetic_correlation": 0.84, "real_association": None, "contributes": True},
        ),
    )
    detection = MetricResult(
        "fidelity.detection.gbt", "fidelity", 0.7, "maximize", ci=Interval(0.6, 0.8),
        details=({"table": "claims", "value": 0.7, "auc": 0.65, "auc_ci": [0.6, 0.7], "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.7, 1]}},),
    )
    privacy = MetricResult("privacy.dcr.share_closer_to_train", "privacy", 0.52, "minimize", ci=Interval(0.49, 0.55), notes=(EVIL,))
    skipped = MetricResult("utility.tstr", "utility", None, "maximize", skipped=(Skipped("no --target given"),))
    return EvaluationResult((shapes, pairs, detection, privacy, skipped), seed=3, versions={"duckdb": "2.0.0"})


def test_report_is_well_formed_and_complete() -> None:
    page = render_report(_evaluation(), title=f"Release {EVIL}", manifest={"release_id": "r-1", "generator": {"name": "copy", "seed": 3}})
    checker = _check(page)
    assert page.startswith("<!DOCTYPE html>")
    assert checker.tags.get("svg", 0) >= 5  # 3 marginals, 1 heatmap, 1 ROC
    assert "<script" not in page and EVIL not in page and "&lt;script&gt;" in page
    for text in ("overall fidelity", "0.850", "claims", "no --target given", "privacy.dcr.share_closer_to_train",
                 "r-1", "duckdb 2.0.0", "direct identifier: never scored", "a note &amp; more", "[0.600, 0.800]"):
        assert text in page, text
    assert "NaN" not in page


def test_report_of_an_empty_evaluation() -> None:
    page = render_report(EvaluationResult((), seed=0), title="empty")
    _check(page)
    assert "Column shapes were not computed" in page


@pytest.mark.parametrize(
    "svg",
    [
        bar_chart(["a", "b"], [0.5, 0.5], [0.0, 1.0], title="t"),
        histogram([0.0, 1.0, 2.0], [0.2, 0.8], [0.5, 0.5], title="t"),
        heatmap(["a", "b", "c"], {("b", "a"): 0.5, ("c", "a"): 1.0}, title="t"),
    ],
)
def test_svg_pieces_are_well_formed(svg: str) -> None:
    _check(svg)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
