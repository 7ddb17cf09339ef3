"""Releases of non-DP generators lose the synthetic rows that replicate a row unique in training (synth.uniques).

A leaky generator (the ``copy`` baseline, not flagged unsafe) releases every training patient verbatim; after
the release pipeline, no released row equals a training-unique row, rows equal to a training row held by two
or more patients stay, keys still resolve, and a DP generator's release is left as it was sampled.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import duckdb
import numpy as np
import pandas as pd
import pytest

import synth.pipeline
from data_schemas.io import parse_schema
from synth.generators.baselines import CopyGenerator
from synth.load import frames_to_dataset, load_dataset
from synth.pipeline import release
from synth.release import Store, verify_release
from synth.uniques import remove_replicated_uniques
from tests.conftest import SECRET

SCHEMA = parse_schema(
    """
name: uniques_test
patient: {table: people, column: pid}
tables:
  people:
    primary_key: pid
    columns:
      pid: {type: id, nullable: false}
      sex: {type: categorical, values: [F, M]}
      birth_year: {type: numerical}
      region: {type: categorical}
  visits:
    primary_key: vid
    columns:
      vid: {type: id, nullable: false}
      pid: {type: id, references: people.pid, nullable: false}
      ward: {type: categorical}
      cost: {type: numerical}
  items:
    columns:
      vid: {type: id, references: visits.vid, nullable: false}
      drug: {type: categorical}
      dose: {type: numerical}
""",
    source="<test_replicated_uniques>",
)
ATTRS = {"people": ["sex", "birth_year", "region"], "visits": ["ward", "cost"], "items": ["drug", "dose"]}


def _population(n_unique: int = 60, n_twins: int = 30) -> dict[str, pd.DataFrame]:
    """People with a one-of-a-kind root row (some with a null region) and twins sharing theirs; visits
    and items are unique except the twins', which repeat across the two patients."""
    rng = np.random.default_rng(7)
    people, visits, items = [], [], []
    for i in range(n_unique + 2 * n_twins):
        twin = i >= n_unique
        j = (i - n_unique) // 2 if twin else i
        people.append({"pid": f"p{i}", "sex": "FM"[j % 2], "birth_year": float((1930 if twin else 1960) + j),
                       "region": None if (not twin and j % 7 == 0) else f"r{j % 5}"})
        for v in range(1 + j % 2):
            vid = f"v{i}_{v}"
            cost = float(100 + j * 10 + v) if twin else float(rng.integers(1_000, 10_000_000))
            visits.append({"vid": vid, "pid": f"p{i}", "ward": "icu" if v else "med", "cost": cost})
            items.append({"vid": vid, "drug": "x" if twin else f"d{i}", "dose": float(j)})
    return {"people": pd.DataFrame(people), "visits": pd.DataFrame(visits), "items": pd.DataFrame(items)}


class Leaky(CopyGenerator):
    """The copy baseline presented as an ordinary generator: it returns training patients verbatim."""

    name: ClassVar[str] = "leaky"
    unsafe: ClassVar[bool] = False


class LeakyDP(Leaky):
    """The same, flagged differentially private: the guard must never touch its output."""

    name: ClassVar[str] = "leaky_dp"
    differentially_private: ClassVar[bool] = True


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synth.prepare import prepare

    raw = tmp_path_factory.mktemp("raw")
    for table, frame in _population().items():
        frame.to_csv(raw / f"{table}.csv", index=False)
    out = tmp_path_factory.mktemp("uniques") / "prepared"
    prepare(load_dataset(SCHEMA, raw), out, secret=SECRET.encode(), seed=0)
    return out


def _counts(folder: Path, table: str) -> pd.DataFrame:
    """Each distinct attribute tuple of a table's Parquet file with how many rows hold it."""
    cols = ", ".join(f'"{c}"' for c in ATTRS[table])
    return duckdb.sql(f"SELECT {cols}, count(*) AS n FROM read_parquet('{folder / (table + '.parquet')}') GROUP BY ALL").df()


