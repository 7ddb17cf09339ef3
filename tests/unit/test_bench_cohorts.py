"""benchmarks/bench_cohorts.py: the cohort is large enough for mostlyai-qa to judge every event table, and the
table says when qa declined some."""
from __future__ import annotations

from tests.benchmark_module import load_benchmark


def _bench() -> object:
    return load_benchmark("bench_cohorts")


def test_sample_size_reaches_qas_minimum_in_every_event_table() -> None:
    bench = _bench()
    # Synthea's 93 training patients, 90 of them with medications: 93 synthetic patients left qa with no metrics
    n = bench.sample_size(93, {"encounters": 93, "medications": 90})  # type: ignore[attr-defined]
    assert n == 119 and n * 90 / 93 >= bench.QA_MIN_SYNTHETIC * 1.1  # type: ignore[attr-defined]
    assert bench.sample_size(3000, {"claims": 2990}) == 3000  # type: ignore[attr-defined]  # large cohorts as train holds
    assert bench.sample_size(7583, {"inpatient_claims": 1200}) == 7583  # type: ignore[attr-defined]
    assert bench.sample_size(93, {}) == 93  # type: ignore[attr-defined]  # no event table, nothing for qa to judge


def test_qa_cell_says_how_many_tables_were_scored() -> None:
    cell = _bench().qa_cell  # type: ignore[attr-defined]
    assert cell({"accuracy": {"a": 0.8, "b": 0.6}, "mean": 0.7}) == "0.700"
    assert cell({"accuracy": {"a": 0.8}, "mean": 0.8, "not_judged": {"b": "..."}}) == "0.800 (1 of 2 tables)"
    assert cell({"accuracy": {}, "mean": None, "not_judged": {"b": "..."}}) == "not judged"
    assert cell({"error": "exit 1"}) == "failed" and cell({}) == "-"
