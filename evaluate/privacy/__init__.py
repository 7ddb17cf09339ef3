"""Privacy metrics: how much synthetic data reveals about the real training patients."""