def _matches(released: Path, train: Path, table: str) -> dict[str, int]:
    """Released rows of a table equal to a training row unique in training / held by two or more training rows."""
    rel, tr = _counts(released, table), _counts(train, table)
    joined = rel.merge(tr, on=ATTRS[table], how="inner", suffixes=("_rel", "_train"))  # pandas merges NaN with NaN
    return {"unique": int(joined.loc[joined.n_train == 1, "n_rel"].sum()), "shared": int(joined.loc[joined.n_train >= 2, "n_rel"].sum())}


def _leaky_release(prepared: Path, store: Store, monkeypatch: pytest.MonkeyPatch, generator: type[Leaky] = Leaky, **kw):
    monkeypatch.setattr(synth.pipeline, "make_generator", lambda *a, **k: generator())
    return release(SCHEMA, prepared, generator=generator.name, store=store, seed=3, **kw)


def _integrity(folder: Path) -> None:
    con = duckdb.connect()
    p, v, i = (f"read_parquet('{folder / (t + '.parquet')}')" for t in ("people", "visits", "items"))
    assert con.execute(f"SELECT count(*) FROM {v} WHERE pid NOT IN (SELECT pid FROM {p})").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM {i} WHERE vid NOT IN (SELECT vid FROM {v})").fetchone() == (0,)


