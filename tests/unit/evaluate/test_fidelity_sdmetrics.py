"""Our fidelity metrics give SDMetrics' values (within 1e-6) on the same data, where SDMetrics defines them.

The data mixes every column kind SDMetrics treats differently: integers with missing values (float in
pandas), floats, dates and timestamps with NaT, categories with missing values, booleans, a code column,
an id, and a column that is constant on one side.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from data_schemas.model import Schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.fidelity.columns import category_coverage, column_shapes, missing_value_similarity, range_coverage
from evaluate.fidelity.multitable import children_per_parent, referential_integrity
from evaluate.fidelity.pairs import column_pair_trends, spearman_similarity
from evaluate.fidelity.temporal import sequence_length
from synth.load import connect, frames_to_dataset

sdmetrics = pytest.importorskip("sdmetrics")

TOL = 1e-6
PAIRS = "fidelity.column_pair_trends"
NO_THRESHOLDS = {PAIRS: {"real_correlation_threshold": 0.0, "real_association_threshold": 0.0}}

SCHEMA = Schema.model_validate(
    {
        "name": "mixed",
        "patient": {"table": "people", "column": "pid"},
        "tables": {
            "people": {
                "primary_key": "pid",
                "columns": {
                    "pid": {"type": "id"},
                    "age": {"type": "numerical", "integer": True},
                    "cost": {"type": "numerical"},
                    "share": {"type": "numerical"},
                    "day": {"type": "datetime", "unit": "date"},
                    "seen": {"type": "datetime"},
                    "sex": {"type": "categorical"},
                    "smoker": {"type": "boolean"},
                    "dx": {"type": "code"},
                    "site": {"type": "categorical"},
                },
            },
            "visits": {
                "primary_key": "vid",
                "order_by": "vday",
                "columns": {
                    "vid": {"type": "id"},
                    "pid": {"type": "id", "references": "people.pid"},
                    "vday": {"type": "datetime", "unit": "date"},
                },
            },
        },
    }
)

META = {
    "tables": {
        "people": {
            "columns": {
                "pid": {"sdtype": "id"},
                "age": {"sdtype": "numerical"},
                "cost": {"sdtype": "numerical"},
                "share": {"sdtype": "numerical"},
                "day": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"},
                "seen": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d %H:%M:%S"},
                "sex": {"sdtype": "categorical"},
                "smoker": {"sdtype": "boolean"},
                "dx": {"sdtype": "categorical"},
                "site": {"sdtype": "categorical"},
            },
            "primary_key": "pid",
        }
    }
}


def people(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 90, n).astype(float)
    age[rng.random(n) < 0.1] = np.nan
    cost = np.round(np.exp(rng.normal(8 + shift, 1, n)), 2)
    share = cost * rng.uniform(0.1, 0.5 + shift, n) + rng.normal(0, 50, n)
    share[rng.random(n) < 0.05] = np.nan
    day = pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"))
    day[rng.random(n) < 0.1] = pd.NaT
    seen = pd.Series(pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"))
    sex = pd.Series(np.where(rng.random(n) < 0.5 + shift / 4, "M", "F"), dtype=object)
    sex[rng.random(n) < 0.05] = None
    smoker = pd.Series(np.where(rng.random(n) < 0.2 + 0.3 * (cost > 3000), True, False), dtype=object)
    smoker[rng.random(n) < 0.05] = None
    codes = rng.zipf(1.6, n) % 60
    dx = pd.Series([f"{chr(65 + int(c) % 20)}{int(c):02d}" for c in codes], dtype=object)
    site = pd.Series(["north"] * n if shift else rng.choice(["north", "south"], n), dtype=object)
    return pd.DataFrame(
        {
            "pid": [f"p{seed}_{i}" for i in range(n)],
            "age": age,
            "cost": cost,
            "share": share,
            "day": day.astype("datetime64[ns]"),
            "seen": seen.astype("datetime64[ns]"),
            "sex": sex,
            "smoker": smoker,
            "dx": dx,
            "site": site,
        }
    )


def visits(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 100)
    counts = rng.poisson(1.5 + (seed % 2), len(frame))
    pid = np.repeat(frame["pid"].to_numpy(), counts)
    return pd.DataFrame(
        {
            "vid": [f"v{seed}_{i}" for i in range(len(pid))],
            "pid": pid,
            "vday": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 400, len(pid)), unit="D")).astype("datetime64[ns]"),
        }
    )


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    real = people(2000, 1, 0.0)
    syn = people(1700, 2, 0.3)
    return {"real": real, "synthetic": syn, "real_visits": visits(real, 1), "synthetic_visits": visits(syn, 2)}


def _arrow_ready(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["smoker"] = out["smoker"].astype("boolean")
    out["age"] = out["age"].astype("Int64")
    return out


@pytest.fixture(scope="module")
def loaded(data: dict[str, pd.DataFrame]):
    con = connect()
    real, r1 = frames_to_dataset(
        SCHEMA, {"people": _arrow_ready(data["real"]), "visits": data["real_visits"]}, con=con, namespace="train"
    )
    syn, r2 = frames_to_dataset(
        SCHEMA, {"people": _arrow_ready(data["synthetic"]), "visits": data["synthetic_visits"]}, con=con, namespace="synthetic"
    )
    assert r1.ok and r2.ok, (r1.problems, r2.problems)
    return con, real, syn


def ctx_of(loaded, **params) -> EvalContext:
    con, real, syn = loaded
    return EvalContext(SCHEMA, con, real, syn, None, EvalOptions(params=params))


@pytest.fixture(scope="module")
def quality(data: dict[str, pd.DataFrame]):
    """SDMetrics' QualityReport with its defaults, and with the real-data thresholds off."""
    from sdmetrics.reports import QualityReport

    reports = []
    for thresholds in (True, False):
        report = QualityReport()
        if not thresholds:
            report.real_correlation_threshold = 0
            report.real_association_threshold = 0
        report.generate({"people": data["real"]}, {"people": data["synthetic"]}, META, verbose=False)
        reports.append(report)
    return reports


