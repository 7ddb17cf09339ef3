"""Property tests of the fidelity statistics: agreement with SciPy / plain Python on random data, metric(x, x)
is perfect, values stay in range, row order does not matter, empty input raises EmptyInputError."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_schemas.model import Column, Schema
from evaluate.context import EvalContext, EvalOptions
from evaluate.errors import EmptyInputError
from evaluate.fidelity._common import continuous_profile, discrete_profile
from evaluate.fidelity.columns import column_shapes
from evaluate.fidelity.pairs import bin_edges, column_pair_trends
from synth.load import Dataset, connect, frames_to_dataset

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5).map(float)), max_size=60)
labels = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "é", "x y"])), max_size=60)


@pytest.fixture(scope="module")
def con():
    c = connect()
    yield c
    c.close()


def _register(con, name: str, values: list, kind: pa.DataType) -> str:
    con.register(name, pa.table({"v": pa.array(values, type=kind)}))
    return name


def _present(values: list) -> list:
    return [v for v in values if v is not None]


@SETTINGS
@given(real=numbers, syn=numbers)
def test_ks_matches_the_two_sample_statistic(con, real: list, syn: list) -> None:
    r, s = _register(con, "r", real, pa.float64()), _register(con, "s", syn, pa.float64())
    if not _present(real) or not _present(syn):
        with pytest.raises(EmptyInputError):
            continuous_profile(con, r, s, "v", kind="number")
        return
    prof = continuous_profile(con, r, s, "v", kind="number")
    a, b = np.sort(np.round(_present(real), 14)), np.sort(np.round(_present(syn), 14))
    grid = np.concatenate([a, b])  # the two ECDFs at every observed value, as scipy.stats.ks_2samp does
    expected = np.max(np.abs(np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(b, grid, side="right") / len(b)))
    assert prof.statistic == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= prof.complement <= 1.0
    assert sum(prof.real) == len(_present(real)) and sum(prof.synthetic) == len(_present(syn))


@SETTINGS
@given(real=labels, syn=labels)
def test_tv_matches_definition(con, real: list, syn: list) -> None:
    r, s = _register(con, "r", real, pa.string()), _register(con, "s", syn, pa.string())
    pr, ps = _present(real), _present(syn)
    if not pr or not ps:
        with pytest.raises(EmptyInputError):
            discrete_profile(con, r, s, "v")
        return
    prof = discrete_profile(con, r, s, "v")
    cr, cs = Counter(pr), Counter(ps)
    expected = 0.5 * sum(abs(cr[k] / len(pr) - cs[k] / len(ps)) for k in set(cr) | set(cs))
    assert prof.total_variation == pytest.approx(expected, abs=1e-12)
    assert prof.categories_real == len(cr) and prof.categories_covered == len(set(cr) & set(cs))
    assert 0.0 <= prof.complement <= 1.0


@SETTINGS
@given(values=numbers, seed=st.integers(0, 2**16))
def test_identical_and_shuffled_columns_are_perfect(con, values: list, seed: int) -> None:
    shuffled = list(values)
    np.random.default_rng(seed).shuffle(shuffled)
    r, s = _register(con, "r", values, pa.float64()), _register(con, "s", shuffled, pa.float64())
    if not _present(values):
        with pytest.raises(EmptyInputError):
            continuous_profile(con, r, s, "v", kind="number")
        return
    assert continuous_profile(con, r, s, "v", kind="number").complement == 1.0
    text = [None if v is None else f"{v:.3g}" for v in values]
    text_shuffled = [None if v is None else f"{v:.3g}" for v in shuffled]
    r, s = _register(con, "r", text, pa.string()), _register(con, "s", text_shuffled, pa.string())
    assert discrete_profile(con, r, s, "v").complement == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(values=st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=40))
def test_bin_edges_are_numpys_from_min_and_max(values: list) -> None:
    """SDMetrics bins with numpy.histogram_bin_edges(data); ours are computed from the min and max alone."""
    try:
        expected = np.histogram_bin_edges(np.array(values))
    except ValueError:  # numpy cannot cut a single huge value into 10 bins; the pair is skipped then
        with pytest.raises(ValueError):
            bin_edges(min(values), max(values))
        return
    assert np.array_equal(bin_edges(min(values), max(values)), expected)


SCHEMA = Schema.model_validate(
    {
        "name": "tiny",
        "patient": {"table": "t", "column": "k"},
        "tables": {
            "t": {
                "primary_key": "k",
                "columns": {
                    "k": {"type": "id"},
                    "x": {"type": "numerical"},
                    "n": {"type": "numerical", "integer": True},
                    "c": {"type": "categorical"},
                    "b": {"type": "boolean"},
                    "d": {"type": "datetime", "unit": "date"},
                },
            }
        },
    }
)

rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(-100, 100, allow_nan=False)),
        st.one_of(st.none(), st.integers(0, 9)),
        st.one_of(st.none(), st.sampled_from(["u", "v", "w"])),
        st.one_of(st.none(), st.booleans()),
        st.one_of(st.none(), st.integers(0, 60)),
    ),
    min_size=3,
    max_size=40,
)


def _frame(records: list[tuple]) -> pa.Table:
    import datetime as dt

    return pa.table(
        {
            "k": pa.array([f"k{i}" for i in range(len(records))]),
            "x": pa.array([r[0] for r in records], pa.float64()),
            "n": pa.array([r[1] for r in records], pa.int64()),
            "c": pa.array([r[2] for r in records], pa.string()),
            "b": pa.array([r[3] for r in records], pa.bool_()),
            "d": pa.array([None if r[4] is None else dt.date(2020, 1, 1) + dt.timedelta(days=r[4]) for r in records], pa.date32()),
        }
    )


def _dataset(con, namespace: str, frame: pa.Table) -> Dataset:
    """A Dataset over an in-memory table (the frames are typed already; no validation pass needed)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
    con.register("__frame", frame)
    con.execute(f"CREATE OR REPLACE TABLE {namespace}.t AS SELECT * FROM __frame")
    con.unregister("__frame")
    return Dataset(SCHEMA, con, namespace, "<memory>")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=rows, seed=st.integers(0, 2**16))
