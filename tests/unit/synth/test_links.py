"""Secondary keys (synth.generators.links): same patient, the visit an event falls in, training null rates."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_schemas.io import parse_schema
from synth.generators.links import fit_links

SCHEMA = parse_schema(
    """
name: mini
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, nullable: false}
      sex: {type: categorical, values: [M, F]}
  visits:
    primary_key: vid
    order_by: day
    columns:
      pid: {type: id, references: people.pid, nullable: false}
      vid: {type: id, nullable: false}
      day: {type: datetime, unit: date, nullable: false}
      previous: {type: id, references: visits.vid}
      payer: {type: id, references: payers.id}
  events:
    order_by: day
    columns:
      pid: {type: id, references: people.pid, nullable: false}
      day: {type: datetime, unit: date, nullable: false}
      vid: {type: id, references: visits.vid, nullable: false}
      note: {type: id, references: visits.vid}
      staff: {type: id}
  payers:
    reference: true
    primary_key: id
    columns:
      id: {type: id, nullable: false}
      name: {type: text}
"""
)


def _frames(people: list[int], visits: list[tuple[int, int, str]], events: list[tuple[int, str]]) -> dict[str, pd.DataFrame]:
    v = pd.DataFrame(visits, columns=["pid", "vid", "day"]).assign(day=lambda f: pd.to_datetime(f["day"]))
    e = pd.DataFrame(events, columns=["pid", "day"]).assign(day=lambda f: pd.to_datetime(f["day"]))
    return {
        "people": pd.DataFrame({"pid": people, "sex": ["M"] * len(people)}),
        "visits": v.assign(previous=np.nan, payer=np.nan),
        "events": e.assign(vid=np.nan, note=np.nan, staff=np.arange(len(e), dtype="float64")),
        "payers": pd.DataFrame(columns=["id", "name"]),
    }


def _train() -> dict[str, pd.DataFrame]:
    frames = _frames(
        [0, 1],
        [(0, 0, "2024-01-01"), (0, 1, "2024-02-01"), (1, 2, "2024-03-01")],
        [(0, "2024-01-01"), (0, "2024-02-01"), (1, "2024-03-01"), (1, "2024-03-01")],
    )
    frames["visits"]["previous"] = [np.nan, 0.0, np.nan]
    frames["visits"]["payer"] = [0.0, 1.0, np.nan]
    frames["events"]["vid"] = [0.0, 1.0, 2.0, 2.0]
    frames["events"]["note"] = [0.0, np.nan, 2.0, 2.0]  # a quarter null
    frames["events"]["staff"] = [np.nan, np.nan, 1.0, np.nan]  # free id, three quarters null
    frames["payers"] = pd.DataFrame({"id": [0, 1], "name": ["a", "b"]})
    return frames


def _apply(frames: dict[str, pd.DataFrame], seed: int = 0) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    model = fit_links(SCHEMA, _train())
    dropped: dict[str, int] = {}

    def drop(f: dict[str, pd.DataFrame], table: str, rows: np.ndarray) -> dict[str, pd.DataFrame]:
        f = dict(f)
        f[table] = f[table].drop(index=f[table].index[rows]).reset_index(drop=True)
        return f

    def note(name: str, n: int) -> None:
        dropped[name] = dropped.get(name, 0) + n

    return model.apply(SCHEMA, frames, np.random.default_rng(seed), drop, note), dropped


def test_events_point_at_their_patients_visit_on_or_before_their_day() -> None:
    frames = _frames(
        [0, 1],
        [(0, 10, "2024-01-01"), (0, 11, "2024-01-10"), (0, 12, "2024-01-20"), (1, 13, "2024-01-05")],
        [(0, "2024-01-12"), (0, "2024-01-20"), (0, "2023-12-01"), (1, "2024-06-01")],
    )
    out, dropped = _apply(frames)
    assert out["events"]["vid"].tolist() == [11.0, 12.0, 10.0, 13.0]  # latest visit on or before, else the first after
    assert dropped == {}
    # the preceding visit is the same patient's previous one in date order
    assert np.allclose(out["visits"]["previous"].to_numpy(dtype="float64"), [np.nan, 10.0, 11.0, np.nan], equal_nan=True)


def test_rows_without_a_candidate_are_dropped_or_null() -> None:
    frames = _frames([0, 1], [(0, 0, "2024-01-01")], [(0, "2024-01-02"), (1, "2024-01-02")])
    out, dropped = _apply(frames)
    assert dropped == {"events.vid.foreign_key": 1}  # patient 1 has no visit and vid is not nullable
    assert out["events"]["pid"].tolist() == [0]


def test_null_rates_and_reference_keys_follow_training() -> None:
    n = 4000
    frames = _frames(
        list(range(n)),
        [(p, p, "2024-01-01") for p in range(n)],
        [(p, "2024-01-02") for p in range(n)],
    )
    out, _ = _apply(frames, seed=1)
    events, visits = out["events"], out["visits"]
    assert (events["vid"] == events["pid"]).all()
    assert abs(events["note"].isna().mean() - 0.25) < 0.03
    assert abs(events["staff"].isna().mean() - 0.75) < 0.03
    assert events["staff"].dropna().is_unique
    # reference keys drawn from training rows (payer 0, 1 or none, a third each); the reference table released as is
    assert set(visits["payer"].dropna()) <= {0.0, 1.0}
    assert abs(visits["payer"].isna().mean() - 1 / 3) < 0.03
    assert out["payers"]["name"].tolist() == ["a", "b"]


def test_same_seed_same_links() -> None:
    frames = _frames(
        [0], [(0, v, "2024-01-01") for v in range(5)], [(0, "2024-01-01") for _ in range(20)]
    )
    a, _ = _apply(frames, seed=3)
    b, _ = _apply(frames, seed=3)
    assert a["events"].equals(b["events"])
    assert a["events"]["vid"].nunique() > 1  # ties (five visits on one day) are broken at random


def test_a_key_never_null_in_training_is_required() -> None:
    train = _train()
    model = fit_links(SCHEMA, train)
    keys = {(k.table, k.column): k for k in model.keys}
    assert keys[("events", "vid")].required  # not nullable
    assert not keys[("events", "note")].required and keys[("events", "note")].null_rate == 0.25
    assert not keys[("visits", "previous")].required  # a first visit has no predecessor
    assert list(model.reference_rows["visits"].columns) == ["payer", "__p"] and ("visits", "payer") not in keys
    train["events"]["note"] = [0.0, 1.0, 2.0, 2.0]
    keys = {(k.table, k.column): k for k in fit_links(SCHEMA, train).keys}
    assert keys[("events", "note")].required  # nullable, but every training event had one


DEEP = parse_schema(
    """