def _by_column(result) -> dict[str, float]:
    return {d["column"]: d["value"] for d in result.details}


def test_quality_report_column_shapes(loaded, quality) -> None:
    ours = column_shapes(ctx_of(loaded))
    shapes = next(r for r in ours if r.name == "fidelity.column_shapes")
    props = quality[0].get_properties().set_index("Property")["Score"]
    mine = {d["column"]: d for d in shapes.details if d["table"] == "people"}
    # the report saw the people table only; ours also scores visits.vday
    assert np.mean([d["value"] for d in mine.values()]) == pytest.approx(props["Column Shapes"], abs=TOL)
    details = quality[0].get_details("Column Shapes")
    for _, row in details.iterrows():
        assert mine[row["Column"]]["value"] == pytest.approx(row["Score"], abs=TOL), row["Column"]
        assert mine[row["Column"]]["metric"] == {"KSComplement": "ks_complement", "TVComplement": "tv_complement"}[row["Metric"]]
    assert {s.column for s in shapes.skipped if s.table == "people"} == {"pid"}


def test_single_column_metrics(loaded, data) -> None:
    from sdmetrics.single_column import CategoryCoverage, KSComplement, MissingValueSimilarity, RangeCoverage, TVComplement

    real, syn = data["real"], data["synthetic"]
    ctx = ctx_of(loaded)
    ks = _by_column(next(r for r in column_shapes(ctx) if r.name == "fidelity.ks_complement"))
    tv = _by_column(next(r for r in column_shapes(ctx) if r.name == "fidelity.tv_complement"))
    for col in ("age", "cost", "share", "day", "seen"):
        assert ks[col] == pytest.approx(KSComplement.compute(real[col], syn[col]), abs=TOL), col
    for col in ("sex", "smoker", "dx", "site"):
        assert tv[col] == pytest.approx(TVComplement.compute(real[col], syn[col]), abs=TOL), col
    missing = _by_column(missing_value_similarity(ctx)[0])
    for col in ("age", "cost", "share", "day", "seen", "sex", "smoker", "dx", "site"):
        assert missing[col] == pytest.approx(MissingValueSimilarity.compute(real[col], syn[col]), abs=TOL), col
    ranges = _by_column(range_coverage(ctx)[0])
    for col in ("age", "cost", "share", "day", "seen"):
        expected = RangeCoverage.compute(real[col].dropna(), syn[col].dropna())
        assert ranges[col] == pytest.approx(expected, abs=TOL), col
    coverage = _by_column(category_coverage(ctx)[0])
    for col in ("sex", "smoker", "dx", "site"):
        assert coverage[col] == pytest.approx(CategoryCoverage.compute(real[col], syn[col]), abs=TOL), col


