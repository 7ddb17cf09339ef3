"""Our schema as SDV metadata: SDV is an engine we drive, the schema stays the source of truth.

Direct identifiers are left out (they never reach a generator); composite primary keys, which SDV cannot
express, become plain columns; relationships are kept where the parent key is a single-column key.
"""
from __future__ import annotations

from typing import Any

from data_schemas.model import Column, Schema

_SDV_DATE_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}


def column_sdtype(column: Column) -> dict[str, Any]:
    """The SDV column spec of one of our columns."""
    if column.type == "id":
        return {"sdtype": "id"}
    if column.type == "numerical":
        spec: dict[str, Any] = {"sdtype": "numerical"}
        if column.integer:
            spec["decimal_places"] = 0
        if column.minimum is not None:
            spec["range_min"] = int(column.minimum) if column.integer else column.minimum
        if column.maximum is not None:
            spec["range_max"] = int(column.maximum) if column.integer else column.maximum
        return spec
    if column.type == "datetime":
        return {"sdtype": "datetime", "datetime_format": _SDV_DATE_FORMATS[column.unit]}
    if column.type == "boolean":
        return {"sdtype": "boolean"}
    spec = {"sdtype": "categorical"}
    if column.values:
        spec["range_values"] = list(column.values)
    return spec


def to_sdv_dict(schema: Schema, *, tables: list[str] | None = None) -> dict[str, Any]:
    """The SDV metadata dictionary (spec V2) of a schema, or of some of its tables."""
    names = tables or [t for t in schema.topological_order() if not schema.tables[t].reference]
    out_tables: dict[str, Any] = {}
    for name in names:
        table = schema.tables[name]
        columns = {
            c.name: column_sdtype(c) for c in table.columns.values() if c.privacy != "direct_identifier" or c.type == "id"
        }
        spec: dict[str, Any] = {"columns": columns}
        if len(table.primary_key) == 1 and table.primary_key[0] in columns:
            spec["primary_key"] = table.primary_key[0]
        out_tables[name] = spec
    relationships = []
    for name in names:
        for col in schema.tables[name].foreign_keys:
            parent, parent_col = col.foreign_key  # type: ignore[misc]
            if parent == name:  # self-references (preceding visit) are not relationships to SDV
                continue
            parent_spec = out_tables.get(parent)
            if parent_spec is not None and parent_spec.get("primary_key") == parent_col and col.name in out_tables[name]["columns"]:
                relationships.append(
                    {
                        "parent_table_name": parent,
                        "parent_primary_key": parent_col,
                        "child_table_name": name,
                        "child_foreign_key": col.name,
                    }
                )
    return {"tables": out_tables, "relationships": relationships, "METADATA_SPEC_VERSION": "V2"}


def to_sdv_metadata(schema: Schema, *, tables: list[str] | None = None) -> Any:
    """An ``sdv.metadata.Metadata`` for the schema, validated by SDV (imported lazily: it is heavy)."""
    from sdv.metadata import Metadata

    metadata = Metadata.load_from_dict(to_sdv_dict(schema, tables=tables))
    metadata.validate()
    return metadata
