"""synthmed: synthetic claims/EMR cohorts with measured fidelity and privacy."""

__version__ = "0.1.0"