def test_quality_report_column_pair_trends(loaded, quality) -> None:
    ours = column_pair_trends(ctx_of(loaded))[0]
    props = quality[0].get_properties().set_index("Property")["Score"]
    assert ours.value == pytest.approx(props["Column Pair Trends"], abs=TOL)
    mine = {(d["column_1"], d["column_2"]): d for d in ours.details}
    details = quality[0].get_details("Column Pair Trends")
    for _, row in details.iterrows():
        assert bool(mine[(row["Column 1"], row["Column 2"])]["contributes"]) == bool(row["Meets Threshold?"] is True)
        if not np.isnan(row["Real Association"]):
            assert mine[(row["Column 1"], row["Column 2"])]["real_association"] == pytest.approx(row["Real Association"], abs=TOL)


def test_every_pair_without_thresholds(loaded, quality) -> None:
    ours = column_pair_trends(ctx_of(loaded, **NO_THRESHOLDS))
    trends = ours[0]
    props = quality[1].get_properties().set_index("Property")["Score"]
    assert trends.value == pytest.approx(props["Column Pair Trends"], abs=TOL)
    mine = {(d["column_1"], d["column_2"]): d for d in trends.details}
    details = quality[1].get_details("Column Pair Trends")
    scored = details[details["Score"].notna()]
    assert len(scored) == len(mine)
    for _, row in scored.iterrows():
        d = mine[(row["Column 1"], row["Column 2"])]
        assert d["value"] == pytest.approx(row["Score"], abs=TOL), (row["Column 1"], row["Column 2"])
        assert d["metric"] == {"CorrelationSimilarity": "correlation_similarity", "ContingencySimilarity": "contingency_similarity"}[row["Metric"]]
        if d["metric"] == "correlation_similarity":
            assert d["real_correlation"] == pytest.approx(row["Real Correlation"], abs=TOL)
            assert d["synthetic_correlation"] == pytest.approx(row["Synthetic Correlation"], abs=TOL)
    # site is constant in the synthetic data: its contingency tables are still scored, as in SDMetrics
    assert ("sex", "site") in mine


def test_pair_metrics_directly(loaded, data) -> None:
    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity

    real, syn = data["real"], data["synthetic"]
    ours = column_pair_trends(ctx_of(loaded, **NO_THRESHOLDS))
    by_name = {r.name: r for r in ours}
    corr = {(d["column_1"], d["column_2"]): d["value"] for d in by_name["fidelity.correlation_similarity.pearson"].details}
    rho = {(d["column_1"], d["column_2"]): d["value"] for d in spearman_similarity(ctx_of(loaded))[0].details}
    cont = {(d["column_1"], d["column_2"]): d["value"] for d in by_name["fidelity.contingency_similarity"].details}
    for a, b in itertools.combinations(["age", "cost", "share", "day", "seen"], 2):
        expected = CorrelationSimilarity.compute(real[[a, b]], syn[[a, b]], coefficient="Pearson")
        assert corr[(a, b)] == pytest.approx(expected, abs=TOL), (a, b)
        expected = CorrelationSimilarity.compute(real[[a, b]], syn[[a, b]], coefficient="Spearman")
        assert rho[(a, b)] == pytest.approx(expected, abs=TOL), (a, b)
    for a, b in itertools.combinations(["sex", "smoker", "dx"], 2):
        expected = ContingencySimilarity.compute(real[[a, b]], syn[[a, b]])
        assert cont[(a, b)] == pytest.approx(expected, abs=TOL), (a, b)
    assert by_name["fidelity.correlation_similarity.pearson"].value == pytest.approx(np.mean(list(corr.values())), abs=1e-12)


