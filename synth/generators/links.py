"""Keys that are not a row's tree link: secondary foreign keys, reference tables and free id columns.

A generator that walks the schema tree (patient -> claim -> detail) draws every row under its tree
parent, so the first foreign key of each table resolves by construction. Other keys do not:

- a *secondary* foreign key to a patient-side table (OMOP ``condition_occurrence.visit_occurrence_id``,
  Synthea ``conditions.ENCOUNTER``) gets one of the *same patient's* rows of the referenced table: the
  latest one dated on or before the row's own date (the visit the event happened in), else the
  earliest after it, else a uniform draw among that patient's rows when either side has no date;
- a self-reference (``visit_occurrence.preceding_visit_occurrence_id``) gets the patient's previous row
  of the same table in date order;
- such a key is null with the rate seen in training among rows that *had* a candidate, and null when
  the patient has no candidate; a row whose key has no candidate is dropped (and counted) when the
  key is not nullable or was never null in training (OMOP events all carry a visit there);
- a foreign key to a ``reference`` table (payers, providers) is drawn jointly with the row's other
  reference keys from the training rows of its table (a provider stays with its organisation), and the
  reference tables themselves are released as they are (they hold no patient rows);
- an id column that is neither a key nor referenced (OMOP ``provider_id``) is left unique but null at
  its training null rate.

All of it works on the integer surrogate keys of the base class (``synth.generators.base``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Literal

import numpy as np
import pandas as pd

from data_schemas.model import Schema

Drop = Callable[[dict[str, pd.DataFrame], str, np.ndarray], dict[str, pd.DataFrame]]
Kind = Literal["patient", "self", "reference"]


@dataclass(frozen=True)
class SecondaryKey:
    """One foreign key that is not its table's tree link, with what training says about it."""

    table: str
    column: str
    target: str
    target_column: str
    kind: Kind
    required: bool  # not nullable, or never null in training: a row with nothing to point at is dropped
    null_rate: float  # among training rows that had a candidate to point at


@dataclass
class LinkModel:
    """What ``fit_links`` learned; ``apply`` fills the keys of a sampled cohort."""

    keys: list[SecondaryKey] = field(default_factory=list)
    reference_frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    # per table: the distinct combinations of its reference keys in training, with their shares (column "__p")
    reference_rows: dict[str, pd.DataFrame] = field(default_factory=dict)
    free_ids: dict[tuple[str, str], float] = field(default_factory=dict)  # (table, column) -> null rate
    order: list[str] = field(default_factory=list)

    def apply(
        self,
        schema: Schema,
        frames: dict[str, pd.DataFrame],
        rng: np.random.Generator,
        drop: Drop,
        note: Callable[[str, int], None],
    ) -> dict[str, pd.DataFrame]:
        """Frames with every secondary key, reference key and free id filled; ``note(name, n)`` counts drops."""
        frames = dict(frames)
        for name, ref in self.reference_frames.items():
            frames[name] = ref.copy()
        for name, combos in self.reference_rows.items():
            frame = frames[name].copy()
            columns = [c for c in combos.columns if c != "__p"]
            if len(combos) and len(frame):
                picked = combos.iloc[rng.choice(len(combos), size=len(frame), p=combos["__p"].to_numpy())]
                for col in columns:
                    frame[col] = picked[col].to_numpy()
            else:
                for col in columns:
                    frame[col] = np.nan
            frames[name] = frame
        for (name, column), rate in self.free_ids.items():
            frame = frames[name]
            if column in frame and rate > 0 and len(frame):
                values = pd.to_numeric(frame[column], errors="coerce").astype("float64").to_numpy().copy()
                values[rng.random(len(values)) < rate] = np.nan
                frames[name] = frame.assign(**{column: values})
        by_table: dict[str, list[SecondaryKey]] = {}
        for key in self.keys:
            if key.kind != "reference":
                by_table.setdefault(key.table, []).append(key)
        for _round in range(4):  # drops cascade; repeat until every key resolves (bounded)
            changed = False
            for name in self.order:
                for key in by_table.get(name, []):
                    frames, dropped = _link(schema, frames, key, rng, drop)
                    if dropped:
                        note(f"{key.table}.{key.column}.foreign_key", dropped)
                        changed = True
            if not changed or not self._dangling(frames, by_table):
                break
        return frames

    def _dangling(self, frames: dict[str, pd.DataFrame], by_table: dict[str, list[SecondaryKey]]) -> bool:
        for keys in by_table.values():
            for key in keys:
                values = frames[key.table][key.column].dropna()
                if len(values) and not values.isin(set(frames[key.target][key.target_column])).all():
                    return True
        return False


