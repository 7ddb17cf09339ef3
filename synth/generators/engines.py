"""SDV single-table synthesizers as engines under our generators: one model per frame, seeded sampling.

Hyper-parameters are passed through after validation against each synthesizer's signature, so a typo
fails at construction with the list of accepted names.
"""
from __future__ import annotations

import inspect
import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from synth.errors import GeneratorError

ENGINE_NAMES = ("gaussian_copula", "ctgan", "tvae")
NEURAL = ("ctgan", "tvae")
# our defaults where SDV's would make a local run impractical (SDV: 300 epochs)
ENGINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gaussian_copula": {"default_distribution": "truncnorm"},
    "ctgan": {"epochs": 50, "batch_size": 500, "enable_gpu": False, "verbose": True},  # epochs reported (progress.py)
    "tvae": {"epochs": 50, "batch_size": 500, "enable_gpu": False, "verbose": True},
}


def _engine_class(engine: str) -> type:
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    classes = {"gaussian_copula": GaussianCopulaSynthesizer, "ctgan": CTGANSynthesizer, "tvae": TVAESynthesizer}
    if engine not in classes:
        raise GeneratorError(f"The 'engine' parameter must be one of {', '.join(ENGINE_NAMES)}; got {engine!r} instead.")
    return classes[engine]


def engine_parameters(engine: str) -> list[str]:
    """Hyper-parameter names the SDV synthesizer behind ``engine`` accepts."""
    sig = inspect.signature(_engine_class(engine).__init__)
    return [p for p in sig.parameters if p not in ("self", "metadata")]


def check_engine_params(engine: str, params: dict[str, Any]) -> dict[str, Any]:
    """Our defaults updated with the user's parameters; unknown names raise with the accepted list."""
    allowed = engine_parameters(engine)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise GeneratorError(
            f"unknown parameter(s) {', '.join(unknown)} for engine {engine}; accepted: {', '.join(allowed)}"
        )
    merged = {**ENGINE_DEFAULTS.get(engine, {}), **params}
    for key in ("epochs", "batch_size"):
        if key in merged and (not isinstance(merged[key], int) or merged[key] < 1):
            raise GeneratorError(f"The '{key}' parameter of {engine} must be an int >= 1; got {merged[key]!r} instead.")
    if "batch_size" in merged and engine in NEURAL and merged["batch_size"] % merged.get("pac", 10 if engine == "ctgan" else 1):
        raise GeneratorError(f"The 'batch_size' parameter of ctgan must be a multiple of pac ({merged.get('pac', 10)}); got {merged['batch_size']}.")
    return merged


class TableModel:
    """One SDV synthesizer fitted on one frame whose column specs (SDV sdtypes) we give explicitly."""

    def __init__(self, engine: str, params: dict[str, Any], columns: dict[str, dict[str, Any]]) -> None:
        self.engine = engine
        self.params = params
        self.columns = columns
        self.synthesizer_: Any = None
        self.constant_: pd.DataFrame | None = None

    def fit(self, frame: pd.DataFrame, *, seed: int = 0) -> TableModel:
        """Fit on ``frame``; a frame with no modelled column (or one row) is kept as constants."""
        from sdv.metadata import Metadata

        cols = [c for c in self.columns if c in frame]
        frame = frame[cols]
        if not cols or len(frame) < 2:
            self.constant_ = frame.head(1) if len(frame) else frame
            return self
        metadata = Metadata.load_from_dict(
            {"tables": {"t": {"columns": {c: self.columns[c] for c in cols}}}, "METADATA_SPEC_VERSION": "V2"}
        )
        synthesizer = _engine_class(self.engine)(metadata, **self.params)
        if self.engine in NEURAL:
            _seed_torch(seed)
        with _quiet():
            synthesizer.fit({"t": frame})
        self.synthesizer_ = synthesizer
        return self

    def sample(self, n: int, *, seed: int) -> pd.DataFrame:
        """``n`` rows; the same seed gives the same rows."""
        if n <= 0:
            return pd.DataFrame(columns=list(self.columns))
        if self.synthesizer_ is None:
            base = self.constant_ if self.constant_ is not None else pd.DataFrame()
            if base.empty:
                return pd.DataFrame(index=range(n))
            return base.iloc[np.zeros(n, dtype=int)].reset_index(drop=True)
        synthesizer = self.synthesizer_
        synthesizer.reset_sampling()
        if self.engine in NEURAL:
            _seed_torch(seed)
        # SDV's documented way to make sampling repeatable is its per-model random state
        synthesizer._set_random_state(int(seed) % (2**32 - 1))
        with _quiet():
            sampled = synthesizer.sample(num_rows=int(n))
        if isinstance(sampled, dict):  # SDV 2 returns {table name: frame}
            sampled = next(iter(sampled.values()))
        return sampled.reset_index(drop=True)


def _seed_torch(seed: int) -> None:
    """Neural engines draw from torch's generator; SDV offers no per-call generator for fitting."""
    import torch

    torch.manual_seed(int(seed) % (2**32 - 1))


class _quiet:
    """Silence SDV's progress logging and its chatty warnings for the duration of a call."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._levels = {}
        for name in ("sdv", "rdt", "copulas", "ctgan", "SingleTableSynthesizer"):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._warnings.__exit__(*exc)
