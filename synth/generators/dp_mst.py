"""``dp_mst``: differentially private synthesis of a whole claims/EMR schema, with the patient as the unit of privacy.

Neighbouring datasets differ by **adding or removing one patient with all of their rows** (not by
replacing one: every sensitivity below is the add/remove one; under replace-one the histograms would
need sqrt(2) x the cap and the selections twice the input distance). So nothing about the data may be
released outside the accountant, not even its size. What the generator learns from the training data
is bounded per patient, not per row:

* **contribution bounds**: the patient table gives one row per patient (or, when it holds several
  rows per patient like DE-SynPUF's yearly summaries, at most as many as its primary key allows, e.g.
  three years); every other table keeps at most ``max_rows_per_patient`` rows of each patient, drawn
  at random among the rows whose parent was kept. A table's statistics then move by at most its cap
  when one patient comes or goes: that cap is the sensitivity of every measurement on it;
* **domains from the schema, not the data** (``dp_codecs``): declared categories and numeric ranges,
  fixed public grids for other numbers and for dates, and for codes and undeclared categories the
  values held by enough distinct patients (each patient counted for at most
  ``max_values_per_patient`` values) under a thresholded Gaussian histogram, the rest coded "other";
* **one MST model per table** (``dp_tree``): the table's own columns, the number of rows each child
  table has per row (``__n_<child>``, counted over *all* the child rows and clipped at ``max_children``, a
  public limit apart from the row cap: the count is one cell of the parent row, so its sensitivity is the
  parent's cap, and sampling draws that many rows although the child table itself is fitted on at most
  ``max_rows_per_patient`` rows of each patient) and a few *context* columns of the parent or patient row
  (the columns the table's rules read, then the parent's smallest declared categories), with
  sensitivity equal to the table's cap;
* **accounting** (``dp_accounting``): every measurement is an OpenDP measurement whose zCDP cost goes
  to one accountant; the budget is ``rho`` such that rho-zCDP gives (``epsilon``, ``delta / 2``), plus
  ``delta / 2`` shared by the value selections. ``domain_share`` of rho pays for the selections, the
  rest is split across tables in proportion to their number of measurements;
* **a workload** (``targets``, public ``table.column`` names, e.g. the target a model will be trained on):
  in the target's table every pair holding it gets a public bonus in the tree selection (AIM's
  workload-aware selection, ``dp_tree``), so its two-way marginals with the other columns are measured,
  with the budget the selection no longer needs.

Sampling walks the tree from the patient root: a table's rows are drawn given their parent's (and
patient's) context, their child counts say how many child rows follow, dates come back from day
offsets (a child's first date from the patient's anchor date, further dates of a row from its first
date), and rows that break a rule of the schema are repaired: first only the attributes the broken rule
is about are redrawn, each given the rest of its row (a Gibbs step on the tree) and among the values the
rule allows, keeping the rule's column that the tree draws first (a workload target is drawn first), so a
target's values are not traded away for the rules; then rows still broken, and rows repeating a primary
key, are redrawn whole with the same context (the base class drops what still breaks after that). A
workload target is drawn from its own one-way estimate, not tilted by the context (``TreeModel.sample``).
Sampling is post-processing: it costs no privacy, and is seeded. Fitting is not reproducible on purpose:
DP noise that could be replayed from a seed would protect nothing.

**Fitting on a sample of patients** (``fit_patients``, off by default): when the training split is too large to
fit in memory, the engine keeps each training patient independently with probability ``rate`` (a keyed hash
under a fresh secret key: a Poisson sample nobody can replay) before bounding, and the fit runs on that sample.
The rate comes from a noisy count of the training patients (``COUNT_SHARE`` of epsilon, discrete Laplace), never
the exact one: ``rate = min(1, fit_patients / noisy count)``. Sampling amplifies privacy, so the fit may spend
``epsilon_before_sampling(epsilon - count's epsilon, rate)`` at ``delta / rate`` on the sample and the whole
still gives (``epsilon``, ``delta``) for the add/remove-one-patient relation (``dp_accounting``). Memory then
follows ``fit_patients``, not the population; the noise is larger relative to the sample than it would be on
every patient, which is the price.

Sizes are private too: the default release size (:meth:`DPMSTGenerator.release_size`) is the root
table's noisy row total, a model keeps only noisy totals (``dp_tree``), and the pipeline keeps the
exact split sizes and fingerprints out of everything it publishes. The schema and the parameters
(caps, grids, epsilon, delta) are public.
"""
from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from data_schemas.model import Column, Schema
from data_schemas.rules import compile_check
from synth.errors import GeneratorError
from synth.generators.base import Generator, Progress, TrainingData, _violations, breadth_first
from synth.generators.dp_accounting import (
    Accountant,
    Charge,
    NoisyCount,
    amplified_epsilon,
    epsilon_before_sampling,
    epsilon_for_rho,
    noisy_count,
    rho_for_epsilon,
    select_values,
)
from synth.generators.dp_codecs import (
    Codec,
    count_codec,
    days,
    from_days,
    number_codec,
    offset_codec,
    placeholder_for,
    values_codec,
    year_codec,
)
from synth.generators.dp_tree import AttrSpec, TreeModel, fit_tree, unique_rows
from synth.generators.registry import register

if TYPE_CHECKING:
    import duckdb

