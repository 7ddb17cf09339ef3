"""Apache Spark as the engine: a session, a connection that runs our DuckDB SQL on it, and reading data in.

``SparkConnection`` offers what ``synth.load``, ``synth.split``, ``synth.pseudonymise``, ``synth.prepare``
and the fidelity metrics call on a DuckDB connection. Every statement is DuckDB SQL, transpiled by
``synth.engine.transpile``: ``CREATE TABLE x AS`` becomes a persisted (memory and disk) temporary view,
``CREATE VIEW`` a temporary view, ``"ns"."t"`` the view ``ns__t``. Python functions registered with
``create_function`` (the HMAC pseudonyms) become pandas UDFs calling the very same Python function, so
pseudonyms are byte-identical on both engines.

Reading (``read_into``): the folder's files are matched and checked by ``synth.load.match_files`` (regular
files inside the folder only), CSV is read as text with the dialect ``synth.load`` fixes, Parquet as it
is, each with its row number; or, with ``table:<prefix>``, the tables ``<prefix><table>`` of the Spark
catalog (Hive, Delta or any table the session can read). From there ``synth.load``'s own typing and
checks run, transpiled.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from synth.engine import MASTER_ENV
from synth.engine.transpile import parse, rewrite, to_spark, view_name

TABLE_PREFIX = "table:"
LOCAL_MASTER = "local[*]"


class SparkQueryError(duckdb.Error):
    """A statement Spark could not run (analysis or runtime error), with Spark's first line."""


class SparkInterrupted(duckdb.InterruptException):
    """The running Spark jobs were cancelled by ``SparkConnection.interrupt`` (a check's time limit)."""


def session(master: str | None = None) -> Any:
    """The Spark session: ``master`` (or $SYNTHMED_SPARK_MASTER), else the one spark-submit set up, else local.

    Settings synthmed relies on: UTC session time zone, no ANSI errors on casts (our SQL says ``try_cast``
    where a value may not parse), no console progress bars, executors running this Python.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    wanted = master or os.environ.get(MASTER_ENV)
    if active is not None and (wanted is None or active.sparkContext.master == wanted):
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this Python (pandas, pyarrow, synthmed)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("synthmed")
    if wanted:
        builder = builder.master(wanted)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: run locally
        builder = builder.master(LOCAL_MASTER)
    for key, value in {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": os.environ.get("SYNTHMED_SPARK_UI", "false"),
        "spark.sql.shuffle.partitions": os.environ.get("SYNTHMED_SPARK_PARTITIONS", "8"),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.memory": driver_memory(wanted or (LOCAL_MASTER if "PYSPARK_GATEWAY_PORT" not in os.environ else None)),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("OFF")  # every failure reaches the caller as an exception; none is printed
    return spark


def driver_memory(master: str | None) -> str:
    """``spark.driver.memory``: ``SYNTHMED_SPARK_DRIVER_MEMORY``, else half the machine in local mode, else 2g.

    In local mode the driver's heap is every executor's too: it holds the persisted tables and the shuffles. At
    2g (4g too), a 10M-claim ``prepare`` died of "Java heap space" after 25 minutes; half of the machine matches
    DuckDB's default budget (``synth.spill.memory_limit``). On a cluster the executors have their own memory.
    """
    given = os.environ.get("SYNTHMED_SPARK_DRIVER_MEMORY")
    if given:
        return given
    if master is not None and master.startswith("local"):
        from synth.spill import half_memory_mib

        return f"{max(half_memory_mib(), 1024)}m"
    return "2g"


CACHED_ROWS = 10_000
"""SELECT answers up to this many rows are kept for a repeat of the same statement (aggregates, not data)."""
VOLATILE = frozenset({"random", "rand", "uuid", "gen_random_uuid", "now", "current_timestamp", "current_date",
                      "setseed", "nextval"})


def _repeatable(tree: Any) -> bool:
    """True when a SELECT gives the same rows every time it runs on unchanged views (no random, clock or sample)."""
    from sqlglot import exp

    if not isinstance(tree, exp.Query) or tree.find(exp.TableSample, exp.Rand, exp.Uuid, exp.CurrentTimestamp,
                                                    exp.CurrentDate) is not None:
        return False
    return not any(f.name.lower() in VOLATILE for f in tree.find_all(exp.Anonymous))


def _python(value: Any) -> Any:
    """A value fetched from Spark as DuckDB's Python API gives it: structs as dicts, lists as lists."""
    from pyspark.sql import Row

    if isinstance(value, Row):
        return {k: _python(v) for k, v in value.asDict(recursive=False).items()}
    if isinstance(value, list):
        return [_python(v) for v in value]
    return value


