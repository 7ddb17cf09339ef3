"""MST on one table of integer codes: private one-way marginals, a private spanning tree of pairs, private pair marginals.

McKenna, Miklau and Sheldon, "Winning the NIST contest: a scalable and general approach to
differentially private synthetic data" (Journal of Privacy and Confidentiality, 2021), with its
budget split (a third each):

1. every attribute's one-way marginal, with Gaussian noise; wide ordered domains (numbers, dates)
   are then *compressed* into at most ``bins`` bins of about equal estimated mass, and wide
   categorical ones keep their ``bins - 1`` largest values and merge the rest (post-processing of
   the noisy counts, so it costs nothing more);
2. a maximum spanning tree over the attribute pairs, each edge chosen by the exponential mechanism
   among the pairs that join two parts of the forest (Kruskal's order), scored by how far the true
   pair counts are from the independent model of step 1 (L1 distance; one patient moves a score by
   at most the table's sensitivity);
3. the selected pairs' two-way marginals, with Gaussian noise.

A *workload* (AIM's idea: McKenna, Mullins, Sheldon and Miklau, "AIM: an adaptive and iterative
mechanism for differentially private synthetic data", VLDB 2022) can name attributes whose pairs the
analyst needs, e.g. the target of a model trained on the synthetic data: every pair holding one of them
gets a public bonus of ``workload_bonus`` times the noisy row total added to its score before the
exponential mechanism. The bonus depends only on earlier noisy measurements, not on the data, so the
scores' sensitivity is unchanged; the tree then joins the workload's attributes to the others first (a
star around a target, unless another pair is far more dependent). Since the bonus (the row total) dwarfs
the selection noise, the selection then gets ``workload_select`` (a tenth) of the table's budget instead of
a third, and the pair tables the rest: a public split, so the total cost is unchanged, and the target's
pairs, where its rare classes live, get about 1.3x less noise (the claims' care type on the demo).
A workload attribute's one-way marginal also gets ``workload_share`` times the others' share of the
one-way budget (the step's total is unchanged), so a target's rare classes survive the noise.

Because the selected pairs form a tree, the consistent distribution they imply has a closed form:
each noisy table is projected on the non-negative tables of the estimated total (Euclidean
projection on the simplex), fitted to the two one-way estimates by iterative proportional fitting,
and read as the conditional distribution of the child given the parent. Sampling given evidence on
some attributes (the parent row's context, for child tables) is exact: belief propagation upwards,
then sampling downwards (Pearl 1988). Everything after the three measurements is post-processing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from synth.generators.dp_accounting import Accountant, noisy_argmax, noisy_counts

IPF_ROUNDS = 10


@dataclass(frozen=True)
class AttrSpec:
    """An attribute as the model sees it: fine codes ``0..size-1``, whether they are ordered, the null code."""

    name: str
    size: int
    ordered: bool = False
    null_code: int | None = None


@dataclass
class TreeModel:
    """A tree-shaped distribution over the coarse codes of some attributes, with how to go back to fine codes."""

    names: list[str]
    fine_sizes: list[int]
    coarse_of_fine: list[np.ndarray]
    fine_members: list[list[np.ndarray]]
    fine_weights: list[list[np.ndarray]]
    parent: list[int]
    order: list[int]
    marginals: dict[int, np.ndarray]
    conditionals: dict[int, np.ndarray]
    n_estimate: float
    edges: list[tuple[str, str]] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        return [int(c.max()) + 1 if c.size else 1 for c in self.coarse_of_fine]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def coarse(self, j: int, fine: np.ndarray) -> np.ndarray:
        return self.coarse_of_fine[j][np.asarray(fine, dtype=np.int64)]

    def sample(self, n: int, rng: np.random.Generator, evidence: dict[int, np.ndarray] | None = None,
               *, marginal: tuple[int, ...] = ()) -> np.ndarray:
        """``n`` rows of coarse codes; ``evidence`` fixes coarse codes of some attributes per row.

        ``marginal``: roots of the tree drawn from their own one-way estimate, not tilted by the evidence below
        them (a workload target: its noisy pair tables with the parent's context would otherwise swing its rare
        values from one parent row to the next, and their totals with them); the rest is drawn given them."""
        d = len(self.names)
        out = np.zeros((n, d), dtype=np.int64)
        if n == 0 or d == 0:
            return out
        sizes = self.sizes
        evidence = {j: np.asarray(v, dtype=np.int64) for j, v in (evidence or {}).items()}
        if evidence:
            cols = sorted(evidence)
            patterns, inverse = unique_rows(np.stack([evidence[j] for j in cols], axis=1), [sizes[j] for j in cols])
        else:
            cols, patterns, inverse = [], np.zeros((1, 0), dtype=np.int64), np.zeros(n, dtype=np.int64)
        m = patterns.shape[0]
        lam = [np.ones((m, k)) for k in sizes]
        for i, j in enumerate(cols):
            lam[j] = np.zeros((m, sizes[j]))
            lam[j][np.arange(m), patterns[:, i]] = 1.0
        for v in reversed(self.order):  # upward: lambda messages from children to parents
            p = self.parent[v]
            if p >= 0:
                msg = lam[v] @ self.conditionals[v].T
                msg /= np.maximum(msg.max(axis=1, keepdims=True), 1e-300)
                lam[p] = lam[p] * msg
        for v in self.order:  # downward: sample each attribute given its parent's sampled value
            p = self.parent[v]
            prior = self.marginals[v][None, :] if p < 0 else self.conditionals[v][out[:, p]]
            if v in evidence:
                out[:, v] = evidence[v]
                continue
            probs = np.repeat(prior, n, axis=0) if (p < 0 and v in marginal) else prior * lam[v][inverse]
            dead = probs.sum(axis=1) <= 0
            if dead.any():  # evidence the model thinks impossible: ignore it for these rows
                probs[dead] = np.broadcast_to(prior, probs.shape)[dead]
            out[:, v] = _draw(probs, rng)
        return out

    def resample(self, x: np.ndarray, j: int, rng: np.random.Generator, allowed: np.ndarray | None = None) -> np.ndarray:
        """Coarse codes of attribute ``j`` for the rows ``x`` (coarse codes of every attribute), drawn given the
        rest of each row: one Gibbs step, ``P(j | rest)`` proportional to ``P(j | parent) * prod P(child | j)``
        over ``j``'s tree neighbours (Geman and Geman 1984). ``allowed`` (rows x codes of ``j``, boolean)
        restricts each row's draw to some codes; where the model gives them no mass, the draw falls back to
        ``P(j | parent)`` over them, then to equal odds. A row with no allowed code keeps its code."""
        x = np.asarray(x, dtype=np.int64)
        n, k = x.shape[0], self.sizes[j]
        p = self.parent[j]
        prior = np.array(np.broadcast_to(self.marginals[j], (n, k)) if p < 0 else self.conditionals[j][x[:, p]], dtype=np.float64)
        probs = prior.copy()
        for w in (w for w in range(len(self.names)) if self.parent[w] == j):
            probs *= self.conditionals[w][:, x[:, w]].T
        mask = np.ones((n, k), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
        for fallback in (prior, np.ones((n, k))):
            probs = probs * mask
            dead = probs.sum(axis=1) <= 0
            probs[dead] = fallback[dead]
        out = _draw(probs * mask, rng)
        none = ~mask.any(axis=1)
        out[none] = x[none, j]
        return out

    def to_fine(self, j: int, coarse: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Fine codes for coarse codes of attribute ``j``, drawn by the estimated fine marginal within each bin."""
        coarse = np.asarray(coarse, dtype=np.int64)
        fine = np.zeros(coarse.size, dtype=np.int64)
        for c, (members, weights) in enumerate(zip(self.fine_members[j], self.fine_weights[j])):
            rows = np.flatnonzero(coarse == c)
            if rows.size:
                fine[rows] = members[rng.choice(members.size, size=rows.size, p=weights)] if members.size > 1 else members[0]
        return fine


