"""Fidelity metrics: how closely synthetic data follows the real training data.

Importing this package registers every fidelity metric (one module per scope, as in SDMetrics):
``columns`` (shapes, missing values, coverage), ``pairs`` (pair trends), ``codes`` (code hierarchies),
``multitable`` (children per parent, referential integrity), ``temporal`` (gaps, sequence lengths, age at
event), ``validity`` (schema-rule violations) and ``detection`` (real-vs-synthetic classifiers).
"""
from evaluate.fidelity import codes, columns, detection, multitable, pairs, temporal, validity  # noqa: F401
from evaluate.fidelity.summary import overall_fidelity

__all__ = ["overall_fidelity"]
