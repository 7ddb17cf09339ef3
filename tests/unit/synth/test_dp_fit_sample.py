"""``dp_mst`` fitted on a sample of patients (``fit_patients``): a Poisson sample on the engine, its rate from a noisy
count, and the accounting that amplification by sampling allows. An adversary's view: the rate must not be a
function of the exact count, each patient's inclusion must depend on that patient alone (else removing one patient
moves others in or out, and the amplification theorem does not apply), the sample must not be replayable, and the
published epsilon must add up from its parts."""
from __future__ import annotations

import math

import numpy as np
import pyarrow.compute as pc
import pytest

from data_schemas.io import load_schema
from synth.engine.local import bounded, count_patients, fit_input
from synth.errors import GeneratorError
from synth.generators import get_generator
from synth.generators.dp_accounting import amplified_epsilon, epsilon_before_sampling, epsilon_for_rho, noisy_count
from synth.generators.dp_mst import COUNT_SHARE
from synth.load import frames_to_dataset
from synth.split import split_patients

KR = load_schema("kr_claims")
SALT = bytes(range(32))
N_POPULATION = 2000


def _binomial_ok(kept: int, n: int, rate: float, sigmas: float = 5.0) -> bool:
    return abs(kept - n * rate) <= sigmas * math.sqrt(n * rate * (1 - rate))


@pytest.fixture(scope="module")
def population():
    from synth.demo_population import simulate

    return simulate(N_POPULATION, seed=11)


@pytest.fixture(scope="module")
def train(population):
    dataset, report = frames_to_dataset(KR, population)
    assert report.ok
    return split_patients(dataset, seed=1)[0]


def _without(frames: dict, patient: str) -> dict:
    """The population without one patient and every row below them (claims and the tables keyed by claim)."""
    mine = pc.equal(frames["claims"]["patient_id"], patient)
    claim_ids = frames["claims"].filter(mine)["claim_id"].combine_chunks()
    out = {"patients": frames["patients"].filter(pc.invert(pc.equal(frames["patients"]["patient_id"], patient))),
           "claims": frames["claims"].filter(pc.invert(mine))}
    out.update({t: tbl.filter(pc.invert(pc.is_in(tbl["claim_id"], value_set=claim_ids))) for t, tbl in frames.items() if t not in out})
    return out


def _patients(dataset) -> set[str]:
    return {k for (k,) in dataset.con.execute(f"SELECT patient_id FROM {dataset.sql_name('patients')}").fetchall()}


def test_amplification_is_the_theorems_and_inverts() -> None:
    assert amplified_epsilon(1.0, 0.1) == pytest.approx(math.log(1 + 0.1 * (math.e - 1)), rel=1e-12)
    assert amplified_epsilon(1.0, 0.1) == pytest.approx(0.1585651, abs=1e-7)
    assert amplified_epsilon(4.0, 1.0) == pytest.approx(4.0, rel=1e-12)  # rate 1: no amplification
    for eps in (0.1, 1.0, 4.0, 10.0):
        for rate in (0.001, 0.05, 0.5, 0.99):
            inner = epsilon_before_sampling(eps, rate)
            assert inner > eps
            assert amplified_epsilon(inner, rate) == pytest.approx(eps, rel=1e-9)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(GeneratorError, match="sampling rate"):
            amplified_epsilon(1.0, bad)


def test_a_count_is_released_with_discrete_laplace_noise_at_its_epsilon() -> None:
    draws = [noisy_count(1000, epsilon=0.5, label="count:t") for _ in range(400)]
    assert all(d.epsilon == pytest.approx(0.5) and d.scale == pytest.approx(2.0) for d in draws)
    values = np.array([d.value for d in draws])
    assert len(set(values.tolist())) > 5  # noise is there: the exact count would come back every time
    assert abs(values.mean() - 1000) < 0.8  # unbiased (standard error about 0.14)
    assert 1.5 < values.std() < 4.5  # discrete Laplace of scale 2: standard deviation about 2.8


def test_the_rate_comes_from_a_noisy_count_never_the_exact_one() -> None:
    gen = get_generator("dp_mst", epsilon=1.0, fit_patients=200)
    rates = [gen.fit_sample_rate(lambda: 2000) for _ in range(200)]
    assert len(set(rates)) > 20, "the rate is a function of the exact count"
    assert np.mean(rates) == pytest.approx(0.1, rel=0.03)  # 200 / (2000 + noise of scale 100): sd of the mean 0.0005
    assert gen._planned_sample is not None and gen._planned_sample.count.epsilon == pytest.approx(COUNT_SHARE * 1.0)

    def never() -> int:
        raise AssertionError("counted without fit_patients")

    assert get_generator("dp_mst", epsilon=1.0).fit_sample_rate(never) is None
    assert get_generator("dp_mst", epsilon=4.0, fit_patients=10**6).fit_sample_rate(lambda: 2000) is None  # all of them


