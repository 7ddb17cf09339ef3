"""Long neural fits are visible (epochs, loss, ETA) and bounded (max_time), and hopeless ones are refused."""
from __future__ import annotations

import pytest

from data_schemas.io import load_schema
from synth.errors import GeneratorError
from synth.generators import get_generator
from synth.load import frames_to_dataset
from synth.split import split_patients

SCHEMA = load_schema("kr_claims")


@pytest.fixture(scope="module")
def small_train():
    from synth.demo_population import simulate

    dataset, report = frames_to_dataset(SCHEMA, simulate(60, seed=5))
    assert report.ok
    train, _holdout, _ = split_patients(dataset, seed=1)
    return train


def test_tvae_reports_epochs_and_stops_at_max_time(small_train) -> None:
    messages: list[str] = []
    generator = get_generator("tvae", epochs=400, batch_size=50, max_rows_per_table=100, max_time=1.0)
    generator.fit(small_train, progress=messages.append)
    epochs = [m for m in messages if ": epoch " in m]
    assert epochs and "Loss" in epochs[0] and "ETA" in epochs[0]
    stopped = [m for m in messages if "stopped after epoch" in m]
    assert stopped, "a 400-epoch fit under a 1 s cap must stop early"
    assert all(int(m.split("epoch ")[1].split("/")[0]) < 400 for m in stopped)
    assert generator.get_params()["max_time"] == 1.0
    assert generator.sample(10, seed=0).row_counts()["patients"] == 10  # stopped early, still a usable model


def test_par_reports_epochs(small_train) -> None:
    messages: list[str] = []
    get_generator("par", epochs=2, max_rows_per_table=300).fit(small_train, progress=messages.append)
    assert any(m.startswith("par on claims: epoch 2/2") and "ETA" in m for m in messages)


def test_hopeless_neural_fit_is_refused_without_a_time_cap(small_train) -> None:
    with pytest.raises(GeneratorError, match="row-epochs .* pass max_time"):
        get_generator("ctgan", epochs=100_000).fit(small_train)


def test_max_time_parameter_errors() -> None:
    with pytest.raises(GeneratorError, match="The 'max_time' parameter of tvae must be a number of seconds > 0"):
        get_generator("tvae", max_time=0)
    with pytest.raises(GeneratorError, match="unknown parameter"):
        get_generator("cart", max_time=10)