def test_a_leaky_release_keeps_no_row_unique_in_training(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = prepared / "train"
    before = {t: _matches(train, train, t) for t in ATTRS}  # what the leaky generator releases: all of train
    assert before["people"]["unique"] > 20 and before["people"]["shared"] >= 20  # both kinds are in train
    assert before["visits"]["unique"] > 20 and before["items"]["unique"] > 20
    store = Store(tmp_path / "store")
    info = _leaky_release(prepared, store, monkeypatch)
    after = {t: _matches(info.path, train, t) for t in ATTRS}
    assert {t: m["unique"] for t, m in after.items()} == {"people": 0, "visits": 0, "items": 0}
    assert after["people"]["shared"] == before["people"]["shared"]  # twins (k >= 2) stay, every one of them
    assert after["visits"]["shared"] > 0 and after["items"]["shared"] > 0
    _integrity(info.path)
    guard = info.manifest["replicated_uniques"]
    assert guard["applied"] and guard["matched_rows"]["people"] == before["people"]["unique"]
    assert guard["removed_patients"] == before["people"]["unique"]
    assert info.manifest["n_patients"] == guard["patients_before"] - guard["removed_patients"] == before["people"]["shared"]
    assert info.manifest["rows"]["people"] == before["people"]["shared"]
    assert any("replicated a patient unique in training" in w for w in guard["warnings"])  # most of a copy's cohort
    assert set(guard) == {"applied", "method", "matched_rows", "near_matched_rows", "removed_rows", "removed_patients",
                          "patients_before", "warnings"}
    assert guard["near_matched_rows"] == {"people": 0}  # every near replica here is an exact one, counted there
    assert verify_release(store, info.release_id).ok
    # counts only: per table, of the schema's patient tables, whatever the data
    assert all(set(guard[k]) == set(ATTRS) and all(type(n) is int for n in guard[k].values()) for k in ("matched_rows", "removed_rows"))


def test_the_opt_out_keeps_the_replicas(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = _leaky_release(prepared, Store(tmp_path / "store"), monkeypatch, remove_uniques=False)
    assert _matches(info.path, prepared / "train", "people")["unique"] > 20
    assert info.manifest["replicated_uniques"] == {"applied": False, "reason": "turned off by the user (--keep-replicated-uniques)"}


def test_a_dp_generator_release_is_left_as_sampled(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = _leaky_release(prepared, Store(tmp_path / "store"), monkeypatch, generator=LeakyDP, n_patients=40)
    assert info.manifest["rows"]["people"] == 40 and _matches(info.path, prepared / "train", "people")["unique"] > 10
    guard = info.manifest["replicated_uniques"]
    assert not guard["applied"] and "differentially private" in guard["reason"]


def test_dp_mst_never_reaches_the_guard(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("the replicated-uniques guard ran on a DP release")

    monkeypatch.setattr(synth.pipeline, "UniquesGuard", refuse)  # what a release runs, batch by batch
    info = release(SCHEMA, prepared, generator="dp_mst", store=Store(tmp_path / "store"), epsilon=1.0, n_patients=30, seed=1)
    assert info.manifest["generator"]["differentially_private"]
    assert info.manifest["replicated_uniques"]["applied"] is False


def test_a_release_in_batches_is_guarded_as_the_whole_cohort(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sampled, guarded and written 9 patients at a time, the release holds exactly the rows the guard leaves
    of the whole cohort, and its counts and warnings are the whole cohort's."""
    gen = Leaky()
    gen.sample_batch_patients = 9
    said: list[str] = []
    monkeypatch.setattr(synth.pipeline, "make_generator", lambda *a, **k: gen)
    info = release(SCHEMA, prepared, generator=gen.name, store=Store(tmp_path / "store"), seed=3, n_patients=100, progress=said.append)
    assert "sampling patients 93-100 of 100 (batch 12 of 12)" in said
    train = synth.pipeline.read_training_input(SCHEMA, prepared).train
    whole, result = remove_replicated_uniques(train, gen.sample(100, seed=3))  # the same batches, held together
    assert info.manifest["replicated_uniques"] == result.to_dict() and result.removed_patients > 20
    assert info.manifest["rows"] == whole.row_counts() and info.manifest["n_patients"] == 100 - result.removed_patients
    for table in ATTRS:
        released = duckdb.sql(f"SELECT * FROM read_parquet('{info.path / (table + '.parquet')}') ORDER BY ALL").fetchall()
        assert released == whole.con.sql(f"SELECT * FROM {whole.sql_name(table)} ORDER BY ALL").fetchall()
    _integrity(info.path)


def test_a_replicated_child_row_takes_its_descendants_only() -> None:
    """A visit equal to a training-unique visit goes with its items; its patient and other visits stay; nulls match nulls."""
    train_frames = _population(n_unique=6, n_twins=2)
    train, report = frames_to_dataset(SCHEMA, train_frames, namespace="train")
    assert report.ok, report.render()
    # (F, r0) is the twins' (two training patients): no synthetic person is a near replica of a unique one
    people = pd.DataFrame({"pid": ["s0", "s1"], "sex": ["F", "F"], "birth_year": [1800.0, 1801.0], "region": ["r0", "r0"]})
    unique_visit = train_frames["visits"].iloc[0]  # p0's only visit (cost drawn, unique)
    visits = pd.DataFrame({"vid": ["w0", "w1", "w2"], "pid": ["s0", "s0", "s1"], "ward": [unique_visit.ward, "med", "med"],
                           "cost": [unique_visit.cost, 1.0, 2.0]})
    items = pd.DataFrame({"vid": ["w0", "w0", "w1", "w2"], "drug": ["q", "q", "q", "d0"], "dose": [0.0, 0.0, 0.0, 0.0]})
    synthetic, report = frames_to_dataset(SCHEMA, {"people": people, "visits": visits, "items": items}, namespace="syn")
    assert report.ok, report.render()
    out, result = remove_replicated_uniques(train, synthetic)
    # w0 copies a unique visit: it and its two items go; w2's item (d0, 0.0) copies p0's unique item: it goes alone
    assert result.matched_rows == {"people": 0, "visits": 1, "items": 1}
    assert result.removed_rows == {"people": 0, "visits": 1, "items": 3} and result.removed_patients == 0
    assert out.con.execute(f"SELECT list(vid ORDER BY vid) FROM {out.sql_name('visits')}").fetchone() == (["w1", "w2"],)
    assert out.row_counts() == {"people": 2, "visits": 2, "items": 1} and not result.warnings
    # a root row with a null region equal to p0's (unique, region null) takes the whole patient
    p0 = train_frames["people"].iloc[0]
    assert p0.region is None
    twin = people.assign(sex=[p0.sex, "F"], birth_year=[p0.birth_year, 1801.0], region=[None, "r0"])
    synthetic, _ = frames_to_dataset(SCHEMA, {"people": twin, "visits": visits, "items": items}, namespace="syn2")
    out, result = remove_replicated_uniques(train, synthetic, max_patient_share=0.2)
    assert result.removed_patients == 1 and out.row_counts() == {"people": 1, "visits": 1, "items": 0}
    assert any("table items is empty" in w for w in result.warnings) and any("(50.0%, more than 20%)" in w for w in result.warnings)


def test_the_cli_reports_the_removal_and_takes_the_opt_out(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from data_schemas.io import schema_to_yaml
    from synthmed.cli import app

    monkeypatch.setattr(synth.pipeline, "make_generator", lambda *a, **k: Leaky())
    schema_file = tmp_path / "uniques.yaml"
    schema_file.write_text(schema_to_yaml(SCHEMA))
    store = Store(tmp_path / "store")
    args = ["release", "--data", str(prepared), "--schema", str(schema_file), "-g", "leaky", "--store", str(store.root)]
    runner = CliRunner()
    done = runner.invoke(app, [*args, "--quiet"])
    assert done.exit_code == 0, done.output
    n = _matches(prepared / "train", prepared / "train", "people")["unique"]
    assert f"removed as replicas of training-unique rows: {n} patient(s); rows people {n}" in done.stdout
    assert "warning: " in done.stderr and "replicated a patient unique in training" in done.stderr  # said even when quiet
    kept = runner.invoke(app, [*args, "--keep-replicated-uniques", "--quiet"])
    assert kept.exit_code == 0, kept.output
    assert "removed as replicas" not in kept.stdout
    (row,) = [r for r in store.catalog.releases() if r["release_id"] in kept.stdout]
    assert json.loads((Path(row["path"]) / "manifest.json").read_text())["replicated_uniques"]["applied"] is False


def test_a_removed_row_takes_the_rows_that_point_at_it_by_a_self_reference_or_secondary_key() -> None:
    """A visit replicating a training-unique visit goes; so do the visit whose ``previous`` (a self-reference)
    names it and the event whose ``note`` (a secondary key) names it, else the release would not validate."""
    from tests.unit.synth.test_links import SCHEMA as LINKED

    def frames(people, visits, events) -> dict[str, pd.DataFrame]:
        v = pd.DataFrame(visits, columns=["pid", "vid", "day", "previous"]).assign(day=lambda f: pd.to_datetime(f["day"]), payer=None)
        e = pd.DataFrame(events, columns=["pid", "day", "vid", "note"]).assign(day=lambda f: pd.to_datetime(f["day"]), staff=None)
        return {"people": pd.DataFrame(people, columns=["pid", "sex"]), "visits": v, "events": e,
                "payers": pd.DataFrame({"id": ["x"], "name": ["payer x"]})}

    train, report = frames_to_dataset(LINKED, frames(
        [("p0", "M"), ("p1", "M"), ("p2", "F"), ("p3", "F")],
        [("p0", "v0", "2024-01-05", None), ("p1", "v1", "2024-02-01", None), ("p2", "v2", "2024-02-01", None),
         ("p3", "v3", "2024-03-01", None), ("p3", "v4", "2024-03-01", "v3")],
        [("p1", "2024-02-01", "v1", None), ("p2", "2024-02-01", "v2", None)]), namespace="train")
    assert report.ok, report.render()
    synthetic, report = frames_to_dataset(LINKED, frames(
        [("s0", "M"), ("s1", "F")],
        [("s0", "w0", "2024-01-05", None), ("s0", "w1", "2024-02-01", "w0"), ("s1", "w2", "2024-03-01", None)],
        [("s1", "2024-02-01", "w2", "w0"), ("s1", "2024-02-01", "w2", None)]), namespace="syn")
    assert report.ok, report.render()
    kept, result = remove_replicated_uniques(train, synthetic)  # validated on the way: no reference left dangling
    assert result.matched_rows == {"people": 0, "visits": 1, "events": 0}
    assert sorted(kept.to_arrow("visits")["vid"].to_pylist()) == ["w2"]
    assert kept.to_arrow("events")["note"].to_pylist() == [None]
    assert result.removed_rows == {"people": 0, "visits": 2, "events": 1} and result.removed_patients == 0


def test_a_near_replica_of_a_unique_person_goes_with_its_patient() -> None:
    """A synthetic person equal to a training-unique person on all attribute columns but one (the region changed)
    goes with every row of the patient; one equal to the twins (two training patients) on all but one stays; so does
    one that matches a unique person on one column only. The old guard (exact rows only) kept the near replica."""
    train_frames = _population(n_unique=6, n_twins=2)
    train, report = frames_to_dataset(SCHEMA, train_frames, namespace="train")
    assert report.ok, report.render()
    p1, twin = train_frames["people"].iloc[1], train_frames["people"].iloc[6]  # p1: M, 1961, r1 (unique); p6: a twin
    people = pd.DataFrame({"pid": ["s0", "s1", "s2"], "sex": [p1.sex, twin.sex, "F"],
                           "birth_year": [p1.birth_year, twin.birth_year + 3, p1.birth_year], "region": ["r3", twin.region, "r0"]})
    visits = pd.DataFrame({"vid": ["w0", "w1", "w2"], "pid": ["s0", "s1", "s2"], "ward": ["med"] * 3, "cost": [1.0, 2.0, 3.0]})
    items = pd.DataFrame({"vid": ["w0", "w1", "w2"], "drug": ["q"] * 3, "dose": [0.5, 0.5, 0.5]})
    synthetic, report = frames_to_dataset(SCHEMA, {"people": people, "visits": visits, "items": items}, namespace="syn")
    assert report.ok, report.render()
    _, default = remove_replicated_uniques(train, synthetic, max_patient_share=0.5)
    assert default.near_matched_rows == {"people": 0} and default.removed_patients == 0  # 3 columns: under MIN_NEAR_COLUMNS
    out, result = remove_replicated_uniques(train, synthetic, max_patient_share=0.5, min_near_columns=3)
    assert result.matched_rows == {"people": 0, "visits": 0, "items": 0} and result.near_matched_rows == {"people": 1}
    assert result.removed_patients == 1 and result.removed_rows == {"people": 1, "visits": 1, "items": 1}
    assert sorted(out.to_arrow("people")["pid"].to_pylist()) == ["s1", "s2"]
    assert result.to_dict()["near_matched_rows"] == {"people": 1}


def test_a_demographic_combination_that_fresh_people_share_by_chance_is_no_near_replica() -> None:
    """The demo's patients without their eligibility start are a demographic combination (sex, birth year, region,
    insurance, income decile, an end that is the data's last day, no death) that fresh people match a unique training
    person on by chance about 10% of the time: a synthetic person equal to a unique one there stays. A person equal to
    a unique one on everything but the birth year (the exact start day included) goes. The rule without the chance
    filter removed 443 of 2,965 demo patients, 15%, on that projection alone."""
    from data_schemas.io import load_schema
    from synth.demo_population import simulate
    from synth.uniques import identifying_projections

    schema = load_schema("kr_claims")
    frames = simulate(1200, seed=5)
    train, report = frames_to_dataset(schema, {"patients": frames["patients"]}, namespace="train")
    assert report.ok or {p.kind for p in report.problems} == {"missing_table"}, report.render()
    kept = identifying_projections(train, "patients")
    dropped = [c for c in ("sex", "birth_year", "region", "insurance_type", "income_decile", "eligibility_start",
                           "eligibility_end", "death_date") if all(c in p for p in kept)]
    assert dropped == ["eligibility_start"]  # the one projection left out is the one without the start day
    people = train.con.execute(f"SELECT * FROM {train.sql_name('patients')}").df()
    unique = people.groupby(["sex", "birth_year", "region", "insurance_type", "income_decile", "eligibility_end"],
                            dropna=False).filter(lambda g: len(g) == 1)
    demographic, copied = unique.iloc[[0]].copy(), unique.iloc[[1]].copy()
    demographic["eligibility_start"] = demographic["eligibility_start"] - pd.Timedelta(days=400)
    copied["birth_year"] = copied["birth_year"] + 1
    synthetic_people = pd.concat([demographic, copied]).assign(patient_id=["s0", "s1"])
    synthetic, report = frames_to_dataset(schema, {"patients": synthetic_people}, namespace="syn", con=train.con)
    _, result = remove_replicated_uniques(train, synthetic, max_patient_share=1.0)
    assert result.near_matched_rows == {"patients": 1} and result.removed_patients == 1
