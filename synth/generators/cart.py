"""``cart``: sequential CART synthesis (synthpop style) over the schema tree, with per-parent event sequences.

Each table is synthesised column by column: a decision tree predicts column j from the columns before it
(and, below the root, from the parent row and the previous row of the same parent); a synthetic row
falls into a leaf and takes the value of a random training row of that leaf (a *donor*). Leaves hold
at least ``min_leaf`` training rows. Donor values keep spikes, zero inflation, rounding and missing
values exactly as they are in training, which is what a gradient-boosting detector looks for first.

Child tables are generated as sequences within their parent row (claims within a patient, events
within an encounter): how many rows a parent has is a column of the parent (``__n_<child>``, so zero
inflation comes from donors too); a child row is predicted from the parent's attributes, its position
(index, count, rows left), the previous row of the same parent (every column, lagged) and, for a table
ordered by a date, the time since the previous event (``__t``: the gap, or the first event's offset from
the parent's first date) and the time elapsed since the parent's anchor. Gaps are non-negative donors,
so events come out in date order within their parent; same-day clusters (a visit and its pharmacy fill)
come from the gap being predicted from the previous event. A column that is a function of another in
training (Synthea's CODE of a DESCRIPTION) is looked up, never drawn, where the other column's values repeat
(one with a different value on most rows, a small table's per-patient amount, determines every column only
trivially: deriving from it replayed whole training rows).

A table with foreign keys to several patient-side tables hangs under the deepest one whose key is never
missing in training (Synthea's conditions under their encounter, not directly under the patient), so
events per admission and dates within an admission are modelled; the patient key is then the parent's.
Rows that break a schema rule are redrawn from their leaves (up to ``repair_rounds`` times) before the
base class's enforcement drops what is left. Secondary keys to reference tables are filled by
``synth.generators.links``.

Rare values (``min_patients=k``, ``synth.generators.rare``), two ways, chosen by ``rare_values``:
``"generalise"`` (the default) emits a value held by fewer than ``k`` training patients as its
generalisation (a code's parent group, else a missing value or the column's most frequent value): right
where a vocabulary has a hierarchy (ICD-10, KCD, ATC). ``"resample"`` never draws it: a categorical or
code cell whose donor is rare takes another donor of the same leaf among the values ``k`` or more training
patients hold (the model's own conditional distribution, rare values left out), or of the column's
marginal when its leaf has none; for vocabularies without a hierarchy (Synthea's SNOMED and RxNorm codes),
where generalising leaves a placeholder (a missing or most frequent value) that a detector finds. A derived
column stays common through its source (a source value is drawn only where the value it gives is common); a
column with no common value at all still goes through the generalisation. ``min_patients`` also holds the share of
synthetic patients whose quasi-identifiers point at a training class of fewer than ``k`` patients to a fresh
patient's (``_fresh_classes``, classes as ``privacy.k_anonymity`` counts them: ``synth.qi_classes``).

References: Reiter (2005) "Using CART to generate partially synthetic public use microdata"; Nowok,
Raab & Dibben (2016) "synthpop: Bespoke creation of synthetic data in R".
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data_schemas.model import Schema
from synth.errors import GeneratorError
from synth.generators.base import Generator, Progress, TrainingData, _drop_rows, _violations, breadth_first
from synth.generators.registry import register
from synth.qi_classes import QiClasses

VIRTUAL = "__patient__"
EPOCH = pd.Timestamp("1970-01-01")
MAX_DAYS = 106_000  # pandas' nanosecond dates end 106,751 days either side of 1970
MAX_CLASSES = 40  # a categorical target with more values is fitted on its most frequent ones (+ "other")
MAX_PARENT_FEATURES = 24
MAX_ROOT_FEATURES = 10
UPPER_SHARE = 0.995  # a parent date is a sequence's upper bound when this share of training rows respects it
T = "__t"  # the time column of a dated table: gap from the previous row, or the first row's offset
LEAF = "__leaf"  # prefix of a sampled child count's leaf (kept until the counts are calibrated)
COUNT_TOLERANCE = 0.02  # a child table's synthetic rows per patient are brought within 2% of training's
TAIL_QUANTILE = 0.97  # a root count's training values above this quantile count as its tail (see _tail)
END_FEATURES = ("__until_end", "__pace")  # predictors of a sequence's gaps only (see _until_end)
TOTAL = "__n_*"  # prefix of a root column counting a deeper table's rows per patient (``__n_*conditions``)
RARE_VALUES = ("generalise", "resample")  # how min_patients keeps rare values out (module docstring)
FRESH_ROUNDS = 8  # redraws of the patients over fresh patients' share of small quasi-identifier classes (_fresh_classes)
MIN_REPEATED = 0.5  # share of rows whose value another row shares, for a column to be a derivation source


def _days(values: pd.Series) -> np.ndarray:
    """Fractional days since 1970 (NaN where missing): keeps the time of day of timestamps."""
    ts = pd.to_datetime(values, errors="coerce")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(None)
    return ((ts - EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype="float64")


def _from_days(days: np.ndarray) -> pd.Series:
    """Timestamps from fractional days (NaT where missing or out of pandas' range), to the second."""
    days = np.asarray(days, dtype="float64")
    ok = np.isfinite(days) & (np.abs(days) < MAX_DAYS)
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[ok] = (np.rint(days[ok] * 86_400).astype("int64") * 1_000_000_000).astype("datetime64[ns]")
    return pd.Series(out)


@dataclass
class Leaves:
    """One column's model: a tree over its predictors and the training values (donors) in each leaf."""

    features: list[str]
    tree: Any  # a fitted sklearn tree, or None: draw from the column's marginal
    starts: np.ndarray
    counts: np.ndarray
    donors: np.ndarray

    def leaves(self, x: np.ndarray | None, n: int) -> np.ndarray:
        """The leaf of each of ``n`` rows (``x``: their predictors, in ``features`` order)."""
        if self.tree is None or x is None:
            return np.zeros(n, dtype=np.int64)
        # the fitted tree's own apply (sklearn's public one re-validates on every call: slow in a loop)
        return self.tree.tree_.apply(np.ascontiguousarray(x, dtype=np.float32)).astype(np.int64)

    def draw(self, x: np.ndarray | None, rng: np.random.Generator, n: int) -> np.ndarray:
        """A donor value for each of ``n`` rows (``x``: their predictors, in ``features`` order)."""
        return self.pick(self.leaves(x, n), rng)

    def pick(self, leaf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random donor of each given leaf."""
        pick = self.starts[leaf] + np.floor(rng.random(len(leaf)) * self.counts[leaf]).astype(np.int64)
        return self.donors[pick]

    def pick_balanced(self, leaf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A donor of each given leaf, the rows of a leaf taking its donors in turn (each donor once per round, the
        last round's donors at random, in random order): the leaf's distribution without the noise of draws
        with replacement (a small cohort's children per parent)."""
        leaf = np.asarray(leaf, dtype=np.int64)
        pick = np.empty(len(leaf), dtype=np.int64)
        order = np.argsort(leaf, kind="stable")
        values, first, sizes = np.unique(leaf[order], return_index=True, return_counts=True)
        for value, start, m in zip(values, first, sizes):
            k = int(self.counts[value])
            turns = np.concatenate([np.tile(np.arange(k), m // k), rng.choice(k, m % k, replace=False)])
            pick[order[start:start + m]] = self.starts[value] + rng.permutation(turns)
        return self.donors[pick]

    def within(self, leaf: np.ndarray, drawn: np.ndarray, cap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``drawn`` with each value above its row's ``cap`` redrawn from the donors of its leaf at or under it (the
        leaf's smallest donor where none is)."""
        drawn = np.asarray(drawn, dtype="float64").copy()
        for row in np.flatnonzero(np.nan_to_num(drawn) > cap):
            start, k = int(self.starts[leaf[row]]), int(self.counts[leaf[row]])
            donors = np.nan_to_num(np.asarray(self.donors[start:start + k], dtype="float64"))
            ok = donors[donors <= cap[row]]
            drawn[row] = ok[rng.integers(ok.size)] if ok.size else donors.min()
        return drawn


@dataclass
class Node:
    """A table in the generation tree and its fitted column models."""

    name: str
    parent: str | None
    fk: str | None  # column of this table holding the parent's surrogate key
    parent_key: str | None  # the parent's key column
    key: str | None = None  # this table's own key column, if children hang under it
    patient_col: str | None = None  # column holding the patient key, when it is not ``fk``
    children: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numerical: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)  # first date (as __t or absolute days) first
    sequence: bool = False  # ordered by its first date within the parent: __t is a gap
    anchored: bool = False  # __t of a first row is an offset from the parent's anchor date
    static: list[str] = field(default_factory=list)  # virtual root only
    chain: list[str] = field(default_factory=list)  # modelled columns, in synthesis order
    derived: dict[str, tuple[str, dict[Any, Any]]] = field(default_factory=dict)
    ordinals: dict[str, dict[Any, int]] = field(default_factory=dict)
    models: dict[str, Leaves] = field(default_factory=dict)
    context: list[str] = field(default_factory=list)  # parent / root columns used as predictors
    root_context: list[str] = field(default_factory=list)
    upper: list[str] = field(default_factory=list)  # parent dates no row of this sequence ever passed in training
    positional: dict[str, float] = field(default_factory=dict)  # column -> c where it equals index + c in training
    lower: bool = False  # no first row of this sequence came before its parent's anchor date in training
    below: dict[str, list[str]] = field(default_factory=dict)  # column -> earlier columns it never exceeded in training
    above: dict[str, list[str]] = field(default_factory=dict)  # column -> earlier columns it was never below
    per_patient: dict[str, float] = field(default_factory=dict)  # child -> its training rows per patient
    tails: dict[str, tuple[float, float]] = field(default_factory=dict)  # root only: child -> (TAIL_QUANTILE point, mean below it)
    companions: dict[str, tuple[str, float]] = field(default_factory=dict)  # root total -> (count it hangs under, max ratio)
    end: float = float("nan")  # a sequence's observation end: the latest absolute day of its (or its parent's) first date in training
    lowest: float = float("-inf")  # the earliest offset of a first row from its parent's anchor in training
    calendar: dict[str, float] = field(default_factory=dict)  # root only: later date drawn as a calendar day -> least offset


@register
class CartGenerator(Generator):
    """Sequential CART synthesis over the schema tree with per-parent sequences (see the module docstring)."""

    name: ClassVar[str] = "cart"
    family: ClassVar[str] = "tree-sequential"
    description: ClassVar[str] = (
        "CART per column with donor values (synthpop style); child rows as sequences within their parent "
        "(counts, gaps, previous row), events under their admission"
    )
    links_keys: ClassVar[bool] = True

    def __init__(
        self,
        *,
        min_leaf: int = 10,
        max_rows_per_table: int | None = 200_000,
        repair_rounds: int = 6,
        min_patients: int | None = None,
        rare_values: str = "generalise",
    ) -> None:
        super().__init__(min_patients=min_patients)
        if rare_values not in RARE_VALUES:
            raise GeneratorError(
                f"The 'rare_values' parameter of cart must be one of {', '.join(map(repr, RARE_VALUES))}; got {rare_values!r} instead."
            )
        if not isinstance(min_leaf, int) or isinstance(min_leaf, bool) or min_leaf < 1:
            raise GeneratorError(f"The 'min_leaf' parameter of cart must be an int >= 1; got {min_leaf!r} instead.")
        if max_rows_per_table is not None and (not isinstance(max_rows_per_table, int) or max_rows_per_table < 100):
            raise GeneratorError(
                f"The 'max_rows_per_table' parameter of cart must be an int >= 100 or None; got {max_rows_per_table!r} instead."
            )
        if not isinstance(repair_rounds, int) or repair_rounds < 0:
            raise GeneratorError(f"The 'repair_rounds' parameter of cart must be an int >= 0; got {repair_rounds!r} instead.")
        self.min_leaf = min_leaf
        self.max_rows_per_table = max_rows_per_table
        self.repair_rounds = repair_rounds
        self.rare_values = rare_values
        self.nodes_: dict[str, Node] = {}
        self.root_: str = ""
        self.tree_keys_: set[tuple[str, str]] = set()
        self.numbered_: dict[str, tuple[list[str], str, float]] = {}

    def get_params(self) -> dict[str, Any]:
        return {
            **super().get_params(),
            "min_leaf": self.min_leaf,
            "max_rows_per_table": self.max_rows_per_table,
            "repair_rounds": self.repair_rounds,
            **({"rare_values": self.rare_values} if self.min_patients is not None else {}),  # it acts with min_patients only
        }

    # -- structure -------------------------------------------------------------------------------
    def _build_tree(self, data: TrainingData) -> dict[str, pd.DataFrame]:
        """Nodes from the patient root down; each table under its deepest never-missing patient-side key."""
        schema = data.schema
        frames = dict(data.frames)
        ptable, pcol = schema.patient.table, schema.patient.column
        nodes: dict[str, Node] = {}
        if frames[ptable][pcol].is_unique:
            self.root_ = ptable
            nodes[ptable] = Node(ptable, None, None, None, key=pcol)
        else:
            self.root_ = VIRTUAL
            attrs = _attribute_columns(schema, ptable)
            grouped = frames[ptable].groupby(pcol, sort=False)
            static = [c for c in attrs if grouped[c].nunique(dropna=False).max() <= 1]
            frames[VIRTUAL] = frames[ptable].groupby(pcol, sort=True, as_index=False).first()[[pcol, *static]]
            nodes[VIRTUAL] = Node(VIRTUAL, None, None, None, key=pcol, static=static)
            nodes[ptable] = Node(ptable, VIRTUAL, pcol, pcol)
        depth: dict[str, int] = {self.root_: 0}
        if self.root_ == VIRTUAL:
            depth[ptable] = 1
        pending = [t for t in schema.topological_order() if t not in nodes and not schema.tables[t].reference]
        for _ in range(len(pending) + 1):
            if not pending:
                break
            for name in list(pending):
                link = self._parent_link(schema, frames, name, depth)
                if link is None:
                    continue
                fk, parent, parent_key = link
                nodes[name] = Node(name, parent, fk, parent_key)
                depth[name] = depth[parent] + 1
                pending.remove(name)
        if pending:
            raise GeneratorError(f"table(s) {', '.join(pending)} have no parent in the schema; cart cannot place them")
        for node in nodes.values():
            if node.parent is None:
                continue
            nodes[node.parent].children.append(node.name)
            if node.parent != VIRTUAL:
                nodes[node.parent].key = node.parent_key
            patient_col = schema.patient_column_of(node.name)
            if patient_col is not None and patient_col != node.fk:
                node.patient_col = patient_col
            if node.name != ptable and node.fk is not None:
                self.tree_keys_.add((node.name, node.fk))
        self.nodes_ = nodes
        return frames

    def _parent_link(
        self, schema: Schema, frames: dict[str, pd.DataFrame], name: str, depth: dict[str, int]
    ) -> tuple[str, str, str] | None:
        """(fk column, parent node, parent key) of a table: the deepest placed parent with a unique, complete key."""
        ptable, pcol = schema.patient.table, schema.patient.column
        best: tuple[int, int, tuple[str, str, str]] | None = None
        for i, col in enumerate(schema.tables[name].foreign_keys):
            target, tcol = col.foreign_key  # type: ignore[misc]
            if target == name or target not in schema.tables or schema.tables[target].reference:
                continue
            if target == ptable and tcol == pcol and self.root_ == VIRTUAL:
                target = VIRTUAL
            if target not in depth:
                if target != VIRTUAL and target in schema.tables:
                    return None  # wait until the target is placed
                continue
            if target not in (VIRTUAL, ptable):
                if not frames[target][tcol].is_unique or frames[name][col.name].isna().any():
                    continue
            candidate = (depth[target], -i, (col.name, target, tcol))
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        return best[2] if best else None

    # -- fit -------------------------------------------------------------------------------------
    def _fit(self, data: TrainingData, progress: Progress) -> None:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: F401  (import outside the clock)

        schema = data.schema
        frames = self._build_tree(data)
        self.numbered_ = _numbered_keys(schema, frames)
        self.qi_ = QiClasses.fit(schema, data.frames[schema.patient.table], frames[self.root_], self.min_patients) if self.min_patients else None
        rng = np.random.default_rng(0)
        encoded: dict[str, pd.DataFrame] = {}
        anchors: dict[str, np.ndarray] = {}  # absolute day of each training row's anchor (its first date)
        order = breadth_first(self.root_, lambda n: self.nodes_[n].children)
        started = time.monotonic()
        for step, name in enumerate(order):
            node = self.nodes_[name]
            frame = frames[name]
            parent_pos = None
            if node.parent is not None:
                pnode = self.nodes_[node.parent]
                pframe = frames[node.parent]
                pkey = pnode.key if node.parent != VIRTUAL else schema.patient.column
                lookup = pd.Series(np.arange(len(pframe)), index=pframe[pkey].to_numpy())
                lookup = lookup[~lookup.index.duplicated()]
                parent_pos = lookup.reindex(frame[node.fk].to_numpy()).to_numpy(dtype="float64")
                keep = ~np.isnan(parent_pos)
                frame, parent_pos = frame[keep], parent_pos[keep].astype(np.int64)
            enc, own_anchor, frame, parent_pos = self._encode(schema, node, frame, parent_pos, anchors)
            frames[name] = frame.reset_index(drop=True)
            for child in node.children:
                cnode = self.nodes_[child]
                key = node.key if name != VIRTUAL else schema.patient.column
                counts = frames[child].groupby(cnode.fk).size()
                enc[f"__n_{child}"] = frames[name][key].map(counts).fillna(0).to_numpy(dtype="float64")
                node.numerical.append(f"__n_{child}")
                node.per_patient[child] = float(enc[f"__n_{child}"].sum()) / max(len(encoded.get(self.root_, enc)), 1)
                if node.parent is None:
                    node.tails[child] = _tail(enc[f"__n_{child}"].to_numpy(dtype="float64"))
            if node.parent is None:  # rows per patient of the tables below the patient's children (conditions per patient)
                key = node.key if name != VIRTUAL else schema.patient.column
                for deeper in order:
                    if self.nodes_[deeper].parent not in (None, name):
                        counts = pd.Series(self._root_keys(frames, deeper)).value_counts()
                        enc[TOTAL + deeper] = frames[name][key].map(counts).fillna(0).to_numpy(dtype="float64")
                        node.numerical.append(TOTAL + deeper)
                        node.per_patient["*" + deeper] = float(enc[TOTAL + deeper].sum()) / max(len(enc), 1)
                        node.tails["*" + deeper] = _tail(enc[TOTAL + deeper].to_numpy(dtype="float64"))
                        via = deeper
                        while self.nodes_[via].parent != name:
                            via = self.nodes_[via].parent  # type: ignore[assignment]
                        under = enc[f"__n_{via}"].to_numpy(dtype="float64")
                        ratio = enc[TOTAL + deeper].to_numpy(dtype="float64")[under > 0] / under[under > 0]
                        node.companions[TOTAL + deeper] = (f"__n_{via}", float(ratio.max()) if ratio.size else 0.0)
            node.chain = self._chain_order(node, enc)
            node.derived = _functional_dependencies(enc, node.categorical, node.chain, node.numerical)
            node.chain = [c for c in node.chain if c not in node.derived]
            if parent_pos is not None:  # a line or sequence number (1..n within the parent) is set, not drawn
                pos, _n = _positions(parent_pos)
                for col in list(node.chain):
                    if col in node.numerical and not col.startswith("__") and col != T:
                        v = enc[col].to_numpy(dtype="float64")
                        if len(v) and np.isfinite(v).all() and np.all(v - pos == v[0] - pos[0]):
                            node.positional[col] = float(v[0] - pos[0])
                            node.chain.remove(col)
            node.below, node.above = _inequalities(enc, node)
            for col in node.categorical:
                node.ordinals[col] = _ordinal_map(enc[col])
            encoded[name] = enc
            anchors[name] = own_anchor
            features = self._features(schema, node, enc, parent_pos, encoded)
            self._fit_chain(node, enc, features, rng)
            elapsed = time.monotonic() - started
            progress(f"cart: fitted {name} ({len(enc):,} rows, {len(node.chain)} columns) [{step + 1}/{len(order)} tables, {elapsed:.0f} s]")

    def _encode(
        self, schema: Schema, node: Node, frame: pd.DataFrame, parent_pos: np.ndarray | None, anchors: dict[str, np.ndarray]
    ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray | None]:
        """A node's attributes as modelled (dates as __t and offsets), its rows in sequence order, each row's anchor day."""
        if node.name == VIRTUAL:
            cols = [schema.patient_table.columns[c] for c in node.static]
        else:
            virtual_static = self.nodes_[VIRTUAL].static if VIRTUAL in self.nodes_ and node.name == schema.patient.table else []
            table = schema.tables[node.name]
            cols = [table.columns[c] for c in _attribute_columns(schema, node.name) if c not in virtual_static]
        dates = [c.name for c in cols if c.type == "datetime"]
        table = schema.tables.get(node.name)
        order_by = table.order_by if table is not None else None
        if dates:
            first = order_by if order_by in dates else min(dates, key=lambda c: (frame[c].isna().mean(), dates.index(c)))
            dates = [first, *[d for d in dates if d != first]]
        node.dates = dates
        node.sequence = bool(dates) and node.parent is not None and dates[0] == order_by
        parent_anchor = None
        if parent_pos is not None and node.parent in anchors:
            parent_anchor = anchors[node.parent][parent_pos]
            node.anchored = bool(np.isfinite(parent_anchor).mean() > 0.5) if len(parent_anchor) else False
        order = np.arange(len(frame))
        days0 = _days(frame[dates[0]]) if dates else np.zeros(len(frame))
        if parent_pos is not None:
            sort_days = np.where(np.isnan(days0), np.inf, days0) if node.sequence else np.zeros(len(frame))
            order = np.lexsort((np.arange(len(frame)), sort_days, parent_pos))
        frame = frame.iloc[order].reset_index(drop=True)
        days0 = days0[order]
        if parent_pos is not None:
            parent_pos = parent_pos[order]
            if parent_anchor is not None:
                parent_anchor = parent_anchor[order]
        out: dict[str, Any] = {}
        for col in cols:
            if col.type == "datetime":
                continue
            values = frame[col.name]
            if col.type == "numerical":
                out[col.name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
                node.numerical.append(col.name)
            else:
                out[col.name] = values.astype(object).where(values.notna(), None).to_numpy()
                node.categorical.append(col.name)
        if dates and parent_anchor is not None and node.anchored:
            node.anchored = _offsets_vary_less(days0, parent_anchor, parent_pos)
        if dates:
            if node.parent is None:
                t = days0.copy()
            else:
                base = parent_anchor if node.anchored and parent_anchor is not None else np.zeros(len(frame))
                t = days0 - base
                if node.sequence:
                    prev = np.r_[np.nan, days0[:-1]]
                    same = np.r_[False, parent_pos[1:] == parent_pos[:-1]] if parent_pos is not None else np.zeros(len(frame), bool)
                    gap = days0 - np.where(np.isnan(prev), days0, prev)
                    t = np.where(same, gap, t)
            out[T] = t
            node.numerical.insert(0, T)
            for d in dates[1:]:
                out[d] = _days(frame[d]) - days0
                node.numerical.append(d)
                if node.parent is None and _calendar_bound(_days(frame[d]), out[d]):
                    node.calendar[d] = float(np.nanmin(out[d]))
        anchor = days0 if dates else (parent_anchor if parent_anchor is not None else np.full(len(frame), np.nan))
        enc = pd.DataFrame(out, index=range(len(frame)))
        if parent_pos is not None:
            enc["__parent"] = parent_pos
            enc["__panchor"] = parent_anchor if parent_anchor is not None else np.full(len(frame), np.nan)
        return enc, np.asarray(anchor, dtype="float64"), frame, parent_pos

    def _root_keys(self, frames: dict[str, pd.DataFrame], name: str) -> np.ndarray:
        """The patient (root) key of each training row of a table, following the tree's keys up."""
        node = self.nodes_[name]
        keys = frames[name][node.fk].to_numpy()
        current = node.parent
        while current != self.root_:
            pnode = self.nodes_[current]  # type: ignore[index]
            lookup = pd.Series(frames[current][pnode.fk].to_numpy(), index=frames[current][pnode.key].to_numpy())  # type: ignore[index]
            keys = lookup[~lookup.index.duplicated()].reindex(keys).to_numpy()
            current = pnode.parent
        return keys

    @staticmethod
    def _chain_order(node: Node, enc: pd.DataFrame) -> list[str]:
        """Synthesis order: time first, then categories (fewest values first), numbers, offsets, child counts."""
        cats = sorted(node.categorical, key=lambda c: (pd.Series(enc[c]).nunique(dropna=False), node.categorical.index(c)))
        nums = [c for c in node.numerical if c != T and not c.startswith("__n_") and c not in node.dates]
        offsets = [c for c in node.dates[1:]]
        counts = [c for c in node.numerical if c.startswith("__n_")]
        return ([T] if T in enc else []) + cats + nums + offsets + counts

    def _features(
        self, schema: Schema, node: Node, enc: pd.DataFrame, parent_pos: np.ndarray | None, encoded: dict[str, pd.DataFrame]
    ) -> pd.DataFrame:
        """Predictors of a node's rows besides their own earlier columns: position, parent, root, previous row."""
        if node.parent is None:
            return pd.DataFrame(index=enc.index)
        pnode = self.nodes_[node.parent]
        penc = encoded[node.parent]
        if not node.context:
            node.context = [c for c in pnode.chain if c not in pnode.derived][:MAX_PARENT_FEATURES]
            node.context += [TOTAL + c for c in node.children if TOTAL + c in pnode.chain and TOTAL + c not in node.context]
            if pnode.parent is not None:
                root = self.nodes_[self.root_]
                node.root_context = [c for c in root.chain if not c.startswith("__n_")][:MAX_ROOT_FEATURES]
        assert parent_pos is not None
        pos, n = _positions(parent_pos)
        feats: dict[str, np.ndarray] = {"__i": pos.astype("float64"), "__count": n.astype("float64"), "__left": (n - pos - 1).astype("float64")}
        for c in node.context:
            feats[f"__p_{c}"] = _numeric(pnode, c, penc[c].to_numpy())[parent_pos]
        if node.root_context:
            root_pos = self._root_positions(node, parent_pos, encoded)
            root = self.nodes_[self.root_]
            renc = encoded[self.root_]
            for c in node.root_context:
                feats[f"__r_{c}"] = _numeric(root, c, renc[c].to_numpy())[root_pos]
        first = pos == 0
        for c in node.chain:
            values = _numeric(node, c, enc[c].to_numpy())
            feats[f"__lag_{c}"] = np.where(first, np.nan, np.r_[np.nan, values[:-1]])
        for child in self._totals(node, penc):  # the patient's rows of a grandchild table not yet given to earlier rows
            counts = enc[f"__n_{child}"].to_numpy(dtype="float64")
            before = _cumsum_within(counts, parent_pos) - counts
            feats.update(_rest(penc[TOTAL + child].to_numpy(dtype="float64")[parent_pos] - before, n - pos, child))
        if node.sequence:
            t = enc[T].to_numpy(dtype="float64")
            panchor = enc["__panchor"].to_numpy(dtype="float64")
            shift = np.zeros(len(t)) if node.anchored else -np.nan_to_num(panchor)
            # time from the parent's anchor to this row (absolute-day sequences are shifted onto it)
            cursor = _cumsum_within(np.nan_to_num(t), parent_pos) + shift
            feats["__cursor"] = np.where(first, np.nan, np.r_[np.nan, cursor[:-1]])
            ok = np.isfinite(t) & np.isfinite(panchor) & first
            node.lower = bool(ok.any() and float(np.mean(cursor[ok] >= -1e-9)) >= UPPER_SHARE)
            node.lowest = float(np.min(cursor[ok])) if ok.any() else float("-inf")
            for d in pnode.dates[1:]:
                bound = pd.to_numeric(penc[d], errors="coerce").to_numpy(dtype="float64")[parent_pos]
                both = np.isfinite(bound) & np.isfinite(t) & np.isfinite(panchor)
                if both.any() and float(np.mean(cursor[both] <= bound[both] + 1e-9)) >= UPPER_SHARE:
                    node.upper.append(d)
            for d in pnode.dates[1:]:
                if d in node.context:
                    feats[f"__until_{d}"] = feats[f"__p_{d}"] - np.nan_to_num(feats["__cursor"])
            base = panchor if node.anchored else np.zeros(len(t))
            day = _cumsum_within(np.nan_to_num(t), parent_pos) + base  # each row's absolute day (NaN without an anchor)
            node.end = float(np.nanmax(day)) if np.isfinite(day).any() else float("nan")
            node.end = float(np.nanmax([node.end, getattr(pnode, "end", np.nan)])) if np.isfinite(node.end) else node.end
            if np.isfinite(node.end):
                previous = np.where(first, panchor, np.r_[np.nan, day[:-1]])
                feats.update(_until_end(node.end, previous, n - pos))
        return pd.DataFrame(feats, index=enc.index)

    def _totals(self, node: Node, penc: pd.DataFrame) -> list[str]:
        """Children of a node (under the root) whose rows per patient the root draws (``__n_*child``)."""
        return [c for c in node.children if node.parent == self.root_ and TOTAL + c in penc]

    def _root_positions(self, node: Node, parent_pos: np.ndarray, encoded: dict[str, pd.DataFrame]) -> np.ndarray:
        """Row of the root node for each row, following ``__parent`` up."""
        pos, current = parent_pos, node.parent
        while current != self.root_:
            pos = encoded[current]["__parent"].to_numpy()[pos]
            current = self.nodes_[current].parent
        return pos

    def _fit_chain(self, node: Node, enc: pd.DataFrame, features: pd.DataFrame, rng: np.random.Generator) -> None:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        idx = np.arange(len(enc))
        if self.max_rows_per_table and len(enc) > self.max_rows_per_table:
            idx = np.sort(rng.choice(len(enc), self.max_rows_per_table, replace=False))
        x_all = {c: features[c].to_numpy(dtype="float64")[idx] for c in features.columns}
        x_all = {c: v for c, v in x_all.items() if _informative(v)}
        for col in node.chain:
            raw = enc[col].to_numpy()[idx]
            numeric = _numeric(node, col, raw)
            names = [c for c in x_all if col == T or c not in END_FEATURES]  # time to the end: for the time column only
            # a calendar-bound date's donors are calendar days (its offset, the predictor of later columns, is not)
            donors = numeric + enc[T].to_numpy(dtype="float64")[idx] if col in node.calendar else raw
            if len(idx) < 2 * self.min_leaf or not names or _constant(raw):
                node.models[col] = _marginal(donors, names)
            else:
                x = np.column_stack([x_all[c] for c in names])
                if col in node.categorical:
                    target = _coarse(numeric)
                    tree = DecisionTreeClassifier(min_samples_leaf=self.min_leaf, random_state=0)
                else:
                    target = _ranks(_numeric(node, col, donors))
                    tree = DecisionTreeRegressor(min_samples_leaf=self.min_leaf, random_state=0)
                tree.fit(x, target)
                node.models[col] = _leaves(tree, tree.apply(x), donors, names)
            x_all[col] = numeric

    # -- sample ----------------------------------------------------------------------------------
    def _sample(self, n_patients: int, rng: np.random.Generator, seed: int) -> dict[str, pd.DataFrame]:
        schema = self.schema_
        assert schema is not None
        encoded: dict[str, pd.DataFrame] = {}
        order = breadth_first(self.root_, lambda n: self.nodes_[n].children)
        decoded: dict[str, pd.DataFrame] = {}
        abs_anchor: dict[str, np.ndarray] = {}
        for name in order:
            node = self.nodes_[name]
            if node.parent is None:
                enc = pd.DataFrame(self._draw_rows(node, {}, n_patients, rng), index=range(n_patients))
                enc = self._repair(node, enc, {}, encoded, decoded, abs_anchor, rng)
                enc = self._fresh_classes(node, enc, encoded, rng)
            else:
                enc, feats = self._draw_children(node, encoded, abs_anchor, rng)
                enc = self._repair(node, enc, feats, encoded, decoded, abs_anchor, rng)
            enc = self._calibrate_counts(node, enc, n_patients, rng, encoded)
            encoded[name] = enc
            abs_anchor[name] = self._anchor_days(node, enc, encoded, abs_anchor)
            decoded[name] = self._decode(node, enc, encoded, abs_anchor)
        return self._renumber(self._assemble(decoded))

    def _fresh_classes(self, node: Node, enc: pd.DataFrame, encoded: dict[str, pd.DataFrame], rng: np.random.Generator) -> pd.DataFrame:
        """With ``min_patients=k``: patients whose quasi-identifiers point at a training class of fewer than k patients
        are no more than fresh patients' share of them (``QiClasses.fresh_rate``); the excess, picked at random, are
        redrawn whole from the model, a redraw kept only when its class is new or holds k or more patients.

        Donor sampling draws training's values and so replays training's combinations more often than a fresh sample
        of the population hits them (Synthea's 119-patient cohorts: 0.52-0.62 against 0.48 for a fresh patient, which
        ``privacy.k_anonymity`` flags); redrawn rows are the model's own draws, so the joint stays the model's.
        """
        qi = getattr(self, "qi_", None)
        if qi is None or enc.empty:
            return enc
        small = qi.small(self._decode_rows(node, enc, self._anchor_days(node, enc, encoded, {})))
        allowed = int(np.floor(qi.fresh_rate * len(enc) + rng.random()))  # the expected share, without rounding bias
        targets = rng.permutation(np.flatnonzero(small))[: max(int(small.sum()) - allowed, 0)]
        if not targets.size:
            return enc
        enc = enc.copy()
        redrawn = 0
        for _ in range(FRESH_ROUNDS):
            m = max(4 * targets.size, 16)
            fresh = pd.DataFrame(self._draw_rows(node, {}, m, rng), index=range(m))
            fresh = self._repair(node, fresh, {}, encoded, {}, {}, rng)
            sizes = qi.class_sizes(self._decode_rows(node, fresh, self._anchor_days(node, fresh, encoded, {})))
            ok = np.flatnonzero((sizes == 0) | (sizes >= qi.k))[: targets.size]
            for c in enc.columns:
                column = enc[c].to_numpy().copy()
                column[targets[: ok.size]] = fresh[c].to_numpy()[ok]
                enc[c] = column
            redrawn += ok.size
            targets = targets[ok.size:]
            if not targets.size:
                break
        self._report.qi_redrawn += redrawn
        return enc

    def _renumber(self, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Key columns that number rows within the rest of their key in training (MIMIC's emar_seq within a
        subject) numbered the same way here, so drawn donors do not collide as duplicate keys."""
        for name, (groups, col, first) in getattr(self, "numbered_", {}).items():
            frame = frames.get(name)
            if frame is None or frame.empty or not all(g in frame and frame[g].notna().all() for g in groups):
                continue
            order = pd.to_numeric(frame[col], errors="coerce").fillna(np.inf)
            frame[col] = first - 1 + order.groupby([frame[g] for g in groups], sort=False).rank(method="first").to_numpy()
        return frames

    def _draw_rows(
        self,
        node: Node,
        feats: dict[str, np.ndarray],
        n: int,
        rng: np.random.Generator,
        *,
        keep: dict[str, np.ndarray] | None = None,
        limit: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Draw a node's chain for ``n`` rows whose predictors (besides their own columns) are ``feats``.

        ``keep``: columns given, not drawn. ``limit``: an upper bound on the time column (days to the
        parent's end dates): donors past it are redrawn from the same leaf, then cut to it.
        """
        values: dict[str, np.ndarray] = dict(feats)
        out: dict[str, np.ndarray] = {}
        common = self._common_values(node)
        for col in node.chain:
            model = node.models[col]
            x = np.column_stack([values[f] for f in model.features]).astype(np.float32) if model.features and n else None
            if keep is not None and col in keep:
                drawn = keep[col]
            elif col.startswith("__n_"):  # a child count: its leaf is kept for _calibrate_counts
                leaf = model.leaves(x, n) if n else np.zeros(0, dtype=np.int64)
                out[LEAF + col] = leaf
                drawn = model.pick_balanced(leaf, rng)
                cap = self._cap(node, col, values)
                if cap is not None:
                    drawn = model.within(leaf, drawn, cap, rng)
            elif n and col in getattr(node, "calendar", {}):  # a model saved before calendar-bound dates has none
                drawn = _calendar_offsets(model, x, values[T], node.calendar[col], rng)
            else:
                drawn = model.draw(x, rng, n) if n else model.donors[:0]
            if col == T and limit is not None and n:
                drawn = _within(model, x, drawn, limit, rng)
            elif n and (col in node.below or col in node.above) and (keep is None or col not in keep):
                drawn = _between(model, x, drawn, values, node.below.get(col, []), node.above.get(col, []), rng)
            if n and col in common and (keep is None or col not in keep):
                drawn = _common_donors(model, x, drawn, common[col], rng)
            out[col] = drawn
            values[col] = _numeric(node, col, drawn)
        for col, (source, mapping) in node.derived.items():
            src = values["__i"] + node.positional[source] if source in node.positional else out[source]
            out[col] = pd.Series(src, dtype=object).map(mapping).to_numpy(dtype=object)
        return out

    @staticmethod
    def _cap(node: Node, col: str, values: dict[str, Any]) -> np.ndarray | None:
        """The most a root total may be beside its patient's drawn count of the rows it hangs under: that count
        times the largest ratio of the two in training (None where the total has no such count)."""
        found = getattr(node, "companions", {}).get(col)
        if found is None or found[0] not in values:
            return None
        return np.nan_to_num(pd.to_numeric(pd.Series(values[found[0]]), errors="coerce").to_numpy(dtype="float64")) * found[1]

    def _common_values(self, node: Node) -> dict[str, set[Any]]:
        """With ``rare_values="resample"``: per categorical or code column of ``node``, the values held by
        ``min_patients`` or more training patients (``synth.generators.rare``); else nothing."""
        rare = getattr(self, "rare_", None)
        if rare is None or getattr(self, "rare_values", "generalise") != "resample" or self.schema_ is None:
            return {}
        table = self.schema_.patient.table if node.name == VIRTUAL else node.name
        common = {c: unit.common for unit in rare.units if unit.table == table for c in unit.columns if c in node.categorical}
        for b, (a, mapping) in node.derived.items():  # a drawn source only where the value it gives b is common too
            if b in common and a in node.chain:
                fine = {v for v, w in mapping.items() if w in common[b] or w is None or w != w}
                common[a] = common[a] & fine if a in common else fine
        return common

    def _generalise(self, frames: dict[str, pd.DataFrame], report: Any) -> dict[str, pd.DataFrame]:
        """As the base class, then every looked-up pair a generalisation broke made a training pair again: where a
        rare source became missing or another value while its derived column took a stand-in (Synthea's rare
        DESCRIPTION missing, its CODE the most frequent code), the source takes a common value that gives the
        stand-in (the CODE keeps a DESCRIPTION that names it)."""
        frames = super()._generalise(frames, report)
        rare = getattr(self, "rare_", None)
        if rare is None or self.schema_ is None:
            return frames
        for name, node in self.nodes_.items():
            table = self.schema_.patient.table if name == VIRTUAL else name
            frame = frames.get(table)
            if frame is None or frame.empty or not node.derived:
                continue
            common = {c: unit.common for unit in rare.units if unit.table == table for c in unit.columns}
            for b, (a, mapping) in node.derived.items():
                if a not in frame or b not in frame or a not in common:
                    continue
                names: dict[Any, Any] = {}
                for v, w in mapping.items():  # a common source value of each value of b
                    if v in common[a] and w is not None and w == w:
                        names.setdefault(w, v)
                target = frame[b]
                broken = (target.notna() & target.isin(list(names)) & (frame[a].map(mapping) != target)).to_numpy()
                if broken.any():
                    frame = frame.copy()
                    column = frame[a].astype(object).to_numpy().copy()
                    column[broken] = target[broken].map(names).to_numpy(dtype=object)
                    frame[a] = column
                    frames[table] = frame
        return frames

    def _draw_children(
        self, node: Node, encoded: dict[str, pd.DataFrame], abs_anchor: dict[str, np.ndarray], rng: np.random.Generator
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """A child table row by row within each parent (step i draws every parent's i-th row at once)."""
        pnode = self.nodes_[node.parent]  # type: ignore[index]
        penc = encoded[node.parent]  # type: ignore[index]
        counts = np.clip(np.rint(pd.to_numeric(penc[f"__n_{node.name}"], errors="coerce").fillna(0).to_numpy()), 0, None).astype(np.int64)
        parent_pos = np.repeat(np.arange(len(penc)), counts)
        if len(parent_pos) == 0:
            empty = pd.DataFrame({c: pd.Series(dtype=object if c in node.categorical else "float64") for c in node.chain})
            for col in node.derived:
                empty[col] = pd.Series(dtype=object)
            return empty.assign(__parent=np.array([], dtype=np.int64)), {}
        total = len(parent_pos)
        pos, n = _positions(parent_pos)
        feats: dict[str, np.ndarray] = {"__i": pos.astype("float64"), "__count": n.astype("float64"), "__left": (n - pos - 1).astype("float64")}
        for c in node.context:
            feats[f"__p_{c}"] = _numeric(pnode, c, penc[c].to_numpy())[parent_pos]
        if node.root_context:
            root_pos = self._root_positions(node, parent_pos, encoded)
            root = self.nodes_[self.root_]
            for c in node.root_context:
                feats[f"__r_{c}"] = _numeric(root, c, encoded[self.root_][c].to_numpy())[root_pos]
        for c in node.chain:
            feats[f"__lag_{c}"] = np.full(total, np.nan)
        totals = {c: np.nan_to_num(pd.to_numeric(penc[TOTAL + c], errors="coerce").to_numpy(dtype="float64")) for c in self._totals(node, penc)}
        given = {c: np.zeros(len(penc)) for c in totals}  # rows of each such grandchild given to a parent's rows so far
        for c in totals:
            feats.update({k: np.full(total, np.nan) for k in _rest(np.zeros(0), np.zeros(0), c)})
        until = [d for d in pnode.dates[1:] if d in node.context] if node.sequence else []
        if node.sequence:
            feats["__cursor"] = np.full(total, np.nan)
            for d in until:
                feats[f"__until_{d}"] = np.full(total, np.nan)
        bounds = None
        if node.upper:
            stacked = np.column_stack([pd.to_numeric(penc[d], errors="coerce").to_numpy(dtype="float64") for d in node.upper])
            bounds = np.nanmin(np.where(np.isnan(stacked), np.inf, stacked), axis=1)
        end = getattr(node, "end", float("nan")) if node.sequence else float("nan")
        raw_anchor = abs_anchor[node.parent] if node.parent in abs_anchor else np.full(len(penc), np.nan)  # type: ignore[index]
        if np.isfinite(end):  # no row past the latest day training observed (Synthea's export date): a bound too
            room = np.where(np.isnan(raw_anchor), np.inf, end - raw_anchor)
            bounds = room if bounds is None else np.minimum(bounds, room)
            for k in ("__until_end", "__pace"):
                feats[k] = np.full(total, np.nan)
            day_last = raw_anchor.copy()  # absolute day of each parent's latest row (its anchor before the first)
        result = {c: np.empty(total, dtype=object if c in node.categorical else "float64") for c in node.chain}
        result.update({LEAF + c: np.zeros(total, dtype=np.int64) for c in node.chain if c.startswith("__n_")})
        derived = {c: np.empty(total, dtype=object) for c in node.derived}
        cursor = np.zeros(len(penc))  # time from the parent's anchor to its latest row
        panchor = np.nan_to_num(abs_anchor[node.parent]) if node.parent in abs_anchor else np.zeros(len(penc))  # type: ignore[index]
        start_at = np.zeros(len(penc)) if node.anchored else -panchor  # where a first row's __t counts from
        last = {c: np.full(len(penc), np.nan) for c in node.chain}
        order = np.argsort(pos, kind="stable")
        steps = np.r_[0, np.cumsum(np.bincount(pos))]
        for i in range(len(steps) - 1):
            rows = order[steps[i]:steps[i + 1]]
            parents = parent_pos[rows]
            if i > 0:
                for c in node.chain:
                    feats[f"__lag_{c}"][rows] = last[c][parents]
                if node.sequence:
                    feats["__cursor"][rows] = cursor[parents]
                    for d in until:
                        feats[f"__until_{d}"][rows] = feats[f"__p_{d}"][rows] - cursor[parents]
            if np.isfinite(end):
                for k, v in _until_end(end, day_last[parents], n[rows] - i).items():
                    feats[k][rows] = v
            for c, target in totals.items():
                for k, v in _rest(target[parents] - given[c][parents], n[rows] - i, c).items():
                    feats[k][rows] = v
            limit = None if bounds is None else bounds[parents] - (cursor[parents] if i > 0 else start_at[parents])
            drawn = self._draw_rows(node, {k: v[rows] for k, v in feats.items()}, len(rows), rng, limit=limit)
            for c in node.chain:
                result[c][rows] = drawn[c]
                last[c][parents] = _numeric(node, c, drawn[c])
                if LEAF + c in result:
                    result[LEAF + c][rows] = drawn[LEAF + c]
            for c in node.derived:
                derived[c][rows] = drawn[c]
            for c in totals:
                given[c][parents] += np.clip(np.rint(np.nan_to_num(np.asarray(drawn[f"__n_{c}"], dtype="float64"))), 0, None)
            if node.sequence:
                cursor[parents] = (cursor[parents] if i > 0 else start_at[parents]) + np.nan_to_num(np.asarray(drawn[T], dtype="float64"))
            if np.isfinite(end):
                step = np.nan_to_num(np.asarray(drawn[T], dtype="float64"))
                day_last[parents] = (day_last[parents] if i > 0 else (raw_anchor[parents] if node.anchored else 0.0)) + step
        out = pd.DataFrame({**result, **derived})
        for col, c in node.positional.items():
            out[col] = pos.astype("float64") + c
        out["__parent"] = parent_pos
        dropped = np.zeros(total, dtype=bool)
        if bounds is not None:
            out[T], dropped = _fit_window(
                out[T].to_numpy(dtype="float64"), parent_pos, pos, start_at, bounds, node.lower, getattr(node, "lowest", float("-inf"))
            )
        if dropped.any():
            keep = ~dropped
            self._report.dropped_rows[node.name] = self._report.dropped_rows.get(node.name, 0) + int(dropped.sum())
            out = out[keep].reset_index(drop=True)
            feats = {k: v[keep] for k, v in feats.items()}
        return out, feats

    def _repair(
        self,
        node: Node,
        enc: pd.DataFrame,
        feats: dict[str, np.ndarray],
        encoded: dict[str, pd.DataFrame],
        decoded: dict[str, pd.DataFrame],
        abs_anchor: dict[str, np.ndarray],
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """Redraw rows that break a rule of their table from their leaves (bounded rounds).

        The row's date is kept (so the sequence stays in order and within its parent); the last two
        rounds also forget the previous row, whose values may have led the draw into a bad leaf.
        """
        schema = self.schema_
        assert schema is not None
        if node.name not in schema.tables or not schema.tables[node.name].rules or enc.empty or not self.repair_rounds:
            return enc
        needed = {t for (_c, _f, t, _p) in schema.path_to_patient(node.name)}
        if not needed <= set(self._assemble(decoded, partial=True)):
            return enc  # a rule's table is not drawn yet: the base class's enforcement checks it later
        enc = enc.copy()
        for round_ in range(self.repair_rounds):
            anchor = self._anchor_days(node, enc, encoded, abs_anchor)
            frames = dict(self._assemble(decoded, partial=True))
            frames[node.name] = self._with_keys(node, self._decode_rows(node, enc, anchor), enc, encoded)
            if node.parent == VIRTUAL and VIRTUAL in decoded:  # the patient table's per-patient columns
                frames[node.name] = frames[node.name].merge(decoded[VIRTUAL], on=schema.patient.column, how="left")
            for t in schema.tables:
                frames.setdefault(t, pd.DataFrame())
            bad = _violations(schema, frames, node.name)
            rows = np.unique(np.concatenate(list(bad.values()))) if bad else np.array([], dtype=np.int64)
            if rows.size == 0:
                break
            self._note_repaired(node.name, int(rows.size))
            step = {k: v[rows].copy() for k, v in feats.items()}
            if round_ >= self.repair_rounds - 2:
                for k in step:
                    if k.startswith("__lag_"):
                        step[k][:] = np.nan
            keep = {T: enc[T].to_numpy(dtype="float64")[rows]} if T in enc else None
            if keep is not None and round_ == self.repair_rounds - 1 and node.sequence:
                keep[T] = np.zeros(rows.size)  # last round: the date pulled back to the previous event (order kept)
            fresh = self._draw_rows(node, step, rows.size, rng, keep=keep)
            for c, v in fresh.items():
                column = enc[c].to_numpy().copy()
                column[rows] = v
                enc[c] = column
        return enc

    def _calibrate_counts(
        self, node: Node, enc: pd.DataFrame, n_patients: int, rng: np.random.Generator, encoded: dict[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """Child counts whose total strays from training's rows per patient, redrawn from their own leaves.

        Each count is a donor of its leaf, so a small cohort's total swings with the few parents that drew a
        heavy-tailed donor (Synthea's observations per patient: 0.5x-1.4x of training over seeds), and a
        sequence's counts drift with the parent rows drawn (conditions per encounter 1.2x). Counts are
        redrawn from the same leaves, a redraw kept only when it moves the total towards the target, so
        every count stays a training value of its leaf. A root count's target is training's mean per patient
        without its tail plus the tail this cohort drew (``_tail``). A table below the patient's children
        (conditions under encounters) has its rows per patient drawn at the root (``__n_*conditions``, calibrated
        there): each patient's counts over its encounters are redrawn towards that patient's total, and a
        shortfall (a total the patient's encounters cannot reach) stays with that patient rather than being spread
        over the others, which pushed light patients up (Synthea's medications per patient: 0.79 -> 0.87).
        """
        leaves = [c for c in enc.columns if c.startswith(LEAF)]
        for child, per_patient in getattr(node, "per_patient", {}).items():
            col = f"__n_{child}"
            if LEAF + col in enc and col in node.models and len(enc):
                counts = pd.to_numeric(enc[col], errors="coerce").fillna(0).to_numpy(dtype="float64")
                leaf = enc[LEAF + col].to_numpy(dtype=np.int64)
                root = (encoded or {}).get(self.root_)
                if node.parent is not None and root is not None and TOTAL + child in root:
                    patients = self._root_positions(node, enc["__parent"].to_numpy(dtype=np.int64), encoded)  # type: ignore[arg-type]
                    targets = np.rint(np.clip(pd.to_numeric(root[TOTAL + child], errors="coerce").fillna(0).to_numpy(), 0, None))
                    enc[col] = _calibrated_groups(node.models[col], leaf, counts, patients, targets, rng)
                    continue  # the root's totals were calibrated: a shortfall stays with its patient
                target = per_patient * n_patients
                tail = getattr(node, "tails", {}).get(child)
                if tail is not None:  # the tail the cohort drew, not training's (see _tail)
                    point, below = tail
                    target = below * n_patients + float(np.clip(counts - point, 0, None).sum())
                enc[col] = _calibrated_total(node.models[col], leaf, counts, target, rng, cap=self._cap(node, col, enc))
        return enc.drop(columns=leaves)

    def _note_repaired(self, table: str, n: int) -> None:
        self._report.rejected_rows[table] = self._report.rejected_rows.get(table, 0) + n

    def _anchor_days(self, node: Node, enc: pd.DataFrame, encoded: dict[str, pd.DataFrame], abs_anchor: dict[str, np.ndarray]) -> np.ndarray:
        """Absolute day of each row's first date (its children's anchor); NaN when the node has no date."""
        if not node.dates:
            if node.parent is None or enc.empty:
                return np.full(len(enc), np.nan)
            return abs_anchor[node.parent][enc["__parent"].to_numpy(dtype=np.int64)]
        t = pd.to_numeric(enc[T], errors="coerce").to_numpy(dtype="float64")
        if node.parent is None:
            return t
        parent_pos = enc["__parent"].to_numpy(dtype=np.int64)
        base = abs_anchor[node.parent][parent_pos] if node.anchored else np.zeros(len(enc))
        base = np.where(np.isnan(base), 0.0, base) if node.anchored else base
        if node.sequence:
            steps = np.nan_to_num(t)
            days = base + _cumsum_within(steps, parent_pos)
            return np.where(np.isnan(t), np.nan, days)
        return base + t

    def _decode_rows(self, node: Node, enc: pd.DataFrame, anchor: np.ndarray) -> pd.DataFrame:
        """A node's rows in its table's attribute columns (dates absolute)."""
        out = pd.DataFrame(index=range(len(enc)))
        for col in node.categorical:
            out[col] = enc[col].to_numpy()
        for col in node.numerical:
            if col == T or col.startswith("__n_") or col in node.dates:
                continue
            out[col] = pd.to_numeric(enc[col], errors="coerce").to_numpy(dtype="float64")
        if node.dates:
            out[node.dates[0]] = _from_days(anchor).to_numpy()
            for d in node.dates[1:]:
                out[d] = _from_days(anchor + pd.to_numeric(enc[d], errors="coerce").to_numpy(dtype="float64")).to_numpy()
        return out

    def _with_keys(self, node: Node, out: pd.DataFrame, enc: pd.DataFrame, encoded: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Surrogate keys of a node's rows: its own key, its parent key and its patient key."""
        schema = self.schema_
        assert schema is not None
        out = out.copy()
        pcol = schema.patient.column
        if node.parent is None:
            out[node.key or pcol] = np.arange(len(out))
            return out
        parent_pos = enc["__parent"].to_numpy(dtype=np.int64)
        pnode = self.nodes_[node.parent]
        out[node.fk] = parent_pos if node.parent in (VIRTUAL, self.root_) else _keys_of(pnode, encoded, node.parent)[parent_pos]
        if node.key is not None and node.key != node.fk:
            out[node.key] = np.arange(len(out))
        if node.patient_col is not None:
            out[node.patient_col] = self._root_positions(node, parent_pos, encoded)
        return out

    def _decode(self, node: Node, enc: pd.DataFrame, encoded: dict[str, pd.DataFrame], abs_anchor: dict[str, np.ndarray]) -> pd.DataFrame:
        return self._with_keys(node, self._decode_rows(node, enc, abs_anchor[node.name]), enc, encoded)

    def _assemble(self, decoded: dict[str, pd.DataFrame], *, partial: bool = False) -> dict[str, pd.DataFrame]:
        """Frames per schema table: the virtual root's columns merged into the patient table, other ids filled."""
        schema = self.schema_
        assert schema is not None
        pcol = schema.patient.column
        frames = {k: v for k, v in decoded.items() if k != VIRTUAL}
        if VIRTUAL in decoded and schema.patient.table in frames:
            static = decoded[VIRTUAL]
            frames[schema.patient.table] = frames[schema.patient.table].merge(static, on=pcol, how="left")
        for name, table in schema.tables.items():
            if name not in frames:
                if not partial:
                    frames[name] = pd.DataFrame(columns=list(table.columns))
                continue
            frame = frames[name]
            for col in table.columns_of_type("id"):
                if col.name in frame:
                    continue
                if col.foreign_key is not None:
                    frame[col.name] = np.full(len(frame), np.nan)  # secondary keys: filled by synth.generators.links
                else:
                    frame[col.name] = np.arange(len(frame))
        return frames

    # -- enforcement and links -------------------------------------------------------------------
    def fit(self, train: Any, *, progress: Progress | None = None) -> CartGenerator:
        super().fit(train, progress=progress)
        if self.links_ is not None:  # keys the tree sets itself (events under their encounter) are not redrawn
            self.links_.keys = [k for k in self.links_.keys if (k.table, k.column) not in self.tree_keys_]
        return self

    def _enforce(self, frames: dict[str, pd.DataFrame], rng: np.random.Generator, report: Any, progress: Progress) -> dict[str, pd.DataFrame]:
        frames = super()._enforce(frames, rng, report, progress)
        return self._drop_orphans(frames, report)

    def _drop_orphans(self, frames: dict[str, pd.DataFrame], report: Any) -> dict[str, pd.DataFrame]:
        """Rows whose tree parent was dropped by the base class (which follows the schema's first keys) go too."""
        schema = self.schema_
        assert schema is not None
        for name in breadth_first(self.root_, lambda n: self.nodes_[n].children):
            node = self.nodes_[name]
            if (name, node.fk) not in self.tree_keys_ or node.parent in (VIRTUAL, None):
                continue
            frame, parent = frames[name], frames[node.parent]  # type: ignore[index]
            orphans = np.flatnonzero(~frame[node.fk].isin(set(parent[node.parent_key])).to_numpy())
            if orphans.size:
                frames = _drop_rows(schema, frames, name, orphans, report)
        return frames


# -- helpers ---------------------------------------------------------------------------------------
def _attribute_columns(schema: Schema, table: str) -> list[str]:
    """Columns a model may see: not ids, not direct identifiers."""
    return [c.name for c in schema.tables[table].columns.values() if c.type != "id" and c.privacy != "direct_identifier"]


def _positions(parent_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row within its parent's run of rows and the run's length (rows grouped by parent)."""
    if len(parent_pos) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(parent_pos)) + 1]
    lengths = np.diff(np.r_[starts, len(parent_pos)])
    pos = np.arange(len(parent_pos)) - np.repeat(starts, lengths)
    return pos, np.repeat(lengths, lengths)


def _until_end(end: float, previous: np.ndarray, rows_left: np.ndarray) -> dict[str, np.ndarray]:
    """Predictors of a sequence row's gap near the end of observation: days from the previous row (the parent's
    anchor before the first row) to the end, and those days per row still to come (this one included)."""
    until = end - np.asarray(previous, dtype="float64")
    return {"__until_end": until, "__pace": until / np.maximum(np.asarray(rows_left, dtype="float64"), 1.0)}


def _rest(rest: np.ndarray, rows_left: np.ndarray, child: str) -> dict[str, np.ndarray]:
    """Predictors of a row's count of a grandchild table: the patient's rows of it not yet given to earlier rows,
    and those per row still to come (this one included)."""
    rest = np.asarray(rest, dtype="float64")
    return {f"__rest_{child}": rest, f"__restper_{child}": rest / np.maximum(np.asarray(rows_left, dtype="float64"), 1.0)}


def _cumsum_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` within runs of equal ``groups`` (rows grouped by parent, any order of groups)."""
    order = np.argsort(groups, kind="stable")
    v, g = values[order], groups[order]
    total = np.cumsum(v)
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    offset = np.repeat(total[starts] - v[starts], np.diff(np.r_[starts, len(v)]))
    out = np.empty(len(values))
    out[order] = total - offset
    return out


def _keys_of(node: Node, encoded: dict[str, pd.DataFrame], name: str) -> np.ndarray:
    """Surrogate keys of a node's sampled rows (their positions)."""
    return np.arange(len(encoded[name]))


def _tail(counts: np.ndarray) -> tuple[float, float]:
    """A count's ``TAIL_QUANTILE`` point in training and its mean with every count above it cut to it.

    A root count is calibrated to that mean per patient plus the excess over the point of the counts the cohort
    actually drew, not to training's plain mean: Synthea's medications per patient average 35 of which 8 are
    one patient's 709. A cohort that did not draw such a donor was pushed up to 35 by its light and middle
    patients (78% of training patients have at most 35, 62% of the cohort's did).
    """
    counts = np.nan_to_num(np.asarray(counts, dtype="float64"))
    if not counts.size:
        return 0.0, 0.0
    point = float(np.quantile(counts, TAIL_QUANTILE))
    return point, float(np.minimum(counts, point).mean())


def _calibrated_total(
    model: Leaves, leaf: np.ndarray, counts: np.ndarray, target: float, rng: np.random.Generator, rounds: int = 40,
    cap: np.ndarray | None = None,
) -> np.ndarray:
    """Counts whose sum is within ``COUNT_TOLERANCE`` of ``target`` where a few rounds of redraws reach it.

    Each round draws an alternative donor for every row from its own leaf and takes, in random order,
    the alternatives that move the sum towards the target until one would overshoot it.
    """
    counts = counts.copy()
    total = float(counts.sum())
    for _ in range(rounds):
        gap = target - total
        if abs(gap) <= COUNT_TOLERANCE * target:
            break
        alternative = np.nan_to_num(np.asarray(model.pick(leaf, rng), dtype="float64"))  # count donors are floats
        if cap is not None:
            alternative = np.where(alternative > cap, counts, alternative)
        delta = np.rint(np.clip(alternative, 0, None)) - np.rint(np.clip(counts, 0, None))
        useful = rng.permutation(np.flatnonzero(np.sign(delta) == np.sign(gap)))
        if not useful.size:
            continue
        steps = np.abs(np.cumsum(delta[useful]))
        k = int(np.searchsorted(steps, abs(gap), side="right"))
        if k < useful.size and abs(steps[k] - abs(gap)) < abs(abs(gap) - (steps[k - 1] if k else 0.0)):
            k += 1  # the step that crosses the target lands nearer to it than stopping short
        taken = useful[:k]
        counts[taken] = alternative[taken]
        total += float(delta[taken].sum())
    return counts


def _calibrated_groups(
    model: Leaves, leaf: np.ndarray, counts: np.ndarray, groups: np.ndarray, targets: np.ndarray, rng: np.random.Generator,
    rounds: int = 40,
) -> np.ndarray:
    """Counts whose sum within each group (a patient's encounters) moves to the group's target where redraws reach it.

    As ``_calibrated_total`` per group: each round draws an alternative donor for every row from its own leaf and
    takes, in random order within each group, the alternatives that move the group's sum towards its target,
    up to the one whose step crosses the target by less than half of it.
    """
    counts = np.asarray(counts, dtype="float64").copy()
    current = np.rint(np.clip(np.nan_to_num(counts), 0, None))
    for _ in range(rounds):
        gap = targets - np.bincount(groups, weights=current, minlength=len(targets))
        if not np.any(np.abs(gap) > 0.5):
            break
        alternative = np.nan_to_num(np.asarray(model.pick(leaf, rng), dtype="float64"))
        delta = np.rint(np.clip(alternative, 0, None)) - current
        want = gap[groups]
        useful = np.flatnonzero((delta != 0) & (np.sign(delta) == np.sign(want)))
        if not useful.size:
            continue
        useful = useful[rng.permutation(useful.size)]
        useful = useful[np.argsort(groups[useful], kind="stable")]
        step = np.abs(delta[useful])
        taken = useful[_cumsum_within(step, groups[useful]) - step / 2 < np.abs(want[useful])]
        counts[taken] = alternative[taken]
        current[taken] = np.rint(np.clip(alternative[taken], 0, None))
    return counts


def _numbered_keys(schema: Schema, frames: dict[str, pd.DataFrame]) -> dict[str, tuple[list[str], str, float]]:
    """Composite primary keys whose one numerical column numbers the rows within the other key columns
    (first, first + 1, ... in every group): table -> (other key columns, numbering column, first number)."""
    found: dict[str, tuple[list[str], str, float]] = {}
    for name, table in schema.tables.items():
        key, frame = table.primary_key, frames.get(name)
        numbers = [c for c in key if table.columns[c].type == "numerical"]
        if table.reference or len(key) < 2 or len(numbers) != 1 or frame is None or frame.empty:
            continue
        col, groups = numbers[0], [c for c in key if c != numbers[0]]
        if not all(c in frame for c in key) or frame[key].isna().any().any():
            continue
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")
        rank = frame[col].groupby([frame[g] for g in groups], sort=False).rank(method="first").to_numpy()
        offset = values - rank
        if np.isfinite(offset).all() and np.all(offset == offset[0]):
            found[name] = (groups, col, float(offset[0]) + 1)
    return found


def _ordinal_map(values: np.ndarray) -> dict[Any, int]:
    """Category -> integer by descending frequency (missing values are left out: NaN to the trees)."""
    counts = pd.Series(values).value_counts(dropna=True)
    return {v: i for i, v in enumerate(counts.index)}


def _numeric(node: Node, col: str, values: np.ndarray) -> np.ndarray:
    """A column as a tree predictor: categories by frequency rank, numbers as they are, missing as NaN."""
    if col in node.ordinals:
        mapping = node.ordinals[col]
        return np.array([mapping.get(v, np.nan) if v is not None and v == v else np.nan for v in values], dtype="float64")
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")


def _within(model: Leaves, x: np.ndarray | None, drawn: np.ndarray, limit: np.ndarray, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
    """Time donors at most ``limit``: rows past it draw again from their leaf, then take a donor of their leaf
    that fits where there is one."""
    drawn = np.asarray(drawn, dtype="float64").copy()
    for _ in range(tries):
        over = np.flatnonzero(drawn > limit)
        if over.size == 0:
            return drawn
        drawn[over] = np.asarray(model.draw(None if x is None else x[over], rng, over.size), dtype="float64")
    over = np.flatnonzero(drawn > limit)
    if over.size:  # a donor of the row's own leaf that fits, if there is one
        leaf = model.leaves(None if x is None else x[over], over.size)
        for row, lf in zip(over, leaf):
            pool = np.asarray(model.donors[model.starts[lf]:model.starts[lf] + model.counts[lf]], dtype="float64")
            fits = pool[pool <= limit[row]]
            if fits.size:
                drawn[row] = fits[int(rng.integers(fits.size))]
    return drawn  # rows no donor fits keep their draw: the sequence is shifted or cut afterwards (_fit_window)


def _fit_window(
    t: np.ndarray, parent_pos: np.ndarray, pos: np.ndarray, start_at: np.ndarray, bounds: np.ndarray, lower: bool,
    lowest: float = float("-inf"),
) -> tuple[np.ndarray, np.ndarray]:
    """A drawn sequence that runs past its parent's end (eligibility, death, the end of observation) is moved
    earlier as a whole, no earlier than the parent's anchor when training never went before it (else than the
    earliest first row training had, ``lowest``); a sequence still past the end has the gaps after its first
    row shortened in proportion so its last row lands on the end; rows still past it (a first row) are cut.
    Returns the new time column and the rows to drop."""
    t = t.copy()
    first = pos == 0
    cursor = _cumsum_within(np.nan_to_num(t), parent_pos) + start_at[parent_pos]
    if lower:  # a sequence starting before its parent's anchor (eligibility start) moves later to it
        t[first] = t[first] + np.maximum(-cursor[first], 0.0)
        cursor = _cumsum_within(np.nan_to_num(t), parent_pos) + start_at[parent_pos]
    end = np.full(len(bounds), -np.inf)
    np.maximum.at(end, parent_pos, cursor)
    first_cursor = np.full(len(bounds), np.nan)
    first_cursor[parent_pos[first]] = cursor[first]
    room = np.maximum(first_cursor - (0.0 if lower else lowest), 0.0)
    shift = np.clip(end - bounds, 0.0, np.nan_to_num(room, nan=0.0))
    shift = np.where(np.isfinite(shift), shift, 0.0)
    t[first] = t[first] - shift[parent_pos[first]]
    first_cursor = first_cursor - shift
    end = end - shift
    span, allowed = end - first_cursor, bounds - first_cursor
    squeeze = np.isfinite(span) & np.isfinite(allowed) & (end > bounds + 1e-9) & (span > 0) & (allowed >= 0)
    scale = np.where(squeeze, np.divide(allowed, span, out=np.ones(len(bounds)), where=squeeze), 1.0)
    t[~first] = t[~first] * scale[parent_pos[~first]]
    cursor = _cumsum_within(np.nan_to_num(t), parent_pos) + start_at[parent_pos]
    dropped = cursor > bounds[parent_pos] + 1e-9
    return t, dropped


def _common_donors(model: Leaves, x: np.ndarray | None, drawn: np.ndarray, common: set[Any], rng: np.random.Generator) -> np.ndarray:
    """``drawn`` with every rare value (not in ``common``; a missing value is never rare) replaced by a donor of
    the same leaf among the common ones, or of all the column's donors where the leaf has none; left as drawn
    where the column has no common donor at all (the generalisation then applies)."""
    def ok(values: np.ndarray) -> np.ndarray:
        series = pd.Series(values, dtype=object)
        return (series.isin(common) | series.isna()).to_numpy()

    bad = np.flatnonzero(~ok(drawn))
    if bad.size == 0:
        return drawn
    good = np.flatnonzero(ok(model.donors))
    if good.size == 0:
        return drawn
    leaf = model.leaves(None if x is None else x[bad], bad.size)
    before = np.searchsorted(good, model.starts[leaf])  # common donors of each row's leaf: good[before:after]
    after = np.searchsorted(good, model.starts[leaf] + model.counts[leaf])
    size = after - before
    u = rng.random(bad.size)
    pick = np.where(size > 0, before + np.floor(u * size).astype(np.int64), np.floor(u * good.size).astype(np.int64))
    out = np.asarray(drawn, dtype=object).copy()
    out[bad] = model.donors[good[pick]]
    return out


def _between(
    model: Leaves, x: np.ndarray | None, drawn: Any, values: dict[str, np.ndarray], below: list[str], above: list[str],
    rng: np.random.Generator, tries: int = 8,
) -> np.ndarray:
    """Numeric donors kept between the earlier columns training never saw them cross (coverage <= cost):
    rows out of bounds draw again from their leaf, then are cut to the bound."""
    drawn = np.asarray(drawn, dtype="float64").copy()
    hi = np.nanmin(np.column_stack([values[c] for c in below]), axis=1) if below else np.full(len(drawn), np.inf)
    lo = np.nanmax(np.column_stack([values[c] for c in above]), axis=1) if above else np.full(len(drawn), -np.inf)
    hi, lo = np.where(np.isnan(hi), np.inf, hi), np.where(np.isnan(lo), -np.inf, lo)
    for _ in range(tries):
        bad = np.flatnonzero((drawn > hi) | (drawn < lo))
        if bad.size == 0:
            return drawn
        drawn[bad] = np.asarray(model.draw(None if x is None else x[bad], rng, bad.size), dtype="float64")
    return np.where(drawn > hi, hi, np.where(drawn < lo, lo, drawn))


def _inequalities(enc: pd.DataFrame, node: Node) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """For each numeric column, the earlier numeric columns it never exceeded / never fell below in training."""
    nums = [c for c in node.chain if c in node.numerical and c != T and not c.startswith("__n_") and c not in node.dates]
    below: dict[str, list[str]] = {}
    above: dict[str, list[str]] = {}
    for j, c in enumerate(nums):
        v = pd.to_numeric(enc[c], errors="coerce").to_numpy(dtype="float64")
        for a in nums[:j]:
            w = pd.to_numeric(enc[a], errors="coerce").to_numpy(dtype="float64")
            both = np.isfinite(v) & np.isfinite(w)
            if both.sum() < 20 or np.all(v[both] == w[both]):
                continue
            if np.all(v[both] <= w[both]):
                below.setdefault(c, []).append(a)
            elif np.all(v[both] >= w[both]):
                above.setdefault(c, []).append(a)
    return below, above


def _calendar_bound(days: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether a root's later date is better drawn as a calendar day than as an offset from the root's first date: its
    calendar days vary less (the demo's eligibility_end, 2024-12-31 for 99% of patients, the day the data ends; a death
    inside the observed years) and at least 20 rows have both."""
    ok = np.isfinite(days) & np.isfinite(offsets)
    return bool(ok.sum() >= 20 and np.std(days[ok]) < np.std(offsets[ok]))


def _calendar_offsets(model: Leaves, x: np.ndarray | None, anchor: np.ndarray, least: float, rng: np.random.Generator,
                      tries: int = 8) -> np.ndarray:
    """Offsets of a calendar-bound date (donors are calendar days) from each row's ``anchor``; a donor that would fall
    before the least offset training has (an end before its start) draws again from its leaf, then is cut to it."""
    offsets = np.asarray(model.draw(x, rng, len(anchor)), dtype="float64") - anchor
    for _ in range(tries):
        bad = np.flatnonzero(offsets < least)
        if bad.size == 0:
            return offsets
        offsets[bad] = np.asarray(model.draw(None if x is None else x[bad], rng, bad.size), dtype="float64") - anchor[bad]
    return np.where(offsets < least, least, offsets)


def _offsets_vary_less(days: np.ndarray, parent_anchor: np.ndarray, parent_pos: np.ndarray | None) -> bool:
    """Model a table's first dates as offsets from the parent's date (else as calendar days) when the
    offsets of each parent's first row vary less: visits of a study period are calendar-bound, events
    of an admission parent-bound."""
    first = np.r_[True, parent_pos[1:] != parent_pos[:-1]] if parent_pos is not None and len(parent_pos) else np.ones(len(days), bool)
    offsets, absolute = (days - parent_anchor)[first], days[first]
    ok = np.isfinite(offsets) & np.isfinite(absolute)
    if ok.sum() < 2:
        return True
    return bool(np.std(offsets[ok]) <= np.std(absolute[ok]))


def _informative(values: np.ndarray) -> bool:
    """A predictor worth offering a tree: not all missing, and not one constant value without gaps."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return False
    return bool(finite.min() != finite.max() or finite.size < values.size)


def _constant(values: np.ndarray) -> bool:
    return pd.Series(values).nunique(dropna=False) <= 1


def _coarse(codes: np.ndarray) -> np.ndarray:
    """A categorical target for a tree: the most frequent values, the rest as one class, missing as -1."""
    out = np.where(np.isnan(codes), -1, codes)
    return np.where(out >= MAX_CLASSES, MAX_CLASSES, out).astype(np.int64)


def _ranks(values: np.ndarray) -> np.ndarray:
    """A numeric target for a tree: ranks (robust to heavy tails), missing values below every rank."""
    ranks = pd.Series(values).rank(pct=True).to_numpy(dtype="float64")
    return np.where(np.isnan(ranks), -0.5, ranks)


def _leaves(tree: Any, leaf: np.ndarray, raw: np.ndarray, features: list[str]) -> Leaves:
    order = np.argsort(leaf, kind="stable")
    size = tree.tree_.node_count
    counts = np.bincount(leaf, minlength=size)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    return Leaves(features, tree, starts.astype(np.int64), np.maximum(counts, 1).astype(np.int64), raw[order])


def _marginal(raw: np.ndarray, features: list[str]) -> Leaves:
    return Leaves([], None, np.zeros(1, dtype=np.int64), np.array([max(len(raw), 1)]), raw if len(raw) else np.array([np.nan]))


def _functional_dependencies(
    enc: pd.DataFrame, categorical: list[str], chain: list[str], numerical: list[str]
) -> dict[str, tuple[str, dict[Any, Any]]]:
    """Categorical columns that are a function of another column in training (a category, or a number with
    few values: kr_claims' dx_type of seq): derived by lookup, never drawn. The source's values repeat on at
    least ``MIN_REPEATED`` of the rows (the dependency is seen, not implied by a column of unique values)."""
    derived: dict[str, tuple[str, dict[Any, Any]]] = {}
    cards = {c: pd.Series(enc[c]).nunique(dropna=True) for c in categorical}
    for c in numerical:
        if not c.startswith("__") and c in enc:
            card = pd.Series(enc[c]).nunique(dropna=True)
            if card <= 200:
                cards[c] = card
    complete = {c for c in cards if not pd.isna(enc[c]).any()}
    # a source whose values mostly occur once (a key, or a per-patient amount on a small table) determines every
    # column trivially: deriving from it would replay whole training rows, so its values must repeat
    complete = {c for c in complete if len(enc) and float(pd.Series(enc[c]).duplicated(keep=False).mean()) >= MIN_REPEATED}
    sources: set[str] = set()
    for b in categorical:
        if cards[b] < 2 or b in sources:
            continue
        for a in chain:
            if a == b or a not in complete or a in derived or cards[a] < cards[b]:
                continue
            pair = pd.DataFrame({"a": enc[a], "b": enc[b]})
            if pair.groupby("a", sort=False)["b"].nunique(dropna=False).max() <= 1:
                sources.add(a)
                mapping = dict(zip(pair["a"], pair["b"]))
                derived[b] = (a, mapping)
                break
    return derived