def unique_rows(codes: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, axis=0, return_inverse=True)`` (rows in lexicographic order, inverse flat) for a matrix of
    codes ``0 <= codes[:, i] < sizes[i]``, on one integer key per row: a 1-D sort instead of numpy's row-wise one
    (5 of a 36 s sampled batch went to it)."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[1] == 0 or math.prod(sizes) >= 2**62:
        patterns, inverse = np.unique(codes, axis=0, return_inverse=True)
        return patterns, inverse.ravel()
    keys, inverse = np.unique(np.ravel_multi_index(tuple(codes.T), sizes), return_inverse=True)
    return np.stack(np.unravel_index(keys, sizes), axis=1).astype(np.int64), inverse.ravel()


def _draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of (unnormalised, non-negative) ``probs``."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def project_counts(y: np.ndarray, total: float) -> np.ndarray:
    """The closest (Euclidean) non-negative vector to ``y`` summing to ``total`` (Duchi et al., ICML 2008)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    if total <= 0 or y.size == 0:
        return np.zeros_like(y)
    u = np.sort(y)[::-1]
    css = np.cumsum(u) - total
    ind = np.arange(1, y.size + 1)
    ok = u - css / ind > 0
    r = ind[ok][-1]
    theta = css[ok][-1] / r
    return np.maximum(y - theta, 0.0)


def _compress(spec: AttrSpec, mass: np.ndarray, bins: int) -> np.ndarray:
    """Coarse code of every fine code: equal-mass runs for ordered domains, top values for the others."""
    size = spec.size
    null = spec.null_code
    regular = np.array([c for c in range(size) if c != null], dtype=np.int64)
    limit = bins
    if regular.size <= limit:
        out = np.empty(size, dtype=np.int64)
        out[regular] = np.arange(regular.size)
        if null is not None:
            out[null] = regular.size
        return out
    out = np.empty(size, dtype=np.int64)
    m = mass[regular]
    if spec.ordered:
        total = m.sum()
        if total <= 0:
            groups = np.minimum((np.arange(regular.size) * limit) // regular.size, limit - 1)
        else:
            cum = np.cumsum(m) / total
            groups = np.minimum(np.floor((cum - m / total / 2) * limit).astype(np.int64), limit - 1)
            groups = np.maximum.accumulate(np.maximum(groups, 0))
        _, groups = np.unique(groups, return_inverse=True)
        out[regular] = groups
        n_groups = int(groups.max()) + 1
    else:
        ranked = np.argsort(-m, kind="stable")
        groups = np.full(regular.size, limit - 1, dtype=np.int64)
        groups[ranked[: limit - 1]] = np.arange(limit - 1)
        out[regular] = groups
        n_groups = limit
    if null is not None:
        out[null] = n_groups
    return out


def fit_tree(
    x: np.ndarray,
    specs: list[AttrSpec],
    *,
    sensitivity: int,
    rho: float,
    accountant: Accountant,
    label: str,
    bins: int = 16,
    workload: tuple[int, ...] = (),
    workload_bonus: float = 1.0,
    workload_share: float = 4.0,
    workload_select: float = 0.1,
) -> TreeModel:
    """MST on the fine codes ``x`` (rows x attributes); one patient adds or removes at most ``sensitivity`` rows.

    Every number the model keeps is a function of the noisy measurements only: with no attribute to
    measure, the row count itself is measured (a saved model holds no exact count). ``workload``: the
    attribute positions whose pairs get the public selection bonus (see the module docstring); when one of
    them is in the tree, the selection gets ``workload_select`` of ``rho`` rather than a third, and the pair
    tables the rest.
    """
    x = np.asarray(x, dtype=np.int64).reshape(-1, len(specs))
    d = len(specs)
    names = [s.name for s in specs]
    measured = [j for j in range(d) if specs[j].size > 1]
    rho_one = rho / 3.0 if len(measured) > 1 else rho
    # 1. one-way marginals (fine), then compression
    noisy: dict[int, np.ndarray] = {}
    share = {j: workload_share if j in workload else 1.0 for j in measured}
    for j in measured:
        counts = np.bincount(x[:, j], minlength=specs[j].size)
        noisy[j] = noisy_counts(counts, sensitivity=sensitivity, rho=rho_one * share[j] / sum(share.values()), accountant=accountant,
                                label=f"{label}:one-way:{names[j]}")
    if measured:
        totals = [noisy[j].sum() for j in measured]
        n_est = float(max(1.0, np.average(totals, weights=[1.0 / specs[j].size for j in measured])))
    else:  # nothing to measure but how many rows there are: that count is private too
        n_est = float(max(1.0, noisy_counts(np.array([x.shape[0]]), sensitivity=sensitivity, rho=rho, accountant=accountant,
                                            label=f"{label}:count")[0]))
    coarse_of_fine: list[np.ndarray] = []
    members: list[list[np.ndarray]] = []
    fweights: list[list[np.ndarray]] = []
    p_coarse: dict[int, np.ndarray] = {}
    for j, spec in enumerate(specs):
        fine_mass = project_counts(noisy[j], n_est) if j in noisy else np.ones(spec.size)
        cof = _compress(spec, fine_mass, bins) if j in noisy else np.zeros(spec.size, dtype=np.int64)
        coarse_of_fine.append(cof)
        k = int(cof.max()) + 1
        mem, wts = [], []
        for c in range(k):
            fm = np.flatnonzero(cof == c)
            w = fine_mass[fm]
            w = w / w.sum() if w.sum() > 0 else np.full(fm.size, 1.0 / fm.size)
            mem.append(fm)
            wts.append(w)
        members.append(mem)
        fweights.append(wts)
        pc = np.bincount(cof, weights=fine_mass, minlength=k)
        p_coarse[j] = pc / pc.sum() if pc.sum() > 0 else np.full(k, 1.0 / k)
    xc = np.stack([coarse_of_fine[j][x[:, j]] for j in range(d)], axis=1) if d else x
    sizes = [int(c.max()) + 1 for c in coarse_of_fine]
    active = [j for j in measured if sizes[j] > 1]
    # 2. a spanning tree by the exponential mechanism (Kruskal order)
    edges: list[tuple[int, int]] = []
    # with a workload the public bonus decides most picks, so the selection needs less: the pairs get the rest
    rho_selection = rho * workload_select if any(j in workload for j in active) else rho / 3.0
    if len(active) > 1:
        pairs = [(a, b) for i, a in enumerate(active) for b in active[i + 1:]]
        scores = np.empty(len(pairs))
        for i, (a, b) in enumerate(pairs):
            true = np.bincount(xc[:, a] * sizes[b] + xc[:, b], minlength=sizes[a] * sizes[b]).astype(np.float64)
            scores[i] = np.abs(true - n_est * np.outer(p_coarse[a], p_coarse[b]).ravel()).sum()
            if a in workload or b in workload:  # public constant given the noisy total: sensitivity unchanged
                scores[i] += workload_bonus * n_est
        component = {j: j for j in active}

        def find(j: int) -> int:
            while component[j] != j:
                component[j] = component[component[j]]
                j = component[j]
            return j

        rho_select = rho_selection / (len(active) - 1)
        for _ in range(len(active) - 1):
            eligible = [i for i, (a, b) in enumerate(pairs) if find(a) != find(b)]
            pick = eligible[noisy_argmax(scores[eligible], sensitivity=sensitivity, rho=rho_select, accountant=accountant,
                                         label=f"{label}:select")]
            a, b = pairs[pick]
            component[find(a)] = find(b)
            edges.append((a, b))
    # 3. two-way marginals of the tree's edges
    pair_tables: dict[tuple[int, int], np.ndarray] = {}
    for a, b in edges:
        true = np.bincount(xc[:, a] * sizes[b] + xc[:, b], minlength=sizes[a] * sizes[b])
        y = noisy_counts(true, sensitivity=sensitivity, rho=(rho - rho_one - rho_selection) / len(edges), accountant=accountant,
                         label=f"{label}:two-way:{names[a]}|{names[b]}")
        pair_tables[(a, b)] = project_counts(y, n_est).reshape(sizes[a], sizes[b])
    # estimation: orient the tree, conditionals by IPF to the one-way estimates
    neighbours: dict[int, list[int]] = {j: [] for j in range(d)}
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    parent = [-1] * d
    order: list[int] = []
    seen: set[int] = set()
    for start in [*workload, *range(d)]:  # a workload attribute is a root: drawn from its own (better) one-way estimate
        if start in seen:
            continue
        seen.add(start)
        queue = [start]
        while queue:
            u = queue.pop(0)
            order.append(u)
            for v in neighbours[u]:
                if v not in seen:
                    seen.add(v)
                    parent[v] = u
                    queue.append(v)
    marginals: dict[int, np.ndarray] = {}
    conditionals: dict[int, np.ndarray] = {}
    for v in range(d):
        u = parent[v]
        if u < 0:
            marginals[v] = p_coarse[v]
            continue
        table = pair_tables[(u, v)] if (u, v) in pair_tables else pair_tables[(v, u)].T
        conditionals[v] = _conditional(table, p_coarse[u] * n_est, p_coarse[v] * n_est)
    return TreeModel(
        names=names, fine_sizes=[s.size for s in specs], coarse_of_fine=coarse_of_fine, fine_members=members,
        fine_weights=fweights, parent=parent, order=order, marginals=marginals, conditionals=conditionals,
        n_estimate=n_est, edges=[(names[a], names[b]) for a, b in edges],
    )


def _conditional(table: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """P(column | row) from a non-negative pair table fitted to row and column totals (IPF)."""
    t = table.astype(np.float64).copy()
    col_p = cols / cols.sum() if cols.sum() > 0 else np.full(cols.size, 1.0 / cols.size)
    for _ in range(IPF_ROUNDS):
        rs = t.sum(axis=1)
        empty = rs <= 0
        t[empty] = rows[empty, None] * col_p[None, :]
        rs = np.where(empty, rows, rs)
        t *= np.divide(rows, rs, out=np.zeros_like(rows), where=rs > 0)[:, None]
        cs = t.sum(axis=0)
        lost = (cs <= 0) & (cols > 0)  # a value the noisy pair table zeroed but its one-way estimate keeps: independence
        if lost.any():
            row_p = rows / rows.sum() if rows.sum() > 0 else np.full(rows.size, 1.0 / rows.size)
            t[:, lost] = row_p[:, None] * cols[None, lost]
            cs = t.sum(axis=0)
        t *= np.divide(cols, cs, out=np.ones_like(cols), where=cs > 0)[None, :]
    rs = t.sum(axis=1, keepdims=True)
    return np.where(rs > 0, t / np.where(rs > 0, rs, 1.0), col_p[None, :])
