"""Where the data-heavy SQL runs: DuckDB in this process (the default) or Apache Spark (``--engine spark``).

The queries are written once, in DuckDB's dialect, by the modules that own them (``synth.load``,
``synth.split``, ``synth.pseudonymise``, ``data_schemas.rules``, the fidelity metrics). On Spark they run
through ``SparkConnection``, which offers the few methods of a DuckDB connection those modules call
(``execute``/``fetchall``, ``sql``, ``register``, ``create_function``, ``interrupt``) and turns each
statement into Spark SQL with SQLGlot (DuckDB's dialect read, Spark's written, a handful of rewrites
of our own in ``synth.engine.transpile``). So there is one expression of every check, split, pseudonym
and count, and two engines that must agree (``tests/spark``).
"""
from __future__ import annotations

import os
from typing import Any, Literal

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "spark")
MASTER_ENV = "SYNTHMED_SPARK_MASTER"


def check_engine(name: str) -> Engine:
    """The engine name, or a ValueError naming the allowed ones."""
    if name not in ENGINES:
        raise ValueError(f"The '--engine' option must be one of {', '.join(ENGINES)}; got {name!r} instead.")
    return name  # type: ignore[return-value]


def connection(engine: str = "duckdb", **kwargs: Any) -> Any:
    """A connection of the engine: a locked-down DuckDB connection, or a SparkConnection on the session of
    ``$SYNTHMED_SPARK_MASTER`` (or of ``spark-submit``)."""
    if check_engine(engine) == "duckdb":
        from synth.load import connect

        return connect(**kwargs)
    from synth.engine.spark import SparkConnection

    return SparkConnection.from_environment()


def is_spark(con: Any) -> bool:
    """True for a SparkConnection (without importing pyspark when it is not one)."""
    return type(con).__name__ == "SparkConnection" and type(con).__module__ == "synth.engine.spark"


def spark_master() -> str | None:
    return os.environ.get(MASTER_ENV) or None
