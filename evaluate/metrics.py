"""Imports every metric module so that its metrics register themselves."""
import evaluate.fidelity  # noqa: F401
import evaluate.privacy  # noqa: F401
import evaluate.utility  # noqa: F401
