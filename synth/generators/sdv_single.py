"""SDV's single-table synthesizers by name: GaussianCopula, CTGAN, TVAE.

On a one-table schema each is exactly that SDV synthesizer; on a multi-table schema it is the
hierarchical generator with that engine under every table, since SDV's own multi-table model covers
only small schemas.
"""
from __future__ import annotations

from typing import Any, ClassVar

from synth.generators.hierarchical import HierarchicalGenerator
from synth.generators.registry import register


class _EngineGenerator(HierarchicalGenerator):
    """The hierarchical generator with one fixed SDV engine; its parameters are the engine's own."""

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, so that ``get_generator(name, **params)`` rebuilds this generator."""
        return {**self.engine_params, "max_rows_per_table": self.max_rows_per_table, **self._rare_params(), **self._time_params()}


@register
class GaussianCopulaGenerator(_EngineGenerator):
    """SDV GaussianCopulaSynthesizer (parameters: SDV's, e.g. default_distribution)."""

    name: ClassVar[str] = "gaussian_copula"
    family: ClassVar[str] = "sdv-single-table"
    description: ClassVar[str] = "SDV GaussianCopula per table (fast, statistical)"

    def __init__(self, *, max_rows_per_table: int | None = None, min_patients: int | None = None, **engine_params: Any) -> None:
        super().__init__(engine="gaussian_copula", engine_params=engine_params, max_rows_per_table=max_rows_per_table, min_patients=min_patients)


@register
class CTGANGenerator(_EngineGenerator):
    """SDV CTGANSynthesizer (parameters: SDV's, e.g. epochs, batch_size)."""

    name: ClassVar[str] = "ctgan"
    family: ClassVar[str] = "sdv-single-table"
    description: ClassVar[str] = "SDV CTGAN per table (neural, GAN; 50 epochs by default)"

    def __init__(
        self, *, max_rows_per_table: int | None = None, min_patients: int | None = None, max_time: float | None = None,
        **engine_params: Any,
    ) -> None:
        super().__init__(
            engine="ctgan", engine_params=engine_params, max_rows_per_table=max_rows_per_table, min_patients=min_patients,
            max_time=max_time,
        )


@register
class TVAEGenerator(_EngineGenerator):
    """SDV TVAESynthesizer (parameters: SDV's, e.g. epochs, batch_size)."""

    name: ClassVar[str] = "tvae"
    family: ClassVar[str] = "sdv-single-table"
    description: ClassVar[str] = "SDV TVAE per table (neural, variational autoencoder; 50 epochs by default)"

    def __init__(
        self, *, max_rows_per_table: int | None = None, min_patients: int | None = None, max_time: float | None = None,
        **engine_params: Any,
    ) -> None:
        super().__init__(
            engine="tvae", engine_params=engine_params, max_rows_per_table=max_rows_per_table, min_patients=min_patients,
            max_time=max_time,
        )