def test_a_poisson_sample_keeps_each_patient_on_its_own(population) -> None:
    """Removing one patient moves no other patient in or out of the sample (a sample of a fixed size would), the
    kept share is the rate's, descendants follow their patient, and another key draws another sample."""
    whole, report = frames_to_dataset(KR, population)
    assert report.ok
    caps = get_generator("dp_mst", max_rows_per_patient=3).contribution_caps(KR)
    kept = bounded(whole, caps, salt=SALT, sample_rate=0.3)
    ids = _patients(kept)
    assert _binomial_ok(len(ids), N_POPULATION, 0.3)
    for gone in (sorted(ids)[0], sorted(_patients(whole) - ids)[0]):  # a kept patient, then a dropped one
        neighbour, report = frames_to_dataset(KR, _without(population, gone), namespace="neighbour")
        assert report.ok
        assert _patients(bounded(neighbour, caps, salt=SALT, sample_rate=0.3, namespace="bounded_neighbour")) == ids - {gone}
    owners = {k for (k,) in kept.con.execute(f"SELECT DISTINCT patient_id FROM {kept.sql_name('claims')}").fetchall()}
    assert owners and owners <= ids
    claims = {k for (k,) in kept.con.execute(f"SELECT claim_id FROM {kept.sql_name('claims')}").fetchall()}
    for table in ("claim_details", "prescriptions"):
        below = {k for (k,) in kept.con.execute(f"SELECT DISTINCT claim_id FROM {kept.sql_name(table)}").fetchall()}
        assert below and below <= claims, table
    other = _patients(bounded(whole, caps, salt=bytes(32), sample_rate=0.3, namespace="other_key"))
    assert other != ids and _binomial_ok(len(other), N_POPULATION, 0.3)
    with pytest.raises(ValueError, match="sampling rate"):
        bounded(whole, caps, salt=SALT, sample_rate=1.0, namespace="bad_rate")


def test_fit_input_fits_on_the_sample_and_the_epsilon_adds_up(train) -> None:
    n = count_patients(train)
    gen = get_generator("dp_mst", epsilon=4.0, fit_patients=400)
    chosen = fit_input(gen, train)
    rate = gen._planned_sample.rate
    assert 0.2 < rate < 0.3 and _binomial_ok(count_patients(chosen), n, rate)
    gen.fit(chosen)
    acc, sample = gen.accounting_, gen.accounting_["fit_sample"]
    assert sample["rate"] == rate and sample["fit_patients"] == 400 and gen._planned_sample is None
    assert sample["count_epsilon"] == pytest.approx(0.04)
    assert sample["delta_on_sample"] * rate == pytest.approx(1e-6, rel=1e-9)
    assert sample["epsilon_on_sample"] == pytest.approx(epsilon_before_sampling(4.0 - 0.04, rate), rel=1e-12)
    on_sample = epsilon_for_rho(acc["rho_spent"], sample["delta_on_sample"] - acc["delta_selection"])
    assert on_sample > 4.0  # the sample's measurements get more than the whole budget...
    assert acc["epsilon_spent"] == pytest.approx(0.04 + amplified_epsilon(on_sample, rate), rel=1e-12)
    assert 3.9 < acc["epsilon_spent"] <= 4.0 * (1 + 1e-9)  # ...and the whole stays within it
    assert abs(gen.release_size(0) - n) < 0.15 * n  # the sample's noisy total, scaled back to the population


def test_a_direct_fit_draws_its_own_sample(train) -> None:
    """``fit`` without the engine (as the privacy audit calls it) samples in the process, with the same accounting."""
    n = count_patients(train)
    gen = get_generator("dp_mst", epsilon=4.0, fit_patients=300).fit(train)
    rate = gen.sample_.rate
    fitted_on = gen.nodes_[gen.root_].model.n_estimate  # the root table's noisy total: patients the fit saw
    assert abs(fitted_on - n * rate) < 6 * math.sqrt(n * rate) + 10
    assert gen.accounting_["fit_sample"]["rate"] == rate and gen.accounting_["epsilon_spent"] <= 4.0 * (1 + 1e-9)
    assert abs(gen.release_size(0) - n) < 0.2 * n


def test_fit_patients_above_the_population_fits_everyone_after_the_count(train) -> None:
    gen = get_generator("dp_mst", epsilon=4.0, fit_patients=10**6)
    chosen = fit_input(gen, train)
    assert count_patients(chosen) == count_patients(train)
    gen.fit(chosen)
    sample = gen.accounting_["fit_sample"]
    assert sample["rate"] == 1.0 and sample["amplification"].startswith("none")
    assert sample["epsilon_on_sample"] == pytest.approx(4.0 - 0.04) and sample["delta_on_sample"] == 1e-6
    assert "fit_sample" not in get_generator("dp_mst", epsilon=4.0).fit(chosen).accounting_


def test_fit_patients_is_checked(train) -> None:
    for bad in (0, -5, True, "100", 1.5):
        with pytest.raises(GeneratorError, match="'fit_patients' parameter of dp_mst must be an int"):
            get_generator("dp_mst", fit_patients=bad)
    assert get_generator("dp_mst", fit_patients=50).get_params()["fit_patients"] == 50
    with pytest.raises(GeneratorError, match="raise fit_patients or delta"):
        get_generator("dp_mst", epsilon=1.0, delta=1e-2, fit_patients=1).fit(train)


def test_a_planned_rate_is_never_claimed_for_rows_that_were_not_sampled(train) -> None:
    """Asking for a rate and then fitting on the whole split would spend the sample's larger budget on everyone: the
    generator draws the sample itself instead. Rows sampled at a rate it did not set are refused."""
    n = count_patients(train)
    gen = get_generator("dp_mst", epsilon=4.0, fit_patients=300)
    rate = gen.fit_sample_rate(lambda: n)
    gen.fit(train)  # not the engine's sample
    assert gen.sample_.rate == rate
    assert abs(gen.nodes_[gen.root_].model.n_estimate - n * rate) < 6 * math.sqrt(n * rate) + 10
    caps = gen.contribution_caps(KR)
    foreign = bounded(train, caps, salt=SALT, sample_rate=0.5, namespace="foreign")
    assert foreign.sample_rate == 0.5
    with pytest.raises(GeneratorError, match="did not set"):
        get_generator("dp_mst", epsilon=4.0).fit(foreign)
    with pytest.raises(GeneratorError, match="did not set"):
        get_generator("dp_mst", epsilon=4.0, fit_patients=300).fit(foreign)
