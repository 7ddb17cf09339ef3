"""cart draws a patient's later date as a calendar day when its calendar days vary less than its offsets from the
patient's first date: an eligibility end that is the day the data ends keeps that day, and stays after its start."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_schemas.io import parse_schema
from synth.generators import get_generator
from synth.load import frames_to_dataset

SCHEMA = parse_schema("""
name: enrolled
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, privacy: direct_identifier, nullable: false}
      sex: {type: categorical, values: [M, F], nullable: false}
      enrolled: {type: datetime, unit: date, nullable: false}
      leaves: {type: datetime, unit: date, nullable: false}
    rules:
      - {name: in_order, check: "leaves >= enrolled"}
""")
DATA_END = pd.Timestamp("2024-12-31")


def _people(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Enrolment starts spread over 15 years; 95% are still enrolled on the day the data ends, 5% left earlier."""
    rng = np.random.default_rng(seed)
    start = pd.Series(pd.Timestamp("2008-01-01") + pd.to_timedelta(rng.integers(0, 15 * 365, n), unit="D"))
    left = (start + pd.to_timedelta(rng.integers(30, 700, n), unit="D")).clip(upper=DATA_END - pd.Timedelta(days=1))
    end = left.where(rng.random(n) >= 0.95, DATA_END)
    return {"people": pd.DataFrame({"pid": [f"p{i}" for i in range(n)], "sex": rng.choice(["M", "F"], n),
                                    "enrolled": start, "leaves": pd.to_datetime(end)})}


def test_an_end_that_is_the_day_the_data_ends_keeps_that_day() -> None:
    train, report = frames_to_dataset(SCHEMA, _people(600, 3))
    assert report.ok, report.render()
    generator = get_generator("cart").fit(train)
    assert set(generator.nodes_[generator.root_].calendar) == {"leaves"}
    cohort = generator.sample(600, seed=1)
    people = cohort.con.execute(f"SELECT * FROM {cohort.sql_name('people')}").df()
    on_last_day = float((pd.to_datetime(people["leaves"]) == DATA_END).mean())
    # as offsets from the start (the old model) 2024-12-31 came back for about one patient in ten
    assert on_last_day > 0.9, on_last_day
    assert (pd.to_datetime(people["leaves"]) <= DATA_END).all()
    assert (pd.to_datetime(people["leaves"]) >= pd.to_datetime(people["enrolled"])).all()
    assert generator.last_sample_report_.rules["people.in_order"].violations < 0.05 * 600
