"""AIM (McKenna, Mullins, Sheldon and Miklau, VLDB 2022) on private-pgm's ``mbi`` 2.0, for ``bench_dp_aim.py``.

Ported from github:ryan112358/private-pgm ``mechanisms/aim.py`` and ``mechanisms/mechanism.py`` (Apache
License 2.0, Ryan McKenna) to the estimator API of ``mbi`` 2.0.0 (``estimation.MirrorDescent().estimate``
with ``warm_start``); ``cdp_rho`` is ``mechanisms/cdp2adp.py`` (Apache 2.0, Thomas Steinke). The mechanism
is unchanged: one-way marginals first (Gaussian), then rounds that pick the worst-approximated workload
clique by the exponential mechanism (10 % of a round's rho) and measure it (90 %), the noise halved when
a measurement barely moves the model, the last round spending what is left; cliques are kept below a
model size that grows with the budget spent. Runs in its own environment (``.venv-mbi``: jax, mbi):

    .venv-mbi/bin/python benchmarks/aim_mbi.py IN.csv DOMAIN.json OUT.csv --epsilon 4 --delta 1e-6
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import softmax  # noqa: E402

from mbi import Dataset, Domain, LinearMeasurement, estimation, junction_tree  # noqa: E402


def cdp_delta(rho: float, eps: float) -> float:
    """delta such that rho-zCDP implies (eps, delta)-DP (Canonne, Kamath and Steinke 2020)."""
    if rho == 0:
        return 0.0
    amin, amax = 1.01, (eps + 1) / (2 * rho) + 2
    for _ in range(1000):
        alpha = (amin + amax) / 2
        if (2 * alpha - 1) * rho - eps + math.log1p(-1.0 / alpha) < 0:
            amin = alpha
        else:
            amax = alpha
    return min(math.exp((alpha - 1) * (alpha * rho - eps) + alpha * math.log1p(-1 / alpha)) / (alpha - 1.0), 1.0)


def cdp_rho(eps: float, delta: float) -> float:
    """The largest rho whose zCDP implies (eps, delta)-DP."""
    lo, hi = 0.0, eps + 1
    for _ in range(1000):
        rho = (lo + hi) / 2
        if cdp_delta(rho, eps) <= delta:
            lo = rho
        else:
            hi = rho
    return lo


def downward_closure(cliques: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for cl in cliques:
        for r in range(1, len(cl) + 1):
            out.update(itertools.combinations(cl, r))
    return sorted(out, key=len)


def compile_workload(workload: list[tuple[tuple[str, ...], float]]) -> dict[tuple[str, ...], float]:
    weights = dict(workload)
    return {cl: sum(w * len(set(cl) & set(wcl)) for wcl, w in weights.items()) for cl in downward_closure(list(weights))}


class AIM:
    """AIM as in private-pgm's ``mechanisms/aim.py`` (rounds default 16 x attributes)."""

    def __init__(self, epsilon: float, delta: float, *, rounds: int | None = None, max_model_size: float = 80,
                 max_iters: int = 1000, seed: int | None = None) -> None:
        self.rho = cdp_rho(epsilon, delta)
        self.rounds = rounds
        self.max_model_size = max_model_size
        self.max_iters = max_iters
        self.prng = np.random.default_rng(seed)

    def exponential_mechanism(self, qualities: dict, epsilon: float, sensitivity: float) -> tuple[str, ...]:
        keys = list(qualities)
        q = np.array([qualities[k] for k in keys])
        p = softmax(0.5 * epsilon / sensitivity * (q - q.max()))
        return keys[self.prng.choice(p.size, p=p)]

    def _estimate(self, domain: Domain, measurements: list, warm=None):
        return estimation.MirrorDescent().estimate(domain, measurements, iters=self.max_iters, warm_start=warm)

    def run(self, data: Dataset, workload: list[tuple[tuple[str, ...], float]], rows: int) -> tuple[Dataset, int]:
        rounds = self.rounds or 16 * len(data.domain)
        candidates = compile_workload(workload)
        answers = {cl: np.asarray(data.project(cl).datavector()) for cl in candidates}
        oneway = [cl for cl in candidates if len(cl) == 1]
        sigma = np.sqrt(rounds / (2 * 0.9 * self.rho))
        epsilon = np.sqrt(8 * 0.1 * self.rho / rounds)
        rho_used = len(oneway) * 0.5 / sigma**2
        measurements = [LinearMeasurement(answers[cl] + self.prng.normal(0, sigma, answers[cl].size), cl, stddev=sigma)
                        for cl in oneway]
        model = self._estimate(data.domain, measurements)
        terminate, t = False, 0
        while not terminate:
            t += 1
            if self.rho - rho_used < 2 * (0.5 / sigma**2 + 1.0 / 8 * epsilon**2):
                remaining = self.rho - rho_used
                sigma = np.sqrt(1 / (2 * 0.9 * remaining))
                epsilon = np.sqrt(8 * 0.1 * remaining)
                terminate = True
            rho_used += 1.0 / 8 * epsilon**2 + 0.5 / sigma**2
            size_limit = self.max_model_size * rho_used / self.rho
            cliques = [m.clique for m in measurements]
            free = set(downward_closure(cliques))
            small = {cl: w for cl, w in candidates.items()
                     if junction_tree.hypothetical_model_size(data.domain, [*cliques, cl]) <= size_limit or cl in free}
            errors = {}
            for cl, w in small.items():
                bias = np.sqrt(2 / np.pi) * sigma * data.domain.size(cl)
                xest = np.asarray(model.project(cl).datavector())
                errors[cl] = w * (np.linalg.norm(answers[cl] - xest, 1) - bias)
            cl = self.exponential_mechanism(errors, epsilon, max(abs(w) for w in small.values()))
            n = data.domain.size(cl)
            measurements.append(LinearMeasurement(answers[cl] + self.prng.normal(0, sigma, n), cl, stddev=sigma))
            z = np.asarray(model.project(cl).datavector())
            model = self._estimate(data.domain, measurements, warm=model)
            w_ = np.asarray(model.project(cl).datavector())
            if np.linalg.norm(w_ - z, 1) <= sigma * np.sqrt(2 / np.pi) * n:
                sigma /= 2
                epsilon *= 2
        return model.synthetic_data(rows=rows), t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("domain")
    parser.add_argument("out")
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--max-model-size", type=float, default=80.0)
    parser.add_argument("--max-iters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--target", default=None, help="weight the target's pairs x 2 in the workload (all pairs otherwise equal)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    domain = json.loads(open(args.domain).read())
    df = pd.read_csv(args.data)[list(domain)]
    data = Dataset({c: df[c].to_numpy(dtype=np.int64) for c in domain}, Domain(list(domain), list(domain.values())))
    pairs = list(itertools.combinations(domain, 2))
    workload = [(cl, 2.0 if args.target in cl else 1.0) for cl in pairs]
    t = time.perf_counter()
    mech = AIM(args.epsilon, args.delta, rounds=args.rounds, max_model_size=args.max_model_size, max_iters=args.max_iters, seed=args.seed)
    synth, rounds = mech.run(data, workload, args.rows)
    fit_s = time.perf_counter() - t
    pd.DataFrame(synth.to_dict()).to_csv(args.out, index=False)
    print(json.dumps({"fit_s": fit_s, "rounds": rounds, "rho": mech.rho}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
