"""Generators: fit on a train split, sample a synthetic cohort (design.md, "Generator")."""
from synth.generators import baselines, cart, dp_mst, hierarchical, hma, par, sdv_single  # noqa: F401  (register themselves)
from synth.generators.base import Generator, SampleReport, TrainingData, training_data
from synth.generators.registry import GENERATORS, describe_generators, get_generator

__all__ = ["GENERATORS", "Generator", "SampleReport", "TrainingData", "describe_generators", "get_generator", "training_data"]