VIRTUAL = "__patient__"
ANCHOR = "__anchor__"
MAX_RULE_CONTEXT = 4
MAX_CONTEXT = 3
REPAIR_ROUNDS = 4  # rounds redrawing only the attributes a broken rule is about, before whole rows
FINE_TRIES = 3  # candidate values per code of an attribute redrawn under a rule (a code's bin may hold good and bad values)
MAX_CANDIDATES = 1_000_000  # candidate rows checked at once when an attribute is redrawn under a rule
KEY = "__primary_key__"  # rows repeating a primary key: redrawn whole
COUNT_SHARE = 0.01  # of epsilon, for the noisy count of training patients that sets the fit's sampling rate
_REF = re.compile(r"\b(parent|patient)\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class PatientSample:
    """How the fit's patients were chosen: a Poisson sample at ``rate``, set from a noisy count of the training
    patients (``count``); every part of it is public (a function of the parameters and a DP output)."""

    fit_patients: int
    rate: float
    count: NoisyCount


@dataclass
class Node:
    """A table of the generation tree (or the virtual one-row-per-patient root)."""

    name: str
    parent: str | None
    fk: str | None  # this table's column holding the parent's key
    parent_key: str | None  # the parent's key column
    cap: int  # rows per patient at most (the sensitivity of this table's measurements)
    key: str | None = None  # own key column that children point at
    children: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    date_base: dict[str, str | None] = field(default_factory=dict)  # None absolute, ANCHOR, or a column of the row
    context: list[tuple[str, str]] = field(default_factory=list)  # (source node, attribute)
    codecs: dict[str, Codec] = field(default_factory=dict)
    count_low: dict[str, int] = field(default_factory=dict)
    model: TreeModel | None = None

    def attributes(self) -> list[str]:
        return [*self.columns, *(f"__n_{c}" for c in self.children), *(f"__ctx_{i}" for i in range(len(self.context)))]


@dataclass
class _Rows:
    """Training rows of a node after the contribution bounds, and where each row's parent and patient are."""

    frame: pd.DataFrame
    parent_row: np.ndarray
    patient_row: np.ndarray
    per_parent: np.ndarray | None = None  # every row of this table per parent row (before the cap), for the parent's counts


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise GeneratorError(f"The {name!r} parameter of dp_mst must be {expected}; got {value!r} instead.")


@register
class DPMSTGenerator(Generator):
    """MST marginals per table with per-patient (epsilon, delta) differential privacy (see the module docstring)."""

    name: ClassVar[str] = "dp_mst"
    family: ClassVar[str] = "dp"
    differentially_private: ClassVar[bool] = True
    description: ClassVar[str] = (
        "differentially private per patient: MST marginals per table (OpenDP noise), capped rows per patient"
    )
    categorical_text: ClassVar[bool] = True  # the fit reads text as values only: categoricals keep it small

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        delta: float = 1e-6,
        max_rows_per_patient: int = 8,
        max_values_per_patient: int = 4,
        bins: int = 16,
        max_categories: int = 64,
        domain_share: float = 0.1,
        max_children: int = 100,
        targets: tuple[str, ...] | list[str] = (),
        fit_patients: int | None = None,
    ) -> None:
        super().__init__()
        num = (int, float)
        _check("epsilon", epsilon, isinstance(epsilon, num) and not isinstance(epsilon, bool) and 0 < epsilon <= 1000 and math.isfinite(epsilon),
               "a float in (0, 1000]")
        _check("delta", delta, isinstance(delta, num) and not isinstance(delta, bool) and 0 < delta <= 1e-2, "a float in (0, 0.01]")
        for pname, value, low, high in (
            ("max_rows_per_patient", max_rows_per_patient, 1, 10_000),
            ("max_values_per_patient", max_values_per_patient, 1, 100),
            ("bins", bins, 2, 256),
            ("max_categories", max_categories, 1, 10_000),
            ("max_children", max_children, 1, 10_000),
        ):
            _check(pname, value, isinstance(value, int) and not isinstance(value, bool) and low <= value <= high, f"an int in [{low}, {high}]")
        _check("fit_patients", fit_patients, fit_patients is None or (isinstance(fit_patients, int) and not isinstance(fit_patients, bool)
               and 1 <= fit_patients <= 10**9), "an int in [1, 1000000000] or null")
        _check("domain_share", domain_share, isinstance(domain_share, num) and 0 < domain_share < 1, "a float in (0, 1)")
        self._epsilon = float(epsilon)
        self._delta = float(delta)
        self.max_rows_per_patient = max_rows_per_patient
        self.max_values_per_patient = max_values_per_patient
        self.bins = bins
        self.max_categories = max_categories
        self.domain_share = float(domain_share)
        _check("targets", targets, isinstance(targets, (list, tuple)) and all(isinstance(t, str) and "." in t for t in targets),
               "a list of 'table.column' names")
        self.max_children = max_children
        self.targets = tuple(targets)
        self.fit_patients = fit_patients
        self._planned_sample: PatientSample | None = None  # set by fit_sample_rate, used by the next fit
        self.sample_: PatientSample | None = None  # the fitted model's sample (None: every training patient)
        self.nodes_: dict[str, Node] = {}
        self.root_: str = ""
        self.anchor_: str | None = None
        self.static_: list[str] = []
        self.accounting_: dict[str, Any] | None = None
        self.charges_: list[Charge] = []  # every measurement's label, cost, input distance and noise scale

    @property
    def epsilon(self) -> float:
        return self._epsilon

    @property
    def delta(self) -> float:
        return self._delta

    def get_params(self) -> dict[str, Any]:
        return {
            "epsilon": self._epsilon,
            "delta": self._delta,
            "max_rows_per_patient": self.max_rows_per_patient,
            "max_values_per_patient": self.max_values_per_patient,
            "bins": self.bins,
            "max_categories": self.max_categories,
            "domain_share": self.domain_share,
            "max_children": self.max_children,
            "targets": list(self.targets),
            "fit_patients": self.fit_patients,
        }

    def privacy_accounting(self) -> dict[str, Any] | None:
        return self.accounting_

    def release_size(self, n_train: int) -> int | None:
        """The root table's noisy row total (one row per patient), rounded: ``n_train`` is not read."""
        root = self.nodes_.get(self.root_)
        if root is None or root.model is None:
            return None
        rate = self.sample_.rate if self.sample_ is not None else 1.0
        return max(1, int(round(root.model.n_estimate / rate)))  # the sample's noisy total, scaled to the population

    def fit_sample_rate(self, count_patients: Callable[[], int]) -> float | None:
        """The rate at which the engine keeps training patients (Poisson) before bounding, or None for all.

        With ``fit_patients`` set, ``count_patients()`` (the exact number of training patients) is released only
        through a noisy count (``COUNT_SHARE`` of epsilon) and the rate is ``fit_patients`` over it, capped at 1;
        the next ``fit`` accounts for the count and for the sampling (``synth.engine.local.fit_input``)."""
        self._planned_sample = None if self.fit_patients is None else self._patient_sample(count_patients())
        if self._planned_sample is None or self._planned_sample.rate >= 1:
            return None
        return self._planned_sample.rate

    def _patient_sample(self, n_patients: int) -> PatientSample:
        assert self.fit_patients is not None
        count = noisy_count(n_patients, epsilon=COUNT_SHARE * self._epsilon, label="count:training patients")
        return PatientSample(self.fit_patients, min(1.0, self.fit_patients / max(1, count.value)), count)

    def _sample_patients(self, data: TrainingData, rate: float) -> TrainingData:
        """``data`` with each patient kept independently with probability ``rate`` (fresh randomness, never
        replayable): the fit's own Poisson sample when no engine sampled before it (``fit`` called directly)."""
        if rate >= 1:
            return data
        ptable, pcol = data.schema.patient.table, data.schema.patient.column
        frame = data.frames[ptable]
        patients = frame[pcol].drop_duplicates().to_numpy()
        rng = np.random.default_rng(secrets.randbits(128))
        kept = frame[frame[pcol].isin(patients[rng.random(len(patients)) < rate])].reset_index(drop=True)
        return TrainingData(data.schema, {**data.frames, ptable: kept}, data.child_counts, rate)  # descendants follow in _bounded_rows

    def _fit_budget(self, plan: PatientSample | None) -> tuple[float, float]:
        """(epsilon, delta) the measurements on the fit's rows may spend: all of it on every patient; on a sample,
        what remains after the count, before amplification by sampling at the sample's rate."""
        if plan is None:
            return self._epsilon, self._delta
        epsilon = self._epsilon - plan.count.epsilon
        if plan.rate >= 1:
            return epsilon, self._delta
        delta = self._delta / plan.rate
        if delta >= 1:
            raise GeneratorError(f"dp_mst cannot fit on a sample at rate {plan.rate:.3g} with delta {self._delta:g}: the sample's "
                                 f"delta would be {delta:.3g}; raise fit_patients or delta.")
        return epsilon_before_sampling(epsilon, plan.rate), delta

    def contribution_caps(self, schema: Schema) -> dict[str, int]:
        """Rows per patient each table contributes at most (public: the schema and the parameters decide).

        An engine may bound the training data to these caps before the fit (``synth.engine.local``, H17);
        ``_bounded_rows`` then keeps every row it is given."""
        self._plan(schema)
        return {name: node.cap for name, node in self.nodes_.items() if name in schema.tables}

    def count_limits(self, schema: Schema) -> dict[str, int]:
        """Per table whose rows per parent row are modelled past its cap, the public limit of that count: an
        engine that bounds the rows first counts them for the fit (``synth.engine.local.bounded``)."""
        self._plan(schema)
        return {child: self._count_limit(node, child) for node in self.nodes_.values() if node.name != VIRTUAL
                for child in node.children if self._count_limit(node, child) > self.nodes_[child].cap}

    # -- the tree, from the schema only --------------------------------------------------------------
    def _plan(self, schema: Schema) -> None:
        ptable, pcol = schema.patient.table, schema.patient.column
        patient = schema.patient_table
        nodes: dict[str, Node] = {}
        if patient.primary_key == [pcol]:
            self.root_ = ptable
            self.static_ = []
        else:
            self.root_ = VIRTUAL
            self.static_ = [c.name for c in patient.columns.values() if _modelled(c) and c.privacy == "quasi_identifier"]
            nodes[VIRTUAL] = Node(VIRTUAL, None, None, None, cap=1, key=pcol, columns=list(self.static_))
        for name in schema.topological_order():
            table = schema.tables[name]
            if table.reference:
                continue
            own = [c for c in table.columns if _modelled(table.columns[c]) and not (name == ptable and c in self.static_)]
            if name == self.root_:
                nodes[name] = Node(name, None, None, None, cap=1, key=pcol, columns=own)
                continue
            if name == ptable:
                cap = min(self.max_rows_per_patient, _key_bound(schema, name) or self.max_rows_per_patient)
                nodes[name] = Node(name, VIRTUAL, pcol, pcol, cap=cap, columns=own)
                continue
            link = schema.parent_of(name)
            if link is None or not schema.path_to_patient(name):
                continue  # not under a patient: released empty
            fk, parent, parent_key = link[0].name, link[1], link[2]
            if parent == ptable and self.root_ == VIRTUAL and parent_key == pcol:
                parent = VIRTUAL
            if parent not in nodes:
                continue
            nodes[name] = Node(name, parent, fk, parent_key, cap=self.max_rows_per_patient, columns=own)
        for node in nodes.values():
            if node.parent is not None:
                nodes[node.parent].children.append(node.name)
                if node.parent != VIRTUAL and node.parent != self.root_:
                    nodes[node.parent].key = node.parent_key
        root_cols = schema.tables[ptable].columns
        anchors = [c for c in (self.static_ if self.root_ == VIRTUAL else nodes[self.root_].columns)
                   if root_cols[c].type == "datetime" and not root_cols[c].nullable and root_cols[c].privacy != "quasi_identifier"]
        self.anchor_ = anchors[0] if anchors else None
        for node in nodes.values():
            first: str | None = None
            for c in node.columns:
                col = _column(schema, node.name, c)
                if col.type != "datetime":
                    continue
                if first is None:
                    first = c
                    is_root = node.parent is None
                    node.date_base[c] = ANCHOR if (not is_root and self.anchor_ is not None) else None
                else:
                    node.date_base[c] = first
            for child in node.children:
                node.count_low[child] = 1 if (node.name == VIRTUAL and child == ptable) else 0
        self.nodes_ = nodes
        for node in nodes.values():
            node.context = self._choose_context(schema, node)

    def _choose_context(self, schema: Schema, node: Node) -> list[tuple[str, str]]:
        """Columns of the parent / patient row a table's rows are drawn given (rules' references first)."""
        if node.parent is None:
            return []
        parent = self.nodes_[node.parent]
        root = self.nodes_[self.root_]
        chosen: list[tuple[str, str]] = []
        table = schema.tables.get(node.name)
        for rule in table.rules if table is not None else []:
            for scope, col in _REF.findall(rule.check):
                if scope == "parent" and col in parent.columns:
                    ref = (parent.name, col)
                elif col in root.columns:
                    ref = (root.name, col)
                elif scope == "patient" and col in parent.columns and parent.name == schema.patient.table:
                    ref = (parent.name, col)
                else:
                    continue
                if col == self.anchor_ or ref in chosen or len(chosen) >= MAX_RULE_CONTEXT:
                    continue
                chosen.append(ref)
        fill = sorted(
            (len(_column(schema, parent.name, c).values or [True, False]), i, c)
            for i, c in enumerate(parent.columns)
            if _column(schema, parent.name, c).type in ("categorical", "boolean")
            and (_column(schema, parent.name, c).values or _column(schema, parent.name, c).type == "boolean")
        )
        for _size, _i, c in fill:
            if len(chosen) >= MAX_CONTEXT:
                break
            if (parent.name, c) not in chosen:
                chosen.append((parent.name, c))
        return chosen

    # -- fit -----------------------------------------------------------------------------------------
    def _fit(self, data: TrainingData, progress: Progress) -> None:
        schema = data.schema
        self._plan(schema)
        self._check_targets(schema)
        plan, self._planned_sample = self._planned_sample, None
        if data.sample_rate is not None and (plan is None or plan.rate != data.sample_rate):
            raise GeneratorError(f"dp_mst was given a sample of patients at rate {data.sample_rate:.4g} that its own noisy count "
                                 "did not set (fit_sample_rate); its accounting would not hold.")
        if self.fit_patients is not None and plan is None:  # fit called directly: count here
            plan = self._patient_sample(data.n_patients())
        if plan is not None and data.sample_rate is None:  # no engine sampled: sample here, never claim a sample not drawn
            data = self._sample_patients(data, plan.rate)
        self.sample_ = plan
        epsilon, delta = self._fit_budget(plan)
        if plan is not None:
            progress(f"fitting on a Poisson sample of training patients at rate {plan.rate:.4g} (fit_patients {plan.fit_patients:,}): "
                     f"epsilon {epsilon:.4g}, delta {delta:.3g} on the sample")
        rng = np.random.default_rng(secrets.randbits(128))  # contribution bounds: never replayable
        progress("bounding each patient's rows")
        rows = self._bounded_rows(data, rng)
        numeric = {name: self._numeric_dates(schema, node, rows) for name, node in self.nodes_.items()}
        groups = self._selection_groups(schema)
        n_sel = len(groups)
        delta_sel = delta / 2.0 / n_sel if n_sel else 0.0
        delta_conv = delta - delta_sel * n_sel
        rho_total = rho_for_epsilon(epsilon, delta_conv)
        accountant = Accountant(rho_budget=rho_total, delta_budget=delta_sel * n_sel)
        rho_domain = self.domain_share * rho_total if n_sel else 0.0
        progress(f"privacy budget: epsilon {epsilon:.4g}, delta {delta:.3g} -> rho {rho_total:.4g} (zCDP)")
        kept: dict[tuple[str, str], list[str]] = {}
        for (node_name, group), columns in groups.items():
            progress(f"selecting the values of {node_name}.{group} privately")
            node = self.nodes_[node_name]
            kept[(node_name, group)] = self._select(rows[node_name], columns, node.cap, rho_domain / n_sel, delta_sel, accountant,
                                                    f"values:{node_name}.{group}")
        for node in self.nodes_.values():
            node.codecs = self._codecs(schema, node, kept)
        rho_model = rho_total - rho_domain
        weights = {name: self._weight(node) for name, node in self.nodes_.items()}
        total_weight = sum(weights.values())
        coarse: dict[str, np.ndarray] = {}
        for name in self._order():
            node = self.nodes_[name]
            progress(f"measuring {name} (at most {node.cap} row(s) per patient)")
            x, specs = self._encode_training(node, rows, numeric[name], coarse)
            node.model = fit_tree(
                x, specs, sensitivity=node.cap, rho=rho_model * weights[name] / total_weight, accountant=accountant,
                label=f"table:{name}", bins=self.bins, workload=self._workload(schema, node),
            )
            coarse[name] = np.stack([node.model.coarse(j, x[:, j]) for j in range(x.shape[1])], axis=1) if x.shape[1] else x
        spent_rho, spent_delta = accountant.rho_spent, accountant.delta_spent
        self.charges_ = list(accountant.charges)
        self.accounting_ = {
            "unit": "patient",
            "neighbouring": "add or remove one patient with all of their rows",
            "mechanism": "MST (McKenna et al. 2021) per table, OpenDP discrete Gaussian / Gumbel / thresholded Gaussian",
            "epsilon": self._epsilon,
            "delta": self._delta,
            "rho_budget": rho_total,
            "rho_spent": spent_rho,
            "delta_selection": spent_delta,
            "epsilon_spent": self._overall_epsilon(epsilon_for_rho(spent_rho, delta - spent_delta) if spent_rho > 0 else 0.0, plan),
            "rows_per_patient_cap": {name: node.cap for name, node in self.nodes_.items()},
            "children_per_row_limit": {f"{name}.{c}": self._count_limit(node, c) for name, node in self.nodes_.items() for c in node.children},
            "workload": list(self.targets),
            "spent_by": accountant.summary(),
            "kept_values": {f"{t}.{g}": len(v) for (t, g), v in kept.items()},
        }
        if plan is not None:
            self.accounting_["fit_sample"] = self._sample_accounting(plan, epsilon, delta)

    @staticmethod
    def _overall_epsilon(spent: float, plan: PatientSample | None) -> float:
        """The epsilon of the whole fit from the epsilon spent on its rows: plus the count's, amplified by sampling."""
        if plan is None:
            return spent
        return plan.count.epsilon + (amplified_epsilon(spent, plan.rate) if plan.rate < 1 else spent)

    @staticmethod
    def _sample_accounting(plan: PatientSample, epsilon: float, delta: float) -> dict[str, Any]:
        return {
            "fit_patients": plan.fit_patients,
            "rate": plan.rate,
            "selection": "Poisson: each training patient kept independently with probability rate (keyed by a fresh secret)",
            "rate_from": "fit_patients over a noisy count of the training patients, capped at 1",
            "count_epsilon": plan.count.epsilon,
            "count_mechanism": f"OpenDP {plan.count.mechanism} (discrete Laplace, scale {plan.count.scale:.4g}, sensitivity 1)",
            "epsilon_on_sample": epsilon,
            "delta_on_sample": delta,
            "amplification": ("Poisson subsampling, add/remove one patient: epsilon' = log(1 + rate (e^epsilon - 1)), "
                              "delta' = rate delta (Li, Qardaji and Su 2012; Balle, Barthe and Gaboardi, NeurIPS 2018)"
                              if plan.rate < 1 else "none (rate 1: every training patient)"),
        }

    def _order(self) -> list[str]:
        return breadth_first(self.root_, lambda name: self.nodes_[name].children)

    def _bounded_rows(self, data: TrainingData, rng: np.random.Generator) -> dict[str, _Rows]:
        """Each node's training rows after the per-patient caps, with parent and patient row positions."""
        schema = data.schema
        ptable, pcol = schema.patient.table, schema.patient.column
        frames = data.frames
        out: dict[str, _Rows] = {}
        for name in self._order():
            node = self.nodes_[name]
            if name == VIRTUAL:
                pf = frames[ptable].sort_values(schema.patient_table.primary_key, kind="stable")
                first = pf.groupby(pcol, sort=True, as_index=False).first()
                frame = first[[pcol, *self.static_]].reset_index(drop=True)
                out[name] = _Rows(frame, np.full(len(frame), -1), np.arange(len(frame)))
                continue
            frame = frames[name]
            if not frame.index.equals(pd.RangeIndex(len(frame))):
                frame = frame.reset_index(drop=True)
            if node.parent is None:
                out[name] = _Rows(frame, np.full(len(frame), -1), np.arange(len(frame)))
                continue
            parent = out[node.parent]
            pkey = parent.frame[node.parent_key if node.parent != VIRTUAL else pcol]
            lookup = pd.Series(np.arange(len(pkey)), index=pkey.to_numpy())
            lookup = lookup[~lookup.index.duplicated()]
            prow = lookup.reindex(frame[node.fk].to_numpy()).to_numpy()
            alive = ~np.isnan(prow)
            if not alive.all():  # rows are copied only where some are dropped (the engine's bounded rows never are)
                frame = frame[alive].reset_index(drop=True)
            prow = prow[alive].astype(np.int64)
            patient = parent.patient_row[prow]
            order = np.lexsort((rng.random(len(frame)), patient))
            rank = np.empty(len(frame), dtype=np.int64)
            if len(frame):
                sorted_p = patient[order]
                starts = np.r_[0, np.flatnonzero(np.diff(sorted_p)) + 1]
                rank[order] = np.arange(len(frame)) - np.repeat(starts, np.diff(np.r_[starts, len(frame)]))
            keep = rank < node.cap
            counted = data.child_counts.get(name)  # rows were bounded before the fit: the engine counted them all
            if counted is not None:
                per_parent = (pd.Series(counted["n"].to_numpy(), index=counted["key"].to_numpy())
                              .reindex(pkey.to_numpy()).fillna(0).to_numpy(dtype=np.int64))
            else:
                per_parent = np.bincount(prow, minlength=len(pkey))[: len(pkey)]
            if not keep.all():
                frame, prow, patient = frame[keep].reset_index(drop=True), prow[keep], patient[keep]
            out[name] = _Rows(frame, prow, patient, per_parent)
        return out

    def _numeric_dates(self, schema: Schema, node: Node, rows: dict[str, _Rows]) -> dict[str, np.ndarray]:
        """Date columns as days: absolute, from the patient's anchor, or from the row's first date."""
        out: dict[str, np.ndarray] = {}
        r = rows[node.name]
        for c, base in node.date_base.items():
            d = days(r.frame[c])
            if base is None:
                out[c] = d
            elif base == ANCHOR:
                root = rows[self.root_]
                anchor = days(root.frame[self.anchor_])
                out[c] = d - anchor[r.patient_row]
            else:
                out[c] = d - days(r.frame[base])
        return out

    def _selection_groups(self, schema: Schema) -> dict[tuple[str, str], list[str]]:
        """Columns whose values are not declared, grouped as the schema groups them (one selection per group)."""
        groups: dict[tuple[str, str], list[str]] = {}
        for node in self.nodes_.values():
            for c in node.columns:
                col = _column(schema, node.name, c)
                if col.type in ("code", "text") or (col.type == "categorical" and not col.values):
                    groups.setdefault((node.name, col.group or c), []).append(c)
        return groups

    def _select(self, rows: _Rows, columns: list[str], cap: int, rho: float, delta: float, accountant: Accountant, label: str) -> list[str]:
        """Values of ``columns`` held by enough patients (at most ``max_values_per_patient`` counted per patient)."""
        k = min(self.max_values_per_patient, cap * len(columns))
        parts = [pd.DataFrame({"p": rows.patient_row, "v": rows.frame[c].to_numpy()}) for c in columns]
        pairs = pd.concat(parts, ignore_index=True).dropna().drop_duplicates() if parts else pd.DataFrame({"p": [], "v": []})
        pairs["v"] = pairs["v"].astype(str)
        rng = np.random.default_rng(secrets.randbits(128))
        pairs = pairs.assign(r=rng.random(len(pairs))).sort_values(["p", "r"], kind="stable")
        pairs = pairs[pairs.groupby("p").cumcount() < k]
        counts = pairs["v"].value_counts()
        selected = select_values(counts.to_dict(), max_values_per_patient=k, rho=rho, delta=delta, accountant=accountant, label=label)
        ranked = sorted(selected.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_categories]
        return sorted(v for v, _ in ranked)

    def _codecs(self, schema: Schema, node: Node, kept: dict[tuple[str, str], list[str]]) -> dict[str, Codec]:
        codecs: dict[str, Codec] = {}
        for c in node.columns:
            col = _column(schema, node.name, c)
            if col.type == "datetime":
                base = node.date_base.get(c)
                nullable = col.nullable or (base not in (None, ANCHOR) and _column(schema, node.name, base).nullable)
                codecs[c] = year_codec(c, nullable=nullable) if base is None else offset_codec(c, nullable=nullable)
            elif col.type == "numerical":
                codecs[c] = number_codec(col)
            elif col.type == "boolean":
                codecs[c] = values_codec(c, [False, True], nullable=col.nullable)
            elif col.type == "categorical" and col.values:
                codecs[c] = values_codec(c, list(col.values), nullable=col.nullable)
            else:
                values = kept[(node.name, col.group or c)]
                codecs[c] = values_codec(c, values, nullable=col.nullable, other=True, placeholder=placeholder_for(col))
        for child in node.children:
            codecs[f"__n_{child}"] = count_codec(f"__n_{child}", node.count_low[child], self._count_limit(node, child))
        return codecs

    def _count_limit(self, node: Node, child: str) -> int:
        """Largest number of ``child`` rows per row of ``node`` modelled (public: the parameters and the schema)."""
        cap = self.nodes_[child].cap
        if node.name == VIRTUAL:  # the patient table's rows per patient: bounded by its key, already the cap
            return cap
        return max(cap, self.max_children)

    def _workload(self, schema: Schema, node: Node) -> tuple[int, ...]:
        """Positions of this table's attributes named by ``targets``."""
        names = node.attributes()
        table = schema.patient.table if node.name == VIRTUAL else node.name
        return tuple(names.index(c) for t, _, c in (x.partition(".") for x in self.targets) if t == table and c in node.columns)

    def _check_targets(self, schema: Schema) -> None:
        modelled = {(schema.patient.table if n.name == VIRTUAL else n.name, c) for n in self.nodes_.values() for c in n.columns}
        unknown = [t for t in self.targets if tuple(t.split(".", 1)) not in modelled]
        if unknown:
            raise GeneratorError(f"The 'targets' parameter of dp_mst must name modelled 'table.column's of schema {schema.name!r}; "
                                 f"got {unknown!r} instead.")

    def _weight(self, node: Node) -> float:
        sizes = [codec.size for codec in node.codecs.values()] + [self.bins + 1] * len(node.context)
        active = sum(1 for s in sizes if s > 1)
        return float(max(1, 3 * active - 2))

    def _encode_training(
        self, node: Node, rows: dict[str, _Rows], numeric: dict[str, np.ndarray], coarse: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, list[AttrSpec]]:
        r = rows[node.name]
        n = len(r.frame)
        cols: list[np.ndarray] = []
        specs: list[AttrSpec] = []
        for c in node.columns:
            codec = node.codecs[c]
            column = r.frame[c]
            if c in numeric:
                values = numeric[c]
            else:  # a categorical is encoded through its categories (Codec.encode)
                values = column.array if isinstance(column.dtype, pd.CategoricalDtype) else column.to_numpy()
            cols.append(codec.encode(values))
            specs.append(AttrSpec(c, codec.size, codec.ordered, codec.null_code))
        for child in node.children:
            codec = node.codecs[f"__n_{child}"]
            full = rows[child].per_parent
            counts = full if full is not None else np.bincount(rows[child].parent_row, minlength=n)[:n]
            cols.append(codec.encode(np.minimum(counts, self._count_limit(node, child))))
            specs.append(AttrSpec(f"__n_{child}", codec.size, True, None))
        for i, (source, attr) in enumerate(node.context):
            smodel = self.nodes_[source].model
            assert smodel is not None
            j = smodel.index(attr)
            positions = r.parent_row if source == node.parent else r.patient_row
            cols.append(coarse[source][positions, j] if n else np.zeros(0, dtype=np.int64))
            scodec = self.nodes_[source].codecs[attr]
            null = int(smodel.coarse_of_fine[j][scodec.null_code]) if scodec.null_code is not None else None
            specs.append(AttrSpec(f"__ctx_{i}", smodel.sizes[j], scodec.ordered, null))
        x = np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)
        return x, specs

    # -- sample --------------------------------------------------------------------------------------
    def _sample(self, n_patients: int, rng: np.random.Generator, seed: int) -> dict[str, pd.DataFrame]:
        from synth.load import connect

        con = connect()  # one connection checks every batch's rules (opening one per check costs more than the check)
        try:
            return self._sample_on(con, n_patients, rng)
        finally:
            con.close()

    def _sample_on(self, con: duckdb.DuckDBPyConnection, n_patients: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
        schema = self.schema_
        assert schema is not None
        ptable, pcol = schema.patient.table, schema.patient.column
        codes: dict[str, np.ndarray] = {}
        parent_row: dict[str, np.ndarray] = {}
        patient_row: dict[str, np.ndarray] = {}
        decoded: dict[str, pd.DataFrame] = {}
        frames: dict[str, pd.DataFrame] = {}
        for name in self._order():
            node = self.nodes_[name]
            model = node.model
            assert model is not None
            if node.parent is None:
                n = n_patients
                parent_row[name] = np.full(n, -1)
                patient_row[name] = np.arange(n)
            else:
                pnode = self.nodes_[node.parent]
                j = pnode.model.index(f"__n_{name}")  # type: ignore[union-attr]
                counts = self._decode_attr(pnode, j, codes[node.parent][:, j], rng).astype(np.int64)
                slots = np.repeat(np.arange(len(counts)), np.maximum(counts, 0))
                parent_row[name] = slots
                patient_row[name] = patient_row[node.parent][slots]
                n = slots.size
            evidence = self._evidence(node, codes, parent_row[name], patient_row[name])
            c = model.sample(n, rng, evidence, marginal=self._workload(schema, node))
            frame = self._decode_rows(node, c, patient_row[name], decoded, rng)
            frame = self._keys(schema, node, frame, parent_row[name], patient_row[name], frames)
            if name in schema.tables:
                if name == ptable and self.root_ == VIRTUAL:
                    frame = _with_static(frame, decoded[VIRTUAL], patient_row[name], self.static_)
                frame = self._repair(schema, node, frame, c, evidence, patient_row[name], decoded, frames, con, rng)
                frames[name] = frame
            codes[name] = c
            decoded[name] = frame
        for name, table in schema.tables.items():
            if name not in frames:
                frames[name] = pd.DataFrame({c: pd.Series(dtype="object") for c in table.columns})
        if self.root_ == VIRTUAL:
            frames[ptable][pcol] = patient_row[ptable]
        return frames

    def _evidence(self, node: Node, codes: dict[str, np.ndarray], parent_row: np.ndarray, patient_row: np.ndarray) -> dict[int, np.ndarray]:
        model = node.model
        assert model is not None
        out: dict[int, np.ndarray] = {}
        for i, (source, attr) in enumerate(node.context):
            j = self.nodes_[source].model.index(attr)  # type: ignore[union-attr]
            rows = parent_row if source == node.parent else patient_row
            out[model.index(f"__ctx_{i}")] = codes[source][rows, j]
        return out

    def _decode_attr(self, node: Node, j: int, coarse: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        model = node.model
        assert model is not None
        name = model.names[j]
        fine = model.to_fine(j, coarse, rng)
        return node.codecs[name].decode(fine, rng)

    def _decode_rows(self, node: Node, c: np.ndarray, patient_row: np.ndarray, decoded: dict[str, pd.DataFrame], rng: np.random.Generator) -> pd.DataFrame:
        """A node's own columns from coarse codes: values, then dates from their day offsets."""
        model = node.model
        assert model is not None
        out: dict[str, Any] = {}
        raw: dict[str, np.ndarray] = {}
        for c_name in node.columns:
            raw[c_name] = self._decode_attr(node, model.index(c_name), c[:, model.index(c_name)], rng)
        anchor_days: np.ndarray | None = None
        if self.anchor_ is not None and ANCHOR in node.date_base.values():
            anchor_days = days(decoded[self.root_][self.anchor_])[patient_row]
        for c_name in node.columns:
            base = node.date_base.get(c_name, "__none__")
            if base == "__none__":
                out[c_name] = raw[c_name]
            elif base is None:
                out[c_name] = from_days(raw[c_name])
            elif base == ANCHOR:
                out[c_name] = from_days(raw[c_name] + anchor_days)  # type: ignore[operator]
            else:
                out[c_name] = from_days(raw[c_name] + days(pd.Series(out[base])))
        return pd.DataFrame(out, index=pd.RangeIndex(c.shape[0]))

    def _keys(self, schema: Schema, node: Node, frame: pd.DataFrame, parent_row: np.ndarray, patient_row: np.ndarray,
              frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Surrogate keys: own key, link to the parent row, patient key, fresh values for other ids."""
        if node.name not in schema.tables:
            return frame
        table = schema.tables[node.name]
        n = len(frame)
        pt = schema.patient
        for col in table.columns_of_type("id"):
            if col.name == node.fk and node.parent is not None:
                frame[col.name] = parent_row if node.parent == VIRTUAL else frames[node.parent][node.parent_key].to_numpy()[parent_row]
            elif col.foreign_key == (pt.table, pt.column) or (node.name == pt.table and col.name == pt.column):
                frame[col.name] = patient_row
            elif col.foreign_key is not None and col.nullable:
                frame[col.name] = pd.Series([pd.NA] * n, dtype="object")
            else:
                frame[col.name] = np.arange(n)
        return frame

    def _repair(self, schema: Schema, node: Node, frame: pd.DataFrame, c: np.ndarray, evidence: dict[int, np.ndarray],
                patient_row: np.ndarray, decoded: dict[str, pd.DataFrame], frames: dict[str, pd.DataFrame],
                con: duckdb.DuckDBPyConnection, rng: np.random.Generator) -> pd.DataFrame:
        """Redraw what breaks a rule of the schema or repeats a primary key (``c``, the coarse codes, updated in place).

        First, for ``REPAIR_ROUNDS`` rounds, only the attributes a broken rule is about (``_rule_attributes``),
        each drawn from the model given the rest of its row and restricted to the codes whose candidate value
        keeps the rules about it (``_redraw``, ``TreeModel.resample``): the rule's column that the tree draws
        first (a workload target) keeps the distribution the model gives it. Redrawing whole rows instead
        conditions every attribute on the rules: where the noisy pair table puts mass on forbidden cells (an
        inpatient claim with no stay), the redraws turn rows into other values of the target. Then, for
        ``max_rounds`` rounds, whole rows given their context (the base class drops what still breaks). Each
        round checks only the rows redrawn in the round before. Post-processing: it reads the model and the
        public rules only."""
        model = node.model
        assert model is not None
        attributes, touched = self._rule_attributes(schema, node)
        rows: np.ndarray | None = None  # rows to check: all at first, then those just redrawn
        for round_ in range(REPAIR_ROUNDS + self.max_rounds):
            broken = self._broken(schema, node.name, frame, frames, con, rows)
            rows = np.unique(np.concatenate(list(broken.values()))) if broken else np.array([], dtype=np.int64)
            if rows.size == 0:
                break
            self._note_rejected(node.name, int(rows.size))
            free = np.zeros((rows.size, len(model.names)), dtype=bool)  # per broken row, the attributes to redraw
            whole = np.zeros(rows.size, dtype=bool)  # rows redrawn whole
            for rule, idx in broken.items():
                at = np.searchsorted(rows, idx)
                attrs = attributes.get(rule) if round_ < REPAIR_ROUNDS else None
                if attrs is None:
                    whole[at] = True
                else:
                    free[at[:, None], np.array(attrs)[None, :]] = True
            if whole.any():
                idx = rows[whole]
                c[idx] = model.sample(idx.size, rng, {j: v[idx] for j, v in evidence.items()}, marginal=self._workload(schema, node))
                fresh = self._decode_rows(node, c[idx], patient_row[idx], decoded, rng)
                for col in fresh.columns:
                    _put(frame, col, idx, fresh[col].to_numpy())
            patterns, inverse = unique_rows(free[~whole], [2] * free.shape[1])
            partial = rows[~whole]
            for p, pattern in enumerate(patterns):
                idx = partial[inverse == p]
                key = sorted(np.flatnonzero(pattern).tolist(), key=model.order.index)
                for j in key:
                    self._redraw(schema, node, frame, idx, j, c, patient_row, decoded, frames, con, rng, touched[j])
        return frame

    def _redraw(self, schema: Schema, node: Node, frame: pd.DataFrame, rows: np.ndarray, j: int, c: np.ndarray,
                patient_row: np.ndarray, decoded: dict[str, pd.DataFrame], frames: dict[str, pd.DataFrame],
                con: duckdb.DuckDBPyConnection, rng: np.random.Generator, rules: set[str]) -> None:
        """Attribute ``j`` of ``rows`` drawn again given the rest of each row, among the codes with a candidate value
        that breaks none of ``rules``: every code of ``j`` is decoded ``FINE_TRIES`` times per row (values within
        its bin), the candidates are checked together, and a row takes the first good candidate of the code it
        draws. A row without one keeps its values (a later round tries again, then redraws the whole row).
        Rows go in batches of at most ``MAX_CANDIDATES`` candidates, so memory stays bounded on large samples."""
        model = node.model
        assert model is not None
        step = max(1, MAX_CANDIDATES // (model.sizes[j] * FINE_TRIES))
        for start in range(0, rows.size, step):
            self._redraw_batch(schema, node, frame, rows[start:start + step], j, c, patient_row, decoded, frames, con, rng, rules)

    def _redraw_batch(self, schema: Schema, node: Node, frame: pd.DataFrame, rows: np.ndarray, j: int, c: np.ndarray,
                      patient_row: np.ndarray, decoded: dict[str, pd.DataFrame], frames: dict[str, pd.DataFrame],
                      con: duckdb.DuckDBPyConnection, rng: np.random.Generator, rules: set[str]) -> None:
        model = node.model
        assert model is not None
        k, m = model.sizes[j], FINE_TRIES
        rep = np.repeat(rows, k * m)
        cand = frame.iloc[rep].reset_index(drop=True)
        cc = c[rep].copy()
        cc[:, j] = np.tile(np.repeat(np.arange(k), m), rows.size)
        self._redecode(node, cand, np.arange(rep.size), [model.names[j]], cc, patient_row[rep], decoded, rng)
        ok = np.ones(rep.size, dtype=bool)
        for rule, idx in self._broken(schema, node.name, cand, frames, con, None, key=False).items():
            if rule in rules:
                ok[idx] = False
        ok = ok.reshape(rows.size, k, m)
        allowed = ok.any(axis=2)
        code = model.resample(c[rows], j, rng, allowed=allowed)
        fixed = allowed.any(axis=1)
        at = np.flatnonzero(fixed)
        c[rows[at], j] = code[at]
        pick = (at * k + code[at]) * m + ok[at, code[at]].argmax(axis=1)
        name = model.names[j]
        for col in [name, *(d for d, b in node.date_base.items() if b == name)]:
            _put(frame, col, rows[at], cand[col].to_numpy()[pick])

    def _rule_attributes(self, schema: Schema, node: Node) -> tuple[dict[str, tuple[int, ...]], dict[int, set[str]]]:
        """For each rule reading columns of the table's own row, the model attributes to redraw when it breaks;
        and for each attribute, the rules its value can change (those reading it or a date counted from it).

        The rule's own modelled columns are ranked by when the tree draws them (a workload target is drawn
        first); a date stored as an offset from another date the rule reads ranks after it, since its offset
        is what the rule is about. The first one is kept and the others are redrawn; a rule about one column
        redraws that column. A rule reading none (only ``parent.`` / ``patient.``) is not listed: whole rows."""
        model = node.model
        assert model is not None
        by_lower = {c.lower(): c for c in node.columns}
        attributes: dict[str, tuple[int, ...]] = {}
        touched: dict[int, set[str]] = {model.index(c): set() for c in node.columns}
        for rule in schema.tables[node.name].rules:
            cols = {by_lower[n.lower()] for scope, n in compile_check(rule.check).columns if scope == "" and n.lower() in by_lower}
            if not cols:
                continue
            for col in cols:
                touched[model.index(col)].add(rule.name)
                base = node.date_base.get(col)
                if base in by_lower.values():
                    touched[model.index(base)].add(rule.name)  # moving the base moves this date
            ranked = sorted(cols, key=lambda col: (node.date_base.get(col) in cols, model.order.index(model.index(col))))
            attributes[rule.name] = tuple(model.index(col) for col in (ranked[1:] if len(ranked) > 1 else ranked))
        return attributes, touched

    def _redecode(self, node: Node, frame: pd.DataFrame, rows: np.ndarray, columns: list[str], c: np.ndarray,
                  patient_row: np.ndarray, decoded: dict[str, pd.DataFrame], rng: np.random.Generator) -> None:
        """Decode ``columns`` of ``rows`` again from their codes in ``c``; dates stored as offsets from them move with them."""
        model = node.model
        assert model is not None
        for col in sorted(columns, key=node.columns.index):  # a date before the dates counted from it
            raw = self._decode_attr(node, model.index(col), c[rows, model.index(col)], rng)
            base = node.date_base.get(col, "__none__")
            if base == "__none__":
                _put(frame, col, rows, raw)
                continue
            old = days(frame[col].iloc[rows])
            if base is None:
                new = days(from_days(raw))
            elif base == ANCHOR:
                new = days(from_days(raw + days(decoded[self.root_][self.anchor_])[patient_row[rows]]))
            else:
                new = days(from_days(raw + days(frame[base].iloc[rows])))
            _put(frame, col, rows, from_days(new).to_numpy())
            for dep, dep_base in node.date_base.items():
                if dep_base == col and dep not in columns:
                    _put(frame, dep, rows, from_days(days(frame[dep].iloc[rows]) - old + new).to_numpy())

    def _broken(self, schema: Schema, name: str, frame: pd.DataFrame, frames: dict[str, pd.DataFrame],
                con: duckdb.DuckDBPyConnection | None = None, rows: np.ndarray | None = None, *, key: bool = True) -> dict[str, np.ndarray]:
        """Positions of the rows breaking each rule of the table (among ``rows``, all when None), and of rows
        repeating a primary key (under ``KEY``). Rules read one row (and its parent and patient rows), so a
        subset is checked alone."""
        table = schema.tables[name]
        out: dict[str, np.ndarray] = {}
        if key and table.primary_key and len(frame):
            dup = np.flatnonzero(frame.duplicated(subset=table.primary_key).to_numpy())
            if dup.size:
                out[KEY] = dup
        if table.rules and len(frame):
            subset = frame if rows is None else frame.iloc[rows].reset_index(drop=True)
            trial = {**frames, name: subset}
            needed = {name, *(p[2] for p in schema.path_to_patient(name))}
            if len(subset) and all(t in trial for t in needed):
                for rule, idx in _violations(schema, trial, name, con=con).items():
                    out[rule] = idx if rows is None else rows[idx]
        return out


def _put(frame: pd.DataFrame, column: str, rows: np.ndarray, values: Any) -> None:
    """``frame[column]`` with ``rows`` set to ``values`` (a new array: the frame's own is never written through)."""
    current = frame[column].to_numpy().copy()
    current[rows] = values
    frame[column] = current

def _with_static(frame: pd.DataFrame, virtual: pd.DataFrame, patient_row: np.ndarray, static: list[str]) -> pd.DataFrame:
    for c in static:
        frame[c] = virtual[c].to_numpy()[patient_row]
    return frame


def _modelled(col: Column) -> bool:
    return col.type != "id" and col.privacy != "direct_identifier"


def _column(schema: Schema, node: str, column: str) -> Column:
    if node == VIRTUAL:
        return schema.patient_table.columns[column]
    return schema.tables[node].columns[column]


def _key_bound(schema: Schema, table: str) -> int | None:
    """Rows per patient that the primary key allows when its other columns have finite declared domains."""
    t = schema.tables[table]
    others = [c for c in t.primary_key if c != schema.patient_column_of(table)]
    if not others:
        return None
    bound = 1
    for c in others:
        col = t.columns[c]
        if col.type == "boolean":
            bound *= 2
        elif col.type == "categorical" and col.values:
            bound *= len(col.values)
        elif col.type == "numerical" and col.integer and col.minimum is not None and col.maximum is not None:
            bound *= int(col.maximum - col.minimum + 1)
        else:
            return None
    return bound
