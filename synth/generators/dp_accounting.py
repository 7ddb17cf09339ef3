"""Differential-privacy primitives of the DP generators: OpenDP measurements and a zCDP accountant.

Every release of a statistic about the training patients goes through one of three OpenDP
measurements (the noise is drawn by OpenDP's samplers, which are exact and not seedable: a noise
stream that could be replayed would not be private):

* :func:`noisy_counts`: the discrete Gaussian mechanism on a vector of counts (Canonne, Kamath and
  Steinke, "The discrete Gaussian for differential privacy", NeurIPS 2020), rho-zCDP;
* :func:`noisy_argmax`: report-noisy-max with Gumbel noise, i.e. the exponential mechanism, accounted
  as a bounded-range mechanism, rho = eps^2 / 8 (Cesar and Rogers, "Bounding, concentrating, and
  truncating: unifying privacy loss composition for data analytics", ALT 2021);
* :func:`select_values`: a Gaussian histogram over an unknown set of values, keeping the values whose
  noisy count passes a threshold (Rogers, "A unifying privacy analysis framework for unknown domain
  algorithms in differential privacy", 2023), (delta, rho)-approximate zCDP.

The unit of privacy is decided by the caller through ``sensitivity`` (how much adding or removing one
patient with all of their rows can change the input: the add/remove neighbouring relation; under
replace-one a histogram's L2 distance would be sqrt(2) times larger and a score's twice). Each charge
records the input distance its privacy map was evaluated at and the noise scale, so a test can
recompute every cost. Costs add up in an :class:`Accountant` (zCDP composes by adding rho, approximate zCDP by
adding delta as well; Bun and Steinke, TCC 2016), and the total converts to (epsilon, delta) with
OpenDP's conversion (Canonne, Kamath and Steinke 2020, Proposition 12).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
# The OpenDP modules themselves, not opendp.prelude: the prelude also imports opendp.extras (scikit-learn, SciPy,
# Polars), about 2.7 s in every process that imports the generator registry, for nothing used here.
import opendp.combinators as dp_c
import opendp.measurements as dp_m
from opendp.domains import atom_domain, map_domain, vector_domain
from opendp.measures import zero_concentrated_divergence
from opendp.metrics import absolute_distance, l02inf_distance, l2_distance, linf_distance
from opendp.mod import enable_features

from synth.errors import GeneratorError

enable_features("contrib")

_TOL = 1e-9


class PrivacyBudgetError(GeneratorError):
    """A measurement would spend more privacy budget than is left."""


def epsilon_for_rho(rho: float, delta: float) -> float:
    """The epsilon of a rho-zCDP mechanism at ``delta`` (OpenDP's zCDP to (epsilon, delta) conversion)."""
    if rho <= 0:
        return 0.0
    base = dp_m.make_gaussian(atom_domain(T=float, nan=False), absolute_distance(T=float), scale=1.0)
    profile = dp_c.make_zCDP_to_approxDP(base).map(math.sqrt(2.0 * rho))
    return float(profile.epsilon(delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho whose zCDP guarantee converts to at most ``epsilon`` at ``delta`` (bisection)."""
    low, high = 0.0, max(1.0, epsilon)
    while epsilon_for_rho(high, delta) < epsilon:
        high *= 2.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if epsilon_for_rho(mid, delta) <= epsilon:
            low = mid
        else:
            high = mid
    return low


@dataclass(frozen=True)
class Charge:
    """One measurement's cost: what it measured (aggregate label), rho and delta, and how it was calibrated.

    ``d_in`` is the input distance the privacy map was evaluated at (how far one patient, added or
    removed with all of their rows, can move the measured statistic), ``scale`` the noise scale and
    ``mechanism`` the OpenDP constructor, so a test can recompute every cost from its parts.
    """

    label: str
    rho: float
    delta: float = 0.0
    d_in: Any = None
    scale: float | None = None
    mechanism: str = ""


@dataclass
class Accountant:
    """Adds up the zCDP cost of every measurement and refuses one that would overspend."""

    rho_budget: float
    delta_budget: float = 0.0
    charges: list[Charge] = field(default_factory=list)

    @property
    def rho_spent(self) -> float:
        return float(sum(c.rho for c in self.charges))

    @property
    def delta_spent(self) -> float:
        return float(sum(c.delta for c in self.charges))

    def spend(self, label: str, rho: float, delta: float = 0.0, *, d_in: Any = None, scale: float | None = None,
              mechanism: str = "") -> None:
        if self.rho_spent + rho > self.rho_budget * (1 + _TOL) + 1e-15:
            raise PrivacyBudgetError(
                f"{label} needs rho={rho:.3g} but only {self.rho_budget - self.rho_spent:.3g} of {self.rho_budget:.3g} is left"
            )
        if self.delta_spent + delta > self.delta_budget * (1 + _TOL) + 1e-300:
            raise PrivacyBudgetError(f"{label} needs delta={delta:.3g} beyond the threshold budget {self.delta_budget:.3g}")
        self.charges.append(Charge(label, float(rho), float(delta), d_in, scale, mechanism))

    def summary(self) -> dict[str, Any]:
        """Spent rho and delta by label prefix (the part before the first ':'), aggregates only."""
        groups: dict[str, dict[str, float]] = {}
        for c in self.charges:
            key = c.label.split(":", 1)[0]
            g = groups.setdefault(key, {"measurements": 0, "rho": 0.0, "delta": 0.0})
            g["measurements"] += 1
            g["rho"] += c.rho
            g["delta"] += c.delta
        return groups


def _calibrated(make: Callable[[float], Any], d_in: Any, rho: float, scale: float) -> tuple[Any, float]:
    """``(make(scale), scale)`` for the first scale, from ``scale`` up, whose cost at ``d_in`` is at most rho."""
    for _ in range(200):
        meas = make(scale)
        cost = meas.map(d_in)
        cost = cost[0] if isinstance(cost, tuple) else cost
        if cost <= rho:
            return meas, scale
        scale *= 1.0 + 1e-6 if cost <= rho * (1 + 1e-3) else cost / rho
    raise GeneratorError(f"could not calibrate a measurement to rho={rho:.3g}")  # pragma: no cover


def _check_rho(rho: float, label: str) -> None:
    if not (rho > 0 and math.isfinite(rho)):
        raise GeneratorError(f"{label}: the privacy budget of a measurement must be positive and finite; got rho={rho!r}")


def noisy_counts(counts: np.ndarray, *, sensitivity: int, rho: float, accountant: Accountant, label: str) -> np.ndarray:
    """``counts`` plus discrete Gaussian noise calibrated to rho-zCDP for an L2 ``sensitivity``."""
    _check_rho(rho, label)
    space = vector_domain(atom_domain(T="i64")), l2_distance(T="i64")
    meas, scale = _calibrated(lambda s: dp_m.make_gaussian(*space, scale=s), int(sensitivity), rho, gaussian_scale(sensitivity, rho))
    accountant.spend(label, meas.map(int(sensitivity)), d_in=int(sensitivity), scale=scale, mechanism="make_gaussian")
    values = np.asarray(counts, dtype=np.int64).ravel()
    if values.size == 0:
        return np.zeros(0)
    return np.asarray(meas([int(v) for v in values]), dtype=np.float64).reshape(np.shape(counts))


def gaussian_scale(sensitivity: float, rho: float) -> float:
    """The standard deviation of the Gaussian noise that gives rho-zCDP at an L2 ``sensitivity``."""
    return float(sensitivity) / math.sqrt(2.0 * rho)


def noisy_argmax(scores: np.ndarray, *, sensitivity: float, rho: float, accountant: Accountant, label: str) -> int:
    """The index of the highest score, by the exponential mechanism (scores may move by ``sensitivity`` each)."""
    _check_rho(rho, label)
    space = vector_domain(atom_domain(T=float, nan=False)), linf_distance(T=float)
    meas, scale = _calibrated(
        lambda s: dp_m.make_noisy_max(*space, zero_concentrated_divergence(), scale=s),
        float(sensitivity), rho, float(sensitivity) / math.sqrt(2 * rho),
    )
    accountant.spend(label, meas.map(float(sensitivity)), d_in=float(sensitivity), scale=scale, mechanism="make_noisy_max")
    return int(meas([float(v) for v in np.asarray(scores, dtype=np.float64).ravel()]))


def select_values(
    patient_counts: Mapping[str, int], *, max_values_per_patient: int, rho: float, delta: float, accountant: Accountant, label: str
) -> dict[str, float]:
    """Values held by enough patients, with their noisy patient counts (a thresholded Gaussian histogram).

    ``patient_counts`` counts distinct patients per value, each patient counted for at most
    ``max_values_per_patient`` values. A value held by few patients is dropped with probability
    at least 1 - ``delta`` in total, whatever its count, which is what hides whether it exists.
    """
    _check_rho(rho, label)
    if not 0 < delta < 1:
        raise GeneratorError(f"{label}: the delta of a value selection must be in (0, 1); got {delta!r}")
    k = int(max_values_per_patient)
    l2 = int(math.ceil(math.sqrt(k)))
    d_in = (k, l2, 1)
    space = map_domain(atom_domain(T=str), atom_domain(T="i64")), l02inf_distance(absolute_distance(T="i64"))
    _, scale = _calibrated(
        lambda s: dp_m.make_gaussian_threshold(*space, scale=s, threshold=2**40), d_in, rho, gaussian_scale(l2, rho)
    )

    def make(threshold: int) -> Any:
        return dp_m.make_gaussian_threshold(*space, scale=scale, threshold=threshold)

    low, high = 1, 2
    while make(high).map(d_in)[1] > delta:
        high *= 2
        if high > 2**40:
            raise GeneratorError(f"{label}: no threshold reaches delta={delta:.3g}")  # pragma: no cover
    while high - low > 1:
        mid = (low + high) // 2
        if make(mid).map(d_in)[1] <= delta:
            high = mid
        else:
            low = mid
    meas = make(high)
    cost_rho, cost_delta = meas.map(d_in)
    accountant.spend(label, cost_rho, cost_delta, d_in=d_in, scale=scale, mechanism="make_gaussian_threshold")
    kept = meas({str(key): int(v) for key, v in patient_counts.items()})
    return {str(key): float(v) for key, v in kept.items()}


# -- fitting on a sample of patients ------------------------------------------------------------------------
def amplified_epsilon(epsilon: float, rate: float) -> float:
    """The epsilon of an (epsilon, delta)-DP mechanism run on a Poisson sample of patients at ``rate``.

    ``log(1 + rate (e^epsilon - 1))``, with delta becoming ``rate * delta``, for the add/remove-one-patient
    relation (Li, Qardaji and Su, ASIACCS 2012; Balle, Barthe and Gaboardi, "Privacy amplification by
    subsampling", NeurIPS 2018, Poisson sampling). Each patient must be kept independently of the others, with a
    probability fixed before the sample is drawn (a function of public parameters and DP outputs only: adaptive
    composition covers a rate set from a noisy count) and a choice nobody can replay."""
    _check_rate(rate)
    return float(math.log1p(rate * math.expm1(epsilon)))


def epsilon_before_sampling(epsilon: float, rate: float) -> float:
    """The epsilon a mechanism may spend on a Poisson sample at ``rate`` for ``epsilon`` overall (the inverse of
    :func:`amplified_epsilon`)."""
    _check_rate(rate)
    return float(math.log1p(math.expm1(epsilon) / rate))


def _check_rate(rate: float) -> None:
    if not (0 < rate <= 1 and math.isfinite(rate)):
        raise GeneratorError(f"a sampling rate must be in (0, 1]; got {rate!r}")


@dataclass(frozen=True)
class NoisyCount:
    """A count released with pure ``epsilon``-DP (OpenDP's discrete Laplace, sensitivity 1: one patient more or
    less moves a count of patients by one)."""

    label: str
    value: int
    epsilon: float
    scale: float
    mechanism: str = "make_laplace"


def noisy_count(count: int, *, epsilon: float, label: str) -> NoisyCount:
    """``count`` plus discrete Laplace noise of scale 1 / ``epsilon`` (epsilon-DP for a count of patients)."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise GeneratorError(f"{label}: the epsilon of a count must be positive and finite; got {epsilon!r}")
    meas = dp_m.make_laplace(atom_domain(T="i64"), absolute_distance(T="i64"), scale=1.0 / epsilon)
    spent = float(meas.map(1))
    if spent > epsilon * (1 + _TOL):  # pragma: no cover - OpenDP's map is exactly 1 / scale here
        raise GeneratorError(f"{label}: the count would spend epsilon={spent:.3g}, more than {epsilon:.3g}")
    return NoisyCount(label, int(meas(int(count))), spent, 1.0 / epsilon)
