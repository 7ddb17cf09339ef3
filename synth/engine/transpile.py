"""DuckDB SQL to Spark SQL: SQLGlot's transpiler plus the rewrites our queries need.

SQLGlot reads DuckDB's dialect and writes Spark's (casts, ``sha256`` -> ``sha2``, ``DISTINCT ON`` -> a
``row_number`` window, ``list(struct_pack(..))`` -> ``collect_list(struct(..))``...). On top of it:

* ``"ns"."table"`` (DuckDB schemas) -> temporary view ``ns__table`` (Spark's session catalog);
* ``regexp_full_match(x, 'p')`` -> ``x RLIKE '^(?:p)$'``; ``try_strptime(x, '%Y..')`` -> ``try_to_timestamp(x, 'yyyy..')``;
* ``epoch(v)`` / ``epoch_ns(v)`` -> ``unix_micros(CAST(v AS TIMESTAMP)) / 1e6`` / ``* 1000`` (fractions kept);
* ``quantile_cont`` -> ``percentile`` (both interpolate linearly); ``to_days(n)`` -> ``make_dt_interval(n)``;
* a whole row as a struct (``p AS s`` in ``data_schemas.rules``) -> ``struct(p.*)``;
* a seeded sample (``USING SAMPLE p PERCENT (bernoulli, seed)``) -> ``TABLESAMPLE (p PERCENT) REPEATABLE (seed)``.
"""
from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.time import format_time

class SparkSQL(Spark):
    """Spark's dialect as SQLGlot writes it, but a sample's seed as Spark's parser reads it (``REPEATABLE``)."""

    class Generator(Spark.Generator):  # type: ignore[name-defined,misc]
        TABLESAMPLE_SEED_KEYWORD = "REPEATABLE"


ROW_ALIASES = {"p": "s", "r": "s", "t": "__sm_patient"}
"""Whole-row struct references of ``data_schemas.rules.rule_frame_sql``: table alias -> the name it is given."""


def view_name(namespace: str | None, table: str) -> str:
    """The Spark temporary view standing for DuckDB's ``"namespace"."table"``."""
    return f"{namespace}__{table}" if namespace else table


def spark_time_format(fmt: str) -> str:
    """A strftime format (DuckDB's) as a Java DateTimeFormatter pattern (Spark's)."""
    return format_time(fmt, Spark.INVERSE_TIME_MAPPING, Spark.INVERSE_TIME_TRIE) or fmt


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Table) and node.args.get("db") is not None:
        name = view_name(node.db, node.name)
        alias = node.args.get("alias")
        return exp.Table(this=exp.to_identifier(name), alias=alias)
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        args = node.expressions
        if name == "regexp_full_match" and len(args) == 2 and isinstance(args[1], exp.Literal):
            return exp.RegexpLike(this=args[0], expression=exp.Literal.string(f"^(?:{args[1].this})$"))
        if name == "try_strptime" and len(args) == 2 and isinstance(args[1], exp.Literal):
            return exp.Anonymous(this="TRY_TO_TIMESTAMP", expressions=[args[0], exp.Literal.string(spark_time_format(args[1].this))])
        if name == "epoch_ns" and len(args) == 1:
            return exp.Mul(this=_micros(args[0]), expression=exp.Literal.number(1000))
        if name == "to_days" and len(args) == 1:
            return exp.Anonymous(this="MAKE_DT_INTERVAL", expressions=[args[0]])
        if name == "quantile_cont" and len(args) == 2:
            return exp.Anonymous(this="PERCENTILE", expressions=args)
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        node.set("materialized", None)  # a hint to DuckDB's planner; Spark has no such clause
        return node
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(f"^(?:{node.expression.this})$"))
    if isinstance(node, exp.ToDays):
        return exp.Anonymous(this="MAKE_DT_INTERVAL", expressions=[node.this])
    if isinstance(node, exp.TimeToUnix):
        return exp.Div(this=_micros(node.this), expression=exp.Literal.number("1000000.0"))
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this, node.expression])
    if isinstance(node, exp.Alias) and isinstance(node.this, exp.Column) and not node.this.table:
        if ROW_ALIASES.get(node.this.name) == node.alias:
            star = exp.Column(this=exp.Star(), table=exp.to_identifier(node.this.name))
            return exp.Alias(this=exp.Struct(expressions=[star]), alias=exp.to_identifier(node.alias))
    return node


def _micros(value: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="UNIX_MICROS", expressions=[exp.Cast(this=value, to=exp.DataType.build("TIMESTAMP"))])


@functools.lru_cache(maxsize=4096)
def to_spark(sql: str) -> str:
    """One DuckDB SELECT (or expression statement) as Spark SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.transform(_rewrite).sql(dialect=SparkSQL)


def parse(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read="duckdb")


def rewrite(tree: exp.Expression) -> str:
    return tree.transform(_rewrite).sql(dialect=SparkSQL)