def fit_links(schema: Schema, frames: dict[str, pd.DataFrame]) -> LinkModel:
    """Learn null rates, reference rows and a processing order from training frames (surrogate keys)."""
    model = LinkModel()
    patients = patient_keys(schema, frames)
    referenced = {c.foreign_key for t in schema.tables.values() for c in t.foreign_keys}
    edges: dict[str, set[str]] = {}
    for table in schema.tables.values():
        if table.reference:
            model.reference_frames[table.name] = frames[table.name].copy()
            continue
        edges.setdefault(table.name, set())
        link = schema.parent_of(table.name)
        tree_column = link[0].name if link is not None else None
        if link is not None:
            edges[table.name].add(link[1])
        reference_columns: list[str] = []
        for col in table.foreign_keys:
            target, target_column = col.foreign_key  # type: ignore[misc]
            if col.name == tree_column or target not in schema.tables:
                continue
            if table.name == schema.patient.table and col.name == schema.patient.column:
                continue
            if schema.tables[target].reference:
                reference_columns.append(col.name)
                continue
            kind: Kind = "self" if target == table.name else "patient"
            has = _has_candidate(schema, frames, patients, table.name, col.name, target, target_column, kind)
            values = frames[table.name][col.name]
            rate = float(values[has].isna().mean()) if has.any() else float(values.isna().mean()) if len(values) else 0.0
            # a self-reference is null on a patient's first row by nature; other keys never null in training stay so
            required = not col.nullable or (kind != "self" and len(values) > 0 and not values.isna().any())
            model.keys.append(SecondaryKey(table.name, col.name, target, target_column, kind, required, 0.0 if required else rate))
            if kind == "patient":
                edges[table.name].add(target)
        if reference_columns:
            combos = frames[table.name][reference_columns].value_counts(dropna=False, normalize=True, sort=False)
            model.reference_rows[table.name] = combos.rename("__p").reset_index()
        keyish = set(table.primary_key) | {c.name for c in table.foreign_keys}
        for col in table.columns_of_type("id"):
            if col.name in keyish or (table.name, col.name) in referenced or col.name not in frames[table.name]:
                continue
            rate = float(frames[table.name][col.name].isna().mean()) if col.nullable and len(frames[table.name]) else 0.0
            if rate > 0:
                model.free_ids[(table.name, col.name)] = rate
    try:
        order = list(TopologicalSorter({k: {v for v in vs if v != k} for k, vs in edges.items()}).static_order())
    except CycleError:
        order = schema.topological_order()
    model.order = [t for t in order if t in edges]
    return model