DUCK_TYPES = {
    "string": "VARCHAR", "varchar": "VARCHAR", "char": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER",
    "smallint": "SMALLINT", "tinyint": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP", "binary": "BLOB",
}


def duck_type(spark_type: str) -> str:
    """A Spark SQL type name as the DuckDB type name ``synth.load`` reasons about."""
    base = spark_type.split("(")[0].lower()
    if base == "decimal":
        return spark_type.upper()
    return DUCK_TYPES.get(base, spark_type.upper())


class _Relation:
    """What ``con.sql(...)`` returns on DuckDB, for the calls our modules make on it. Its actions go through the
    connection's ``collect``, so a failing job is one SparkQueryError line, never a Py4J stack trace."""

    def __init__(self, frame: Any, collect: Callable[[Callable[[], Any]], Any]) -> None:
        self.frame = frame
        self._collect = collect

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def to_arrow_table(self) -> pa.Table:
        return self._collect(self.frame.toArrow)

    fetch_arrow_table = arrow = to_arrow_table

    def to_arrow_reader(self, batch_rows: int = 1_000_000) -> pa.RecordBatchReader:
        table = self.to_arrow_table()
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_rows))

    def df(self) -> Any:
        return self._collect(self.frame.toPandas)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(_python(v) for v in row) for row in self._collect(self.frame.collect)]

    def fetchnumpy(self) -> dict[str, Any]:
        return _numpy(self.to_arrow_table())


def _numpy(table: pa.Table) -> dict[str, Any]:
    return {name: table.column(name).to_numpy() for name in table.column_names}