name: deep
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, nullable: false}
  visits:
    primary_key: vid
    columns:
      pid: {type: id, references: people.pid, nullable: false}
      vid: {type: id, nullable: false}
  events:
    columns:
      vid: {type: id, references: visits.vid, nullable: false}
      pid: {type: id, references: people.pid, nullable: false}
"""
)


def test_a_deep_tables_patient_key_is_its_parents_patient() -> None:
    """Issue 15: under ``visits`` (its tree link, first), ``events.pid`` is a secondary key, empty after a
    tree generator samples; it must become the visit's patient, never make every row look orphaned."""
    def frames(pid: list[float]) -> dict[str, pd.DataFrame]:
        return {"people": pd.DataFrame({"pid": [0, 1]}),
                "visits": pd.DataFrame({"pid": [0, 1, 1], "vid": [10, 11, 12]}),
                "events": pd.DataFrame({"vid": [10, 11, 12, 12], "pid": pid})}

    model = fit_links(DEEP, frames([0.0, 1.0, 1.0, 1.0]))
    assert [(k.table, k.column, k.required) for k in model.keys] == [("events", "pid", True)]
    dropped: list[int] = []

    def drop(f: dict[str, pd.DataFrame], table: str, rows: np.ndarray) -> dict[str, pd.DataFrame]:
        dropped.append(len(rows))
        return {**f, table: f[table].drop(index=f[table].index[rows]).reset_index(drop=True)}

    out = model.apply(DEEP, frames([np.nan] * 4), np.random.default_rng(0), drop, lambda name, n: None)
    assert dropped == [] and out["events"]["pid"].tolist() == [0.0, 1.0, 1.0, 1.0]