def test_large_joint_tables_give_the_same_contingency_scores(loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs counted in separate passes, or too large for a dense table (counted sparsely), give the same scores."""
    from evaluate.fidelity import pairs

    def contingency() -> dict[tuple[str, str], tuple[float, float | None]]:
        r = {x.name: x for x in column_pair_trends(ctx_of(loaded, **NO_THRESHOLDS))}["fidelity.column_pair_trends"]
        return {(d["column_1"], d["column_2"]): (d["value"], d["real_association"])
                for d in r.details if d["metric"] == "contingency_similarity"}

    dense = contingency()
    monkeypatch.setattr(pairs, "GROUP_CELLS", 1)  # one pass per bundle
    grouped = contingency()
    assert grouped.keys() == dense.keys()
    for key, (value, assoc) in dense.items():
        assert grouped[key][0] == pytest.approx(value, abs=1e-12)
        assert (assoc is None and grouped[key][1] is None) or grouped[key][1] == pytest.approx(assoc, abs=1e-12)
    monkeypatch.setattr(pairs, "DENSE_CELLS", 1)
    large = contingency()
    assert dense.keys() == large.keys() and len(dense) >= 3
    for key, (value, assoc) in dense.items():
        assert large[key][0] == pytest.approx(value, abs=1e-9), key
        assert (assoc is None and large[key][1] is None) or large[key][1] == pytest.approx(assoc, abs=1e-9), key


def test_spearman_on_a_sample_above_the_row_bound(loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluate.fidelity import pairs

    def spearman() -> tuple[float, tuple[str, ...]]:
        (r,) = spearman_similarity(ctx_of(loaded))
        assert r.value is not None
        return r.value, r.notes

    exact, _ = spearman()
    monkeypatch.setattr(pairs, "SPEARMAN_MAX_ROWS", 300)
    sampled, notes = spearman()
    assert sampled != exact and abs(sampled - exact) < 0.1
    # the sample is seeded: the same rows again (DuckDB's parallel sums may differ in the last bits, a
    # different sample by far more)
    assert spearman()[0] == pytest.approx(sampled, rel=0, abs=1e-12)
    assert any("seeded sample of 300 rows" in n for n in notes)


def test_multi_table_metrics(loaded, data) -> None:
    from sdmetrics.column_pairs import ReferentialIntegrity
    from sdmetrics.multi_table import CardinalityShapeSimilarity
    from sdmetrics.single_column import SequenceLengthSimilarity

    ctx = ctx_of(loaded)
    meta = {
        "tables": {
            "people": {"columns": {"pid": {"sdtype": "id"}}, "primary_key": "pid"},
            "visits": {"columns": {"vid": {"sdtype": "id"}, "pid": {"sdtype": "id"}}, "primary_key": "vid"},
        },
        "relationships": [
            {"parent_table_name": "people", "parent_primary_key": "pid", "child_table_name": "visits", "child_foreign_key": "pid"}
        ],
    }
    real = {"people": data["real"][["pid"]], "visits": data["real_visits"][["vid", "pid"]]}
    syn = {"people": data["synthetic"][["pid"]], "visits": data["synthetic_visits"][["vid", "pid"]]}
    expected = CardinalityShapeSimilarity.compute(real, syn, meta)
    assert children_per_parent(ctx)[0].value == pytest.approx(expected, abs=TOL)
    integrity = ReferentialIntegrity.compute(
        (data["real"]["pid"], data["real_visits"]["pid"]), (data["synthetic"]["pid"], data["synthetic_visits"]["pid"])
    )
    assert referential_integrity(ctx)[0].value == pytest.approx(integrity, abs=TOL)
    lengths = SequenceLengthSimilarity.compute(data["real_visits"]["pid"], data["synthetic_visits"]["pid"])
    assert sequence_length(ctx)[0].value == pytest.approx(lengths, abs=TOL)