class SparkConnection:
    """Runs DuckDB SQL on a Spark session (see the module docstring); one per command, like a DuckDB connection."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self._result: Any = None
        self._rows: list[tuple[Any, ...]] | None = None
        self._persisted: dict[str, Any] = {}
        self._views: set[str] = set()
        self._interrupted = threading.Event()
        self._cached: dict[str, list[tuple[Any, ...]]] = {}
        self._key: str | None = None  # the statement whose answer fetchall keeps
        self._lazy: str | None = None  # a cached statement, run again only if its frame is asked for (df, fetchnumpy)
        self.statements = 0  # Spark jobs started by execute/fetchall (cache hits not counted), for profiling

    @classmethod
    def from_environment(cls, master: str | None = None) -> SparkConnection:
        return cls(session(master))

    # -- statements --------------------------------------------------------------------------------
    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> SparkConnection:
        """Run one DuckDB statement; SELECTs keep their result for ``fetchall`` / ``df``."""
        if parameters:
            raise SparkQueryError("parameters are not supported on the Spark engine")
        from sqlglot import exp

        tree = parse(sql)
        self._result = None
        self._rows: list[tuple[Any, ...]] | None = None
        self._key = self._lazy = None
        if not isinstance(tree, (exp.Query, exp.Describe)):
            self.forget()  # anything that may change a view: no cached answer survives it
        if isinstance(tree, exp.Create):
            kind = str(tree.args.get("kind") or "").upper()
            if kind == "SCHEMA":
                return self
            name = self._name(tree.this)
            body = tree.expression
            if body is None and isinstance(tree.this, exp.Schema):  # CREATE TABLE t (a INT, ...): an empty table
                columns = [f"CAST(NULL AS {c.args['kind'].sql(dialect='duckdb')}) AS {c.this.sql(dialect='duckdb')}"
                           for c in tree.this.expressions if isinstance(c, exp.ColumnDef)]
                body = parse(f"SELECT {', '.join(columns)} LIMIT 0")
            if body is None:
                raise SparkQueryError(f"only CREATE ... AS SELECT runs on Spark: {sql[:200]}")
            frame = self._run(rewrite(body))
            self._drop(name)
            if kind == "VIEW":
                frame.createOrReplaceTempView(name)
                self._views.add(name)
            else:
                from pyspark import StorageLevel

                frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
                frame.createOrReplaceTempView(name)
                self._persisted[name] = frame
            return self
        if isinstance(tree, exp.Drop):
            for table in tree.args.get("tables") or [tree.find(exp.Table)]:
                self._drop(self._name(table))
            return self
        if isinstance(tree, exp.Describe):
            frame = self._run(rewrite(tree.this))
            self._rows = [(f.name, duck_type(f.dataType.simpleString())) for f in frame.schema.fields]
            return self
        spark_sql = to_spark(sql)
        if _repeatable(tree) and spark_sql in self._cached:
            self._rows, self._key, self._lazy = self._cached[spark_sql], None, spark_sql
            return self
        self._result = self._run(spark_sql)
        self._key = spark_sql if _repeatable(tree) else None
        return self

    def forget(self) -> None:
        """Drop every cached SELECT answer (called before anything that may change a view or function)."""
        self._cached.clear()

    def _name(self, node: Any) -> str:
        from sqlglot import exp

        table = node if isinstance(node, exp.Table) else node.find(exp.Table)
        return view_name(table.db or None, table.name)

    def _drop(self, name: str) -> None:
        frame = self._persisted.pop(name, None)
        if frame is not None:
            frame.unpersist()
        self._views.discard(name)
        self.spark.catalog.dropTempView(name)

    def _run(self, spark_sql: str) -> Any:
        from pyspark.errors import PySparkException

        try:
            return self.spark.sql(spark_sql)
        except PySparkException as exc:
            raise self._error(exc, spark_sql) from None

    def _error(self, exc: Exception, spark_sql: str) -> duckdb.Error:
        if self._interrupted.is_set():
            self._interrupted.clear()
            return SparkInterrupted("the Spark jobs were cancelled")
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        if lines and lines[0].startswith("An error occurred while calling"):
            lines = [line.lstrip(": ") for line in lines[1:]] or lines  # a JVM exception: its message, not py4j's
        causes = [line for line in lines if line.startswith("Caused by:")]
        first = lines[0] if lines else type(exc).__name__
        if "Python worker" in first and len(lines) > 1:
            first += " " + lines[-1]  # the Python error itself
        elif causes and causes[-1] not in first:
            first += f" ({causes[-1]})"  # the root cause, far below in a JVM stack trace
        where = f" (Spark SQL: {spark_sql[:300]})" if spark_sql else ""
        return SparkQueryError(first + where)

    def _collect(self, action: Callable[[], Any]) -> Any:
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException

        try:
            return action()
        except (PySparkException, Py4JJavaError) as exc:
            raise self._error(exc, "") from None

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The rows of the last SELECT. A repeatable SELECT's small answer is kept until the next statement that may
        change a view, so the metrics' repeated counts (rows per table, per metric) start one Spark job, not one each."""
        if self._result is None:
            return list(getattr(self, "_rows", None) or [])
        result = self._result
        self.statements += 1
        rows = self._collect(lambda: [tuple(_python(v) for v in row) for row in result.collect()])
        if self._key is not None and len(rows) <= CACHED_ROWS:
            self._cached[self._key] = rows
        return list(rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def _frame(self) -> Any:
        if self._result is None and self._lazy is not None:
            self._result = self._run(self._lazy)
        return self._result

    def df(self) -> Any:
        result = self._frame()
        return self._collect(lambda: result.toPandas())

    def fetchnumpy(self) -> dict[str, Any]:
        """Columns as NumPy arrays, as DuckDB's ``fetchnumpy`` (a missing number as NaN, a missing object as None)."""
        result = self._frame()
        return _numpy(self._collect(lambda: result.toArrow()))

    def sql(self, sql: str) -> _Relation:
        return _Relation(self._run(to_spark(sql)), self._collect)

    # -- objects from Python ------------------------------------------------------------------------
    def register(self, name: str, data: Any) -> SparkConnection:
        """A temporary view over an Arrow table / record batch reader / pandas frame held by the driver."""
        self.forget()
        if isinstance(data, pa.RecordBatchReader):
            data = data.read_all()
        frame = self.spark.createDataFrame(data)
        frame.createOrReplaceTempView(name)
        self._views.add(name)
        return self

    def unregister(self, name: str) -> SparkConnection:
        self.forget()
        self._drop(name)
        return self

    def create_function(self, name: str, function: Callable[[pa.Array], pa.Array], parameters: Any = None,
                        return_type: str = "VARCHAR", **_: Any) -> SparkConnection:
        """A vectorised Arrow function (as DuckDB's ``type="arrow"`` UDFs) as a pandas UDF of the same name.

        The executors run ``function`` itself, so its results are the ones DuckDB's UDF gives.
        """
        import pandas as pd
        from pyspark.sql.functions import pandas_udf

        self.forget()
        spark_type = {"VARCHAR": "string", "INTEGER": "int", "BIGINT": "bigint", "DOUBLE": "double"}[str(return_type)]

        def run(values: pd.Series) -> pd.Series:
            arrow = pa.Array.from_pandas(values, type=pa.string())
            return function(arrow).to_pandas()

        run.__annotations__ = {"values": pd.Series, "return": pd.Series}  # real classes: pandas_udf reads them
        self.spark.udf.register(name, pandas_udf(run, spark_type))  # type: ignore[call-overload]
        return self

    def remove_function(self, name: str) -> SparkConnection:
        return self

    # -- control -------------------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Cancel every running job of this session (what a check's time limit calls)."""
        self._interrupted.set()
        self.spark.sparkContext.cancelAllJobs()

    def close(self) -> None:
        for name in list(self._persisted) + list(self._views):
            self._drop(name)

    def frame(self, namespace: str, table: str) -> Any:
        """The Spark DataFrame of DuckDB's ``"namespace"."table"``."""
        return self.spark.table(view_name(namespace, table))


def rows_numbered(spark: Any, frame: Any) -> Any:
    """``frame`` with ``rowid`` (0-based), its rows' order in the source: the order of its partitions, then of
    rows within each. Partition sizes are counted first (one small job), so no row moves to one task."""
    from pyspark.sql import functions as F

    tagged = frame.withColumn("__pid", F.spark_partition_id()).withColumn("__mid", F.monotonically_increasing_id())
    counts = sorted((r[0], r[1]) for r in tagged.groupBy("__pid").count().collect())
    offsets, total = {}, 0
    for pid, n in counts:
        offsets[pid] = total
        total += n
    if not offsets:
        return frame.withColumn("rowid", F.lit(0).cast("bigint")).limit(0)
    mapping = F.create_map(*[x for pid, off in offsets.items() for x in (F.lit(pid), F.lit(off))])
    rowid = F.col("__mid") - (F.col("__pid").cast("bigint") * F.lit(1 << 33)) + mapping[F.col("__pid")]
    return tagged.withColumn("rowid", rowid.cast("bigint")).drop("__pid", "__mid")


def stage_file(con: SparkConnection, path: Path, header: list[str] | None, dialect: dict[str, str] | None,
               name: str) -> tuple[dict[str, str], int]:
    """Read one file into the temporary view ``name`` (with ``rowid``); its column types (DuckDB names) and
    how many CSV lines were malformed (left out, as DuckDB's reject table leaves them out)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    spark = con.spark
    if dialect is None:
        frame = spark.read.parquet(str(path)).select("*", F.col("_metadata.row_index").alias("rowid"))
        bad = 0
    else:
        assert header is not None
        fields = [StructField(n, StringType()) for n in header] + [StructField("__corrupt", StringType())]
        raw = (spark.read.schema(StructType(fields))
               .options(header="true", sep=dialect["delimiter"], quote=dialect["quote"], escape=dialect["escape"],
                        encoding=dialect["encoding"], mode="PERMISSIVE", columnNameOfCorruptRecord="__corrupt",
                        multiLine="true", ignoreLeadingWhiteSpace="false", ignoreTrailingWhiteSpace="false")
               .csv(str(path)))
        raw = raw.persist()
        bad = raw.filter(F.col("__corrupt").isNotNull()).count()
        frame = rows_numbered(spark, raw.filter(F.col("__corrupt").isNull()).drop("__corrupt"))
    con.forget()
    frame.createOrReplaceTempView(name)
    con._views.add(name)
    types = {f.name: duck_type(f.dataType.simpleString()) for f in frame.schema.fields if f.name != "rowid"}
    return types, int(bad)


def stage_table(con: SparkConnection, qualified: str, name: str) -> dict[str, str]:
    """A catalog table (Hive, Delta...) into the temporary view ``name``, numbered in scan order."""
    frame = rows_numbered(con.spark, con.spark.table(qualified))
    con.forget()
    frame.createOrReplaceTempView(name)
    con._views.add(name)
    return {f.name: duck_type(f.dataType.simpleString()) for f in frame.schema.fields if f.name != "rowid"}


def write_parquet_folder(con: SparkConnection, namespace: str, table: str, columns: Sequence[str], path: Path) -> None:
    """A table as a Parquet folder of part files (``<table>.parquet/part-*.parquet``), written by the executors."""
    frame = con.frame(namespace, table).select(*columns)
    try:
        con._collect(lambda: frame.write.mode("errorifexists").parquet(str(path)))  # one line, not a JVM trace
    except SparkQueryError as exc:
        raise SparkQueryError(f"writing table {table} to {path} failed: {exc}") from None


def table_names(prefix: str, tables: Iterator[str]) -> dict[str, str]:
    return {t: f"{prefix}{t}" for t in tables}
