"""The sampler's rule check (``base._violations``, all rules in one pass) finds exactly the rows that each rule's own
``violations_sql`` finds: row-local rules, ``parent.`` rules, ``patient.`` rules one and two keys away, NULL passing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_schemas.io import load_schema
from data_schemas.rules import quote, violations_sql
from synth.generators.base import _violations
from synth.load import connect

KR = load_schema("kr_claims")


@pytest.fixture(scope="module")
def broken_frames() -> dict[str, pd.DataFrame]:
    """80 demo patients with columns shuffled within each table and some cells emptied, so every rule breaks somewhere."""
    from synth.demo_population import simulate

    rng = np.random.default_rng(3)
    frames = {name: table.to_pandas() for name, table in simulate(80, seed=5).items()}
    for name, frame in frames.items():
        keys = {c.name for c in KR.tables[name].columns.values() if c.type == "id"}
        for col in frame.columns:
            if col in keys:
                continue
            values = frame[col].to_numpy(copy=True)
            mix = rng.random(len(frame)) < 0.3
            values[mix] = rng.permutation(values[mix])
            frame[col] = values
            frame.loc[rng.random(len(frame)) < 0.05, col] = None
    # dates the shuffle cannot put out of order (every birth comes before every visit)
    patients, claims = frames["patients"], frames["claims"]
    patients.loc[0, "eligibility_end"] = patients.loc[0, "eligibility_start"] - pd.Timedelta(days=10)
    patients.loc[1, "death_date"] = pd.Timestamp("1900-01-01")
    claims.loc[:4, "visit_date"] = pd.Timestamp("1900-01-01")
    return frames


def _one_rule_at_a_time(frames: dict[str, pd.DataFrame], table: str) -> dict[str, np.ndarray]:
    con = connect()
    try:
        for name, frame in frames.items():
            con.register(f"__f_{name}", frame.assign(__row=np.arange(len(frame))))
        relations = {name: quote(f"__f_{name}") for name in KR.tables}
        out = {}
        for rule in KR.tables[table].rules:
            rows = con.execute(violations_sql(KR, table, rule, relations, select="__row")).fetchnumpy()["__row"]
            if len(rows):
                out[rule.name] = np.sort(np.asarray(rows, dtype=np.int64))
        return out
    finally:
        con.close()


def test_one_pass_finds_what_each_rule_finds(broken_frames: dict[str, pd.DataFrame]) -> None:
    seen: set[str] = set()
    con = connect()
    try:
        for table in KR.topological_order():
            expected = _one_rule_at_a_time(broken_frames, table)
            for got in (_violations(KR, broken_frames, table), _violations(KR, broken_frames, table, con=con)):
                assert list(got) == list(expected)  # the rules with violations, in the schema's order
                for rule, rows in got.items():
                    assert rows.dtype == np.int64 and np.array_equal(rows, expected[rule]), (table, rule)
            seen |= {f"{table}.{rule}" for rule in expected}
    finally:
        con.close()
    # the frames break every rule of every kind, so the comparison covers each
    assert seen == {f"{t}.{r.name}" for t in KR.tables for r in KR.tables[t].rules}


@pytest.mark.parametrize("table", ["claim_details", "diagnoses", "claims"])
def test_a_few_rows_checked_against_whole_parents_find_what_each_rule_finds(broken_frames: dict[str, pd.DataFrame],
                                                                          table: str) -> None:
    """As the sampler checks redraw candidates: a slice of one table (in another order) against every parent row;
    the check reads only the parent and patient rows the slice reaches, and finds the same rows."""
    rows = broken_frames[table].iloc[::-3].reset_index(drop=True)
    frames = {**broken_frames, table: rows}
    expected = _one_rule_at_a_time(frames, table)
    got = _violations(KR, frames, table)
    assert expected and list(got) == list(expected)
    assert all(np.array_equal(got[rule], expected[rule]) for rule in expected)


def test_a_table_without_violations_or_rules_gives_nothing(broken_frames: dict[str, pd.DataFrame]) -> None:
    from synth.demo_population import simulate

    clean = {name: table.to_pandas() for name, table in simulate(40, seed=5).items()}
    assert _one_rule_at_a_time(clean, "claims") == {} and _violations(KR, clean, "claims") == {}
    assert _violations(KR, broken_frames, "prescriptions") == {}  # no rules
