"""A hierarchical generator for any schema of ours, with SDV single-table engines underneath.

Walk the tables from the patient root. Each table gets one engine model of its own attributes, plus
``__n_<child>`` (how many rows each child table has per row of this one) and, for a child table, a few
context attributes of its parent. Sampling goes top-down: the parent's model draws rows and their
child counts; the child's model draws rows with parent context, which are matched to parent slots by
that context (exact on categories, quartile bins on numbers). This extends SDV's HMA idea to any depth
and any number of tables.

Dates are modelled as day offsets: a child's first date from the patient's anchor date (the root's
first date column), any further date of the same row from that row's first date. Rows of a table with
``order_by`` come out sorted by it within each parent (the base class orders them).

When the patient table holds several rows per patient (DE-SynPUF's yearly summaries), a virtual root
with one row per patient carries the attributes that never vary within a patient in the training data.

Keys other than a table's tree link (OMOP ``condition_occurrence.visit_occurrence_id``, Synthea
``ENCOUNTER``, keys to reference tables) are filled after sampling by ``synth.generators.links``:
the same patient's row of the referenced table, matched by date.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data_schemas.model import Column, Schema
from data_schemas.sdv_metadata import column_sdtype
from synth.errors import GeneratorError
from synth.generators.base import Generator, Progress, TrainingData, breadth_first, local_rule_mask
from synth.generators.engines import NEURAL, TableModel, check_engine_params
from synth.generators.progress import check_budget, check_max_time, watch_epochs
from synth.generators.registry import register

VIRTUAL = "__patient__"
MAX_CONTEXT = 6
MAX_CONTEXT_CATEGORIES = 30
EPOCH = pd.Timestamp("1970-01-01")
MAX_DAYS = 106_000  # pandas' nanosecond dates end 106,751 days either side of 1970


@dataclass
class Node:
    """A table in the generation tree."""

    name: str
    parent: str | None
    fk: str | None  # column of this table holding the parent's key
    parent_key: str | None  # the parent's key column
    key: str | None  # this table's own surrogate key column, if children point at it
    children: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    context_bins: dict[str, np.ndarray] = field(default_factory=dict)
    anchored: bool | None = None  # first date as an offset from the patient's anchor date (else absolute days); set at fit
    static: list[str] = field(default_factory=list)  # virtual root only
    model: TableModel | None = None


def _days(values: pd.Series) -> pd.Series:
    return (pd.to_datetime(values) - EPOCH).dt.days.astype("float64")


def _from_days(values: pd.Series) -> pd.Series:
    """Dates from day numbers; NaN (and anything beyond pandas' date range) becomes NaT.

    Done with integer arithmetic: ``pd.to_timedelta(floats, unit="D")`` (pandas 2.3) rounds an
    uninitialised buffer at NaN positions, which now and then warns "overflow encountered in multiply".
    """
    days = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(days) & (np.abs(days) < MAX_DAYS)
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[ok] = np.rint(days[ok]).astype("int64").astype("datetime64[D]").astype("datetime64[ns]")
    return pd.Series(out, index=values.index)


@register
class HierarchicalGenerator(Generator):
    """Any-depth parent/child generator on SDV single-table engines (see the module docstring)."""

    name: ClassVar[str] = "hierarchical"
    family: ClassVar[str] = "multi-table"
    description: ClassVar[str] = "walks the schema from the patient root: child counts and rows conditioned on the parent, any depth"
    links_keys: ClassVar[bool] = True

    def __init__(
        self,
        *,
        engine: str = "gaussian_copula",
        engine_params: dict[str, Any] | None = None,
        max_rows_per_table: int | None = None,
        min_patients: int | None = None,
        max_time: float | None = None,
    ) -> None:
        super().__init__(min_patients=min_patients)
        self.max_time = check_max_time(self.name or "hierarchical", max_time)
        self._watch: tuple[Progress, float | None, dict[str, Any]] | None = None
        self.engine = engine
        self.engine_params = check_engine_params(engine, dict(engine_params or {}))
        if max_rows_per_table is not None and (not isinstance(max_rows_per_table, int) or max_rows_per_table < 100):
            raise GeneratorError(f"The 'max_rows_per_table' parameter must be an int >= 100 or None; got {max_rows_per_table!r} instead.")
        self.max_rows_per_table = max_rows_per_table
        self.nodes_: dict[str, Node] = {}
        self.root_: str = ""
        self.anchor_: str | None = None

    def get_params(self) -> dict[str, Any]:
        return {"engine": self.engine, "engine_params": self.engine_params, "max_rows_per_table": self.max_rows_per_table, **self._rare_params(), **self._time_params()}

    def _time_params(self) -> dict[str, Any]:
        max_time = getattr(self, "max_time", None)  # generators saved before max_time existed
        return {"max_time": max_time} if max_time is not None else {}

    # -- structure -------------------------------------------------------------------------------
    def _build_tree(self, data: TrainingData) -> dict[str, pd.DataFrame]:
        schema = data.schema
        frames = dict(data.frames)
        ptable, pcol = schema.patient.table, schema.patient.column
        patient_frame = frames[ptable]
        one_row_per_patient = patient_frame[pcol].is_unique
        nodes: dict[str, Node] = {}
        if one_row_per_patient:
            self.root_ = ptable
        else:
            self.root_ = VIRTUAL
            static = [
                c
                for c in _attribute_columns(schema, ptable)
                if patient_frame.groupby(pcol, sort=False)[c].nunique(dropna=False).max() <= 1
            ]
            virtual = patient_frame.groupby(pcol, sort=True, as_index=False).first()[[pcol, *static]]
            frames[VIRTUAL] = virtual
            nodes[VIRTUAL] = Node(VIRTUAL, None, None, None, pcol, static=static)
        for name in schema.topological_order():
            table = schema.tables[name]
            if table.reference:
                continue
            if name == self.root_:
                nodes[name] = Node(name, None, None, None, pcol)
                continue
            link = schema.parent_of(name)
            if name == ptable:
                parent, fk, parent_key = VIRTUAL, pcol, pcol
            elif link is None:
                raise GeneratorError(f"table {name} has no parent in the schema; hierarchical cannot place it")
            else:
                fk_col, parent, parent_key = link[0].name, link[1], link[2]
                fk = fk_col
                if parent == ptable and self.root_ == VIRTUAL and parent_key == pcol:
                    parent = VIRTUAL
            nodes[name] = Node(name, parent, fk, parent_key, None)
        for node in nodes.values():
            if node.parent is not None:
                nodes[node.parent].children.append(node.name)
                if node.parent != VIRTUAL and node.parent != self.root_:
                    nodes[node.parent].key = node.parent_key
        self.nodes_ = nodes
        return frames

    # -- fit -------------------------------------------------------------------------------------
    def _fit(self, data: TrainingData, progress: Progress) -> None:
        """Fit every table's model; neural engines report epochs and stop at ``max_time`` (synth.generators.progress)."""
        deadline = time.monotonic() + self.max_time if self.max_time is not None else None
        self._check_budget(data)
        self._watch = (progress, deadline, {})
        try:
            self._fit_tables(data, progress)
        finally:
            self._watch = None

    def _check_budget(self, data: TrainingData) -> None:
        """Refuse a neural fit that would run for hours with no time cap."""
        if self.engine not in NEURAL:
            return
        cap = self.max_rows_per_table or 10**12
        rows = sum(min(len(f), cap) for f in data.frames.values())
        check_budget(f"{self.name} ({self.engine_params.get('epochs')} epochs)", rows * int(self.engine_params.get("epochs", 1)), self.max_time)

    def _fit_tables(self, data: TrainingData, progress: Progress) -> None:
        schema = data.schema
        frames = self._build_tree(data)
        anchor_cols = [c.name for c in schema.patient_table.columns_of_type("datetime")]
        if self.root_ == VIRTUAL:
            anchor_cols = [c for c in anchor_cols if c in self.nodes_[VIRTUAL].static]
        self.anchor_ = anchor_cols[0] if anchor_cols else None
        anchors = self._anchors(schema, frames)
        rng = np.random.default_rng(0)
        for name, node in self.nodes_.items():
            progress(f"fitting {self.engine} on {name}")
            frame = frames[name]
            encoded, specs = self._encode(schema, node, frames, anchors)
            for child in node.children:
                cnode = self.nodes_[child]
                counts = frames[child].groupby(cnode.fk).size()
                key = node.key if node.name != VIRTUAL else schema.patient.column
                encoded[f"__n_{child}"] = frame[key].map(counts).fillna(0).to_numpy(dtype="float64")
                specs[f"__n_{child}"] = {"sdtype": "numerical", "decimal_places": 0, "range_min": 0}
            if node.parent is not None:
                ctx, ctx_specs = self._context(schema, node, frames, anchors)
                encoded = pd.concat([encoded, ctx], axis=1)
                specs.update(ctx_specs)
            self._fit_node(node, encoded, specs, frame, rng)

    def _fit_node(self, node: Node, encoded: pd.DataFrame, specs: dict[str, dict[str, Any]], frame: pd.DataFrame, rng: np.random.Generator) -> None:
        """Fit the engine on a node's training frame (its attributes, child counts and parent context)."""
        if self.max_rows_per_table and len(encoded) > self.max_rows_per_table:
            encoded = encoded.iloc[rng.choice(len(encoded), self.max_rows_per_table, replace=False)]
        progress, deadline, state = self._watch or ((lambda _m: None), None, {})
        with watch_epochs(f"{self.engine} on {node.name}", progress, deadline, state):
            node.model = TableModel(self.engine, self.engine_params, specs).fit(encoded.reset_index(drop=True), seed=0)

    def _attributes(self, schema: Schema, node: Node) -> list[Column]:
        if node.name == VIRTUAL:
            table = schema.patient_table
            return [table.columns[c] for c in node.static]
        table = schema.tables[node.name]
        virtual_static = self.nodes_[VIRTUAL].static if VIRTUAL in self.nodes_ and node.name == schema.patient.table else []
        return [
            schema.tables[node.name].columns[c]
            for c in _attribute_columns(schema, node.name)
            if c not in virtual_static and table.columns[c].type != "id"
        ]

    def _anchors(self, schema: Schema, frames: dict[str, pd.DataFrame]) -> pd.Series:
        """Anchor day per patient surrogate key (0 when the schema has no patient date)."""
        root = frames[self.root_]
        key = schema.patient.column
        if self.anchor_ is None:
            return pd.Series(0.0, index=root[key].to_numpy())
        return pd.Series(_days(root[self.anchor_]).fillna(0.0).to_numpy(), index=root[key].to_numpy())

    def _patient_of(self, schema: Schema, node: Node, frames: dict[str, pd.DataFrame]) -> np.ndarray:
        """Patient surrogate key of every row of a node's frame, following parents up."""
        frame = frames[node.name]
        if node.name == self.root_:
            return frame[schema.patient.column].to_numpy()
        current, keys = node, frame[node.fk].to_numpy()
        while current.parent != self.root_ and current.parent is not None:
            parent = self.nodes_[current.parent]
            pframe = frames[parent.name]
            lookup = pd.Series(pframe[parent.fk].to_numpy(), index=pframe[parent.key].to_numpy())
            keys = lookup.reindex(keys).to_numpy()
            current = parent
        return keys

    def _encode(
        self, schema: Schema, node: Node, frames: dict[str, pd.DataFrame], anchors: pd.Series
    ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
        """A node's attributes as the engine sees them: dates become day offsets (see module docstring)."""
        frame = frames[node.name]
        cols = self._attributes(schema, node)
        node.attributes = [c.name for c in cols]
        node.dates = [c.name for c in cols if c.type == "datetime"]
        out: dict[str, Any] = {}
        specs: dict[str, dict[str, Any]] = {}
        is_root = node.name == self.root_
        patients = None if is_root else self._patient_of(schema, node, frames)
        first_date: pd.Series | None = None
        for col in cols:
            if col.type == "datetime":
                days = _days(frame[col.name])
                if first_date is None:
                    if node.anchored is None:
                        node.anchored = self._choose_anchored(node, days, patients, anchors)
                    base = anchors.reindex(patients).fillna(0.0).to_numpy() if node.anchored else 0.0
                    first_date = days
                    out[col.name] = (days - base).to_numpy()
                else:
                    out[col.name] = (days - first_date).to_numpy()
                specs[col.name] = {"sdtype": "numerical", "decimal_places": 0}
            else:
                out[col.name] = frame[col.name].to_numpy()
                specs[col.name] = column_sdtype(col)
                if col.type in ("code", "text") and "range_values" in specs[col.name]:
                    specs[col.name].pop("range_values")
        return pd.DataFrame(out, index=frame.index), specs

    def _choose_anchored(self, node: Node, days: pd.Series, patients: np.ndarray | None, anchors: pd.Series) -> bool:
        """Keep whichever representation of a node's first date varies less in training: absolute or from the anchor."""
        if patients is None or self.anchor_ is None:
            return False
        offsets = (days - anchors.reindex(patients).to_numpy()).to_numpy(dtype="float64")
        absolute = days.to_numpy(dtype="float64")
        both = ~np.isnan(offsets) & ~np.isnan(absolute)
        if both.sum() < 2:
            return False
        return bool(np.std(offsets[both]) < np.std(absolute[both]))

    def _context(self, schema: Schema, node: Node, frames: dict[str, pd.DataFrame], anchors: pd.Series) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
        """Parent attributes joined onto each child row (the parent's encoded values)."""
        parent = self.nodes_[node.parent]  # type: ignore[index]
        pframe = frames[parent.name]
        pencoded, pspecs = self._encode(schema, parent, frames, anchors)
        if not node.context:
            candidates = []
            for col in pencoded.columns:
                spec = pspecs[col]
                if spec["sdtype"] == "numerical":
                    candidates.append(col)
                elif spec["sdtype"] in ("categorical", "boolean") and pencoded[col].nunique(dropna=True) <= MAX_CONTEXT_CATEGORIES:
                    candidates.append(col)
            node.context = candidates[:MAX_CONTEXT]
            for col in node.context:
                if pspecs[col]["sdtype"] == "numerical":
                    values = pd.to_numeric(pencoded[col], errors="coerce").dropna()
                    node.context_bins[col] = np.unique(np.quantile(values, [0.25, 0.5, 0.75])) if len(values) else np.array([])
        key = parent.key if parent.name != VIRTUAL else schema.patient.column
        lookup = pencoded[node.context].set_axis(pframe[key].to_numpy())
        ctx = lookup.reindex(frames[node.name][node.fk].to_numpy()).reset_index(drop=True)
        ctx.columns = [f"__ctx_{c}" for c in node.context]
        ctx.index = frames[node.name].index
        specs = {f"__ctx_{c}": pspecs[c] for c in node.context}
        return ctx, specs

    # -- sample ----------------------------------------------------------------------------------
    def _sample(self, n_patients: int, rng: np.random.Generator, seed: int) -> dict[str, pd.DataFrame]:
        schema = self.schema_
        assert schema is not None
        encoded: dict[str, pd.DataFrame] = {}
        keys: dict[str, np.ndarray] = {}
        patients: dict[str, np.ndarray] = {}
        order = self._order()
        for i, name in enumerate(order):
            node = self.nodes_[name]
            assert node.model is not None
            if node.parent is None:
                rows = node.model.sample(n_patients, seed=seed * 7919 + i)
                keys[name] = np.arange(n_patients)
                patients[name] = keys[name]
                rows["__parent"] = -1
            elif (custom := self._sample_node(node, encoded[node.parent], rng, seed * 7919 + i)) is not None:
                rows = custom
                keys[name] = np.arange(len(rows))
                patients[name] = patients[node.parent][rows["__parent"].to_numpy()] if len(rows) else np.array([], dtype=int)
            else:
                parent_rows = encoded[node.parent]
                counts = pd.to_numeric(parent_rows.get(f"__n_{name}", 0), errors="coerce").fillna(0).clip(lower=0).round().astype(int).to_numpy()
                slots = np.repeat(np.arange(len(parent_rows)), counts)
                pool = self._valid_pool(node, int(np.ceil(len(slots) * 1.5)) + 1 if len(slots) else 0, seed * 7919 + i)
                rows = self._assign(node, parent_rows, slots, pool, rng)
                keys[name] = np.arange(len(rows))
                patients[name] = patients[node.parent][rows["__parent"].to_numpy()] if len(rows) else np.array([], dtype=int)
            encoded[name] = rows
        return self._decode(encoded, keys, patients)

    def _sample_node(self, node: Node, parent_rows: pd.DataFrame, rng: np.random.Generator, seed: int) -> pd.DataFrame | None:
        """Rows of a child table drawn by a model of its own (with ``__parent``), or None for the default."""
        return None

    def _valid_pool(self, node: Node, n: int, seed: int) -> pd.DataFrame:
        """``n`` model rows that satisfy the table's row-local rules, drawing more while too few pass."""
        assert node.model is not None
        if n == 0 or node.name not in self.schema_.tables:  # type: ignore[union-attr]
            return node.model.sample(n, seed=seed)
        kept: list[pd.DataFrame] = []
        have, draw = 0, n
        for attempt in range(self.max_rounds + 2):
            pool = node.model.sample(draw, seed=seed + attempt * 104_729)
            mask = local_rule_mask(self.schema_, node.name, self._decode_rows(node, pool))  # type: ignore[arg-type]
            self._note_rejected(node.name, int((~mask).sum()))
            kept.append(pool[mask])
            have += int(mask.sum())
            if have >= n:
                break
            rate = max(mask.mean(), 0.1)  # at most 10x what is missing per draw: bounded cost
            draw = int(np.ceil((n - have) / rate * 1.2)) + 1
        out = pd.concat(kept, ignore_index=True)
        if len(out) < n:  # still short: fill with unfiltered rows, left to the enforcement pass
            out = pd.concat([out, node.model.sample(n - len(out), seed=seed + 7)], ignore_index=True)
        return out.iloc[:n].reset_index(drop=True)

    def _decode_rows(self, node: Node, rows: pd.DataFrame, base: np.ndarray | float = 0.0) -> pd.DataFrame:
        """Rows in the table's own attribute columns: dates back from day offsets (``base`` = anchor days)."""
        out = pd.DataFrame(index=range(len(rows)))
        first: np.ndarray | None = None
        for col in node.attributes:
            if col in node.dates:
                values = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype="float64")
                if first is None:
                    first = values + base
                    out[col] = _from_days(pd.Series(first))
                else:
                    out[col] = _from_days(pd.Series(values + first))
            else:
                out[col] = rows[col].to_numpy()
        return out

    def _order(self) -> list[str]:
        return breadth_first(self.root_, lambda name: self.nodes_[name].children)

    def _match_keys(self, node: Node, values: pd.DataFrame) -> np.ndarray:
        """A hashable context key per row: categories as they are, numbers by quartile bin."""
        if not node.context:
            return np.zeros(len(values), dtype=np.int64)
        parts = []
        for col in node.context:
            v = values[col]
            if col in node.context_bins:
                num = pd.to_numeric(v, errors="coerce").to_numpy(dtype="float64")
                part = np.where(np.isnan(num), -1, np.searchsorted(node.context_bins[col], num))
                parts.append(pd.Series(part).astype(str).to_numpy())
            else:
                parts.append(v.astype(str).to_numpy())
        joined = parts[0].astype(object)
        for p in parts[1:]:
            joined = joined + "|" + p.astype(object)
        return pd.factorize(joined)[0]

    def _assign(self, node: Node, parent_rows: pd.DataFrame, slots: np.ndarray, pool: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Give each parent slot a sampled child row with the same parent context where possible."""
        if len(slots) == 0:
            return pool.iloc[0:0].assign(__parent=np.array([], dtype=int))
        ctx_cols = [f"__ctx_{c}" for c in node.context]
        slot_ctx = parent_rows.iloc[slots][node.context].reset_index(drop=True)
        pool_ctx = pool[ctx_cols].set_axis(node.context, axis=1) if ctx_cols else pool.iloc[:, :0]
        both = pd.concat([slot_ctx, pool_ctx], ignore_index=True) if node.context else pd.DataFrame(index=range(len(slots) + len(pool)))
        codes = self._match_keys(node, both) if node.context else np.zeros(len(both), dtype=np.int64)
        slot_key, pool_key = codes[: len(slots)], codes[len(slots):]
        slot_rank = _rank_within(slot_key, rng)
        pool_rank = _rank_within(pool_key, rng)
        pool_index = pd.Series(np.arange(len(pool)), index=pd.MultiIndex.from_arrays([pool_key, pool_rank]))
        matched = pool_index.reindex(pd.MultiIndex.from_arrays([slot_key, slot_rank])).to_numpy()
        taken = np.zeros(len(pool), dtype=bool)
        ok = ~np.isnan(matched)
        taken[matched[ok].astype(int)] = True
        free = np.flatnonzero(~taken)
        need = np.flatnonzero(~ok)
        fill = rng.permutation(free)[: len(need)]
        if len(fill) < len(need):
            fill = np.concatenate([fill, rng.choice(len(pool), len(need) - len(fill))])
        chosen = matched.copy()
        chosen[need] = fill
        rows = pool.iloc[chosen.astype(int)].drop(columns=ctx_cols).reset_index(drop=True)
        rows["__parent"] = slots
        return rows

    def _decode(self, encoded: dict[str, pd.DataFrame], keys: dict[str, np.ndarray], patients: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
        """Surrogate keys, absolute dates and schema columns for every table."""
        schema = self.schema_
        assert schema is not None
        pcol = schema.patient.column
        root_rows = encoded[self.root_]
        anchor_days = (
            pd.to_numeric(root_rows[self.anchor_], errors="coerce").fillna(0.0).to_numpy()
            if self.anchor_ is not None
            else np.zeros(len(root_rows))
        )
        frames: dict[str, pd.DataFrame] = {}
        for name, node in self.nodes_.items():
            rows = encoded[name]
            out = self._decode_rows(node, rows, anchor_days[patients[name]] if node.anchored else 0.0)
            if node.key is not None:
                out[node.key] = keys[name]
            if node.fk is not None:
                parent = self.nodes_[node.parent]  # type: ignore[index]
                parent_keys = keys[parent.name]
                out[node.fk] = parent_keys[rows["__parent"].to_numpy()] if len(rows) else np.array([], dtype=int)
            if name == self.root_:
                out[pcol] = keys[name]
            if name in schema.tables:
                for col in schema.tables[name].columns_of_type("id"):
                    if col.name in out:
                        continue
                    if col.foreign_key is not None:
                        out[col.name] = np.full(len(out), np.nan)  # secondary keys: filled by synth.generators.links
                    else:
                        out[col.name] = np.arange(len(out))  # ids no child refers to: fresh, unique
            frames[name] = out
        if self.root_ == VIRTUAL:
            static = frames.pop(VIRTUAL)
            child = frames[schema.patient.table]
            merged = child.merge(static, left_on=pcol, right_on=pcol, how="left")
            frames[schema.patient.table] = merged
        for name in schema.tables:
            table = schema.tables[name]
            if name not in frames:
                frames[name] = pd.DataFrame(columns=list(table.columns))
        return frames

    def _resample(self, table: str, frames: dict[str, pd.DataFrame], rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame | None:
        node = self.nodes_.get(table)
        if node is None or node.model is None:
            return None
        schema = self.schema_
        assert schema is not None
        fresh = self._valid_pool(node, len(rows), int(rng.integers(2**31)))
        frame = frames[table].iloc[rows]
        base: np.ndarray | float = 0.0
        if node.dates and node.anchored:
            root = frames[schema.patient.table]
            anchor = pd.Series(_days(root[self.anchor_]).fillna(0.0).to_numpy(), index=root[schema.patient.column].to_numpy())
            anchor = anchor[~anchor.index.duplicated()]
            base = anchor.reindex(self._patient_keys_of_rows(schema, table, frames, frame)).fillna(0.0).to_numpy()
        return self._decode_rows(node, fresh, base)

    def _patient_keys_of_rows(self, schema: Schema, table: str, frames: dict[str, pd.DataFrame], frame: pd.DataFrame) -> np.ndarray:
        col = schema.patient_column_of(table)
        if col is not None:
            return frame[col].to_numpy()
        path = schema.path_to_patient(table)
        keys = frame[path[0][1]].to_numpy()
        for _child, _fk, parent, pcol in path[:-1]:
            pframe = frames[parent]
            nxt = schema.path_to_patient(parent)[0][1]
            lookup = pd.Series(pframe[nxt].to_numpy(), index=pframe[pcol].to_numpy())
            lookup = lookup[~lookup.index.duplicated()]
            keys = lookup.reindex(keys).to_numpy()
        return keys


def _attribute_columns(schema: Schema, table: str) -> list[str]:
    """Columns a model may see: not ids, not direct identifiers."""
    return [c.name for c in schema.tables[table].columns.values() if c.type != "id" and c.privacy != "direct_identifier"]


def _rank_within(keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random rank of each element among the elements sharing its key."""
    order = np.lexsort((rng.random(len(keys)), keys))
    ranks = np.empty(len(keys), dtype=np.int64)
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    ranks[order] = np.arange(len(keys)) - group_start
    return ranks