def test_metrics_of_identical_tables_are_perfect_and_order_free(con, records: list[tuple], seed: int) -> None:
    shuffled = list(records)
    np.random.default_rng(seed).shuffle(shuffled)
    real, syn = _dataset(con, "train", _frame(records)), _dataset(con, "synthetic", _frame(shuffled))
    ctx = EvalContext(SCHEMA, con, real, syn, None, EvalOptions(params={"fidelity.column_pair_trends": {"real_association_threshold": 0}}))
    for result in [*column_shapes(ctx), *column_pair_trends(ctx)]:
        assert result.value is None or result.value == pytest.approx(1.0, abs=1e-9), result.name
        assert all(d["value"] == pytest.approx(1.0, abs=1e-9) for d in result.details), result.name
        assert not any(isinstance(d.get("value"), float) and math.isnan(d["value"]) for d in result.details)
        # every column the schema declares is either scored or listed as skipped with a reason
        if result.name == "fidelity.column_shapes":
            named = {d["column"] for d in result.details} | {s.column for s in result.skipped}
            assert named == set(SCHEMA.tables["t"].columns)
            assert all(s.reason for s in result.skipped)


def test_scored_columns_follow_schema_roles_not_dtypes() -> None:
    """A numerical column stored as text in the schema's eyes is never guessed: roles come from the schema."""
    schema = Schema.model_validate(
        {
            "name": "roles",
            "patient": {"table": "t", "column": "k"},
            "tables": {"t": {"columns": {"k": {"type": "id"}, "zip": {"type": "categorical"}, "note": {"type": "text"}}}},
        }
    )
    con = connect()
    frame = pa.table({"k": ["1", "2", "3"], "zip": ["10", "20", "30"], "note": ["a", "b", "c"]})
    real, _ = frames_to_dataset(schema, {"t": frame}, con=con, namespace="train")
    syn, _ = frames_to_dataset(schema, {"t": frame}, con=con, namespace="synthetic")
    shapes = column_shapes(EvalContext(schema, con, real, syn, None))[0]
    assert [(d["column"], d["metric"]) for d in shapes.details] == [("zip", "tv_complement")]
    reasons = {s.column: s.reason for s in shapes.skipped}
    assert reasons["k"].startswith("id column") and reasons["note"].startswith("free text")


def test_column_helpers_reject_bad_input() -> None:
    assert Column(name="x", type="numerical").type == "numerical"


def test_robust_ranges_bound_the_values_one_statement_holds(monkeypatch) -> None:
    """DuckDB's quantile keeps every value of its column and does not spill: at 100M claims one statement over all
    of a table's columns ran out of memory. A statement now takes at most ``QUANTILE_VALUES`` values' quantiles;
    the ranges are the same as in one statement."""
    import duckdb

    from evaluate.fidelity import _common

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT i::DOUBLE AS a, (i * 7 % 101)::BIGINT AS b, "
                "CASE WHEN i % 3 = 0 THEN NULL ELSE i / 10.0 END AS c FROM range(1000) r(i)")
    cols = [Column(name=n, type="numerical") for n in ("a", "b", "c")]
    whole = _common.robust_ranges(con, "t", cols)

    class Counting:
        def __init__(self) -> None:
            self.quantile_statements: list[int] = []

        def execute(self, sql: str):
            if "quantile_cont" in sql:
                self.quantile_statements.append(sql.count("quantile_cont"))
            return con.execute(sql)

    counting = Counting()
    monkeypatch.setattr(_common, "QUANTILE_VALUES", 2000)  # two quantiles of a 1,000-row column per statement
    assert _common.robust_ranges(counting, "t", cols) == whole
    assert counting.quantile_statements == [2, 2, 2]
    counting.quantile_statements.clear()
    monkeypatch.setattr(_common, "QUANTILE_VALUES", 10)  # each quantile alone, even past the budget
    assert _common.robust_ranges(counting, "t", cols) == whole
    assert counting.quantile_statements == [1] * 6
    assert whole["a"] == (pytest.approx(9.99), pytest.approx(989.01)) and whole["c"] is not None