def patient_keys(schema: Schema, frames: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Patient surrogate key of every row of every patient-side table, following tree links up.

    A table's own patient column is read only when it is the tree link (or there is none): a deep table's
    patient column (``diagnoses_icd.subject_id`` under ``admissions``) is a secondary key, empty until
    filled, and the row's patient is the one its parent names."""
    out: dict[str, np.ndarray] = {}
    for name in schema.topological_order():
        if schema.tables[name].reference or name not in frames:
            continue
        col = schema.patient_column_of(name)
        path = schema.path_to_patient(name)
        if col is not None and col in frames[name] and (not path or path[0][1] == col):
            out[name] = frames[name][col].to_numpy()
            continue
        if not path:
            continue
        keys = frames[name][path[0][1]].to_numpy()
        for _child, _fk, parent, pcol in path[:-1]:
            nxt = schema.path_to_patient(parent)[0][1]
            lookup = pd.Series(frames[parent][nxt].to_numpy(), index=frames[parent][pcol].to_numpy())
            keys = lookup[~lookup.index.duplicated()].reindex(keys).to_numpy()
        out[name] = keys
    return out


def _date_column(schema: Schema, table: str, frame: pd.DataFrame) -> str | None:
    """The column that dates a row: the table's ``order_by`` when it is a date, else its first date."""
    t = schema.tables[table]
    if t.order_by and t.columns[t.order_by].type == "datetime" and t.order_by in frame:
        return t.order_by
    for col in t.columns_of_type("datetime"):
        if col.name in frame:
            return col.name
    return None


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Whole days since the epoch (NaN where missing): events are matched to visits by calendar day."""
    ts = pd.to_datetime(values, errors="coerce")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(None)
    days = (ts.dt.floor("D") - pd.Timestamp("1970-01-01")).dt.days
    return days.astype("float64").to_numpy()


def _has_candidate(
    schema: Schema,
    frames: dict[str, pd.DataFrame],
    patients: dict[str, np.ndarray],
    table: str,
    column: str,
    target: str,
    target_column: str,
    kind: Kind,
) -> np.ndarray:
    """For each training row: did its patient have a row to point at (an earlier one, for a self-reference)?"""
    if table not in patients or target not in patients:
        return np.zeros(len(frames[table]), dtype=bool)
    own = patients[table]
    if kind == "self":
        order = _sequence_order(schema, table, frames[table], own)
        first = np.zeros(len(own), dtype=bool)
        ranked = pd.Series(own[order])
        first[order] = ~ranked.duplicated().to_numpy()
        return ~first & ~pd.isna(own)
    target_frame = frames[target]
    with_key = patients[target][target_frame[target_column].notna().to_numpy()]
    return pd.Series(own).isin(set(with_key)).to_numpy()


def _sequence_order(schema: Schema, table: str, frame: pd.DataFrame, patient: np.ndarray) -> np.ndarray:
    """Row positions ordered by patient, then date (missing last), then position."""
    date = _date_column(schema, table, frame)
    days = _day_numbers(frame[date]) if date else np.zeros(len(frame))
    days = np.where(np.isnan(days), np.inf, days)
    return np.lexsort((np.arange(len(frame)), days, pd.factorize(patient)[0]))


def _link(
    schema: Schema, frames: dict[str, pd.DataFrame], key: SecondaryKey, rng: np.random.Generator, drop: Drop
) -> tuple[dict[str, pd.DataFrame], int]:
    """Fill one secondary key of a sampled table; returns the frames and how many rows were dropped."""
    frame = frames[key.table]
    if frame.empty:
        return frames, 0
    patients = patient_keys(schema, frames)
    own = patients[key.table]
    values = np.full(len(frame), np.nan)
    if key.kind == "self":
        order = _sequence_order(schema, key.table, frame, own)
        ids = pd.to_numeric(frame[key.target_column], errors="coerce").to_numpy(dtype="float64")
        sorted_patients = pd.Series(own[order])
        previous = np.r_[np.nan, ids[order][:-1]]
        same = np.r_[False, (sorted_patients.iloc[1:].to_numpy() == sorted_patients.iloc[:-1].to_numpy())]
        values[order] = np.where(same, previous, np.nan)
    else:
        values = _choose(schema, frames, key, own, patients, rng)
    has = ~np.isnan(values)
    if not key.required and key.null_rate > 0:
        values[has & (rng.random(len(values)) < key.null_rate)] = np.nan
    frames = dict(frames)
    frames[key.table] = frame.assign(**{key.column: values})
    missing = np.flatnonzero(~has) if key.required else np.array([], dtype=np.int64)
    if missing.size:
        frames = drop(frames, key.table, missing)
    return frames, int(missing.size)


def _choose(
    schema: Schema,
    frames: dict[str, pd.DataFrame],
    key: SecondaryKey,
    own: np.ndarray,
    patients: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """For each row, a key of one of its patient's rows in the target table (NaN when there is none)."""
    frame, target = frames[key.table], frames[key.target]
    out = np.full(len(frame), np.nan)
    tkeys = pd.to_numeric(target[key.target_column], errors="coerce").to_numpy(dtype="float64")
    tpat = patients[key.target]
    ok = ~np.isnan(tkeys) & ~pd.isna(tpat)
    if not ok.any():
        return out
    cand = pd.DataFrame({"p": pd.to_numeric(pd.Series(tpat[ok]), errors="coerce").to_numpy(dtype="float64"), "v": tkeys[ok]})
    row_date, target_date = _date_column(schema, key.table, frame), _date_column(schema, key.target, target)
    rows = pd.DataFrame({"p": pd.to_numeric(pd.Series(own), errors="coerce").to_numpy(dtype="float64"), "i": np.arange(len(frame))})
    rows = rows[rows["p"].notna()]
    if row_date and target_date:
        cand["d"] = _day_numbers(target[target_date])[ok]
        rows["d"] = _day_numbers(frame[row_date])[rows["i"].to_numpy()]
        dated_rows, dated_cand = rows[rows["d"].notna()], cand[cand["d"].notna()]
        if len(dated_rows) and len(dated_cand):
            # one entry per (patient, day); a row matched to a day with several visits draws one of them
            dated_cand = dated_cand.sort_values(["p", "d"], kind="stable").reset_index(drop=True)
            days = dated_cand.drop_duplicates(["p", "d"]).rename(columns={"d": "cd"})
            days = days.assign(start=days.index, n=dated_cand.groupby(["p", "d"], sort=False).size().to_numpy())
            days = days.drop(columns="v").sort_values("cd", kind="stable")
            left = dated_rows.sort_values("d", kind="stable")
            for direction in ("backward", "forward"):
                pending = left[np.isnan(out[left["i"].to_numpy()])]
                if pending.empty:
                    break
                matched = pd.merge_asof(pending, days, left_on="d", right_on="cd", by="p", direction=direction)
                hit = matched["start"].notna().to_numpy()
                start = matched["start"].to_numpy(dtype="float64")[hit]
                pick = start + np.floor(rng.random(int(hit.sum())) * matched["n"].to_numpy(dtype="float64")[hit])
                out[matched["i"].to_numpy()[hit]] = dated_cand["v"].to_numpy()[pick.astype(np.int64)]
    pending = rows[np.isnan(out[rows["i"].to_numpy()])]
    if len(pending):
        cand = cand.sort_values("p", kind="stable").reset_index(drop=True)
        groups = cand.groupby("p", sort=False).indices
        starts = pd.Series({p: idx[0] for p, idx in groups.items()})
        counts = pd.Series({p: len(idx) for p, idx in groups.items()})
        start = starts.reindex(pending["p"].to_numpy()).to_numpy(dtype="float64")
        count = counts.reindex(pending["p"].to_numpy()).to_numpy(dtype="float64")
        found = ~np.isnan(start)
        pick = start[found] + np.floor(rng.random(int(found.sum())) * count[found])
        out[pending["i"].to_numpy()[found]] = cand["v"].to_numpy()[pick.astype(np.int64)]
    return out
