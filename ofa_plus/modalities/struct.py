"""STRUCT: tables and database schemas, linearised to text (OFA's ``a : b | c : d``).

Accepted values: a string (already linear); a table as a list of rows (the first row is the
header) or a dict ``{"header": [...], "rows": [[...], ...], "title": ...}``; a database schema as
a dict ``{"db_id": ..., "tables": {name: {"columns": [...], "values": {column: [...]}}}}`` or an
open ``sqlite3.Connection`` / a path to a ``.sqlite``/``.db`` file, read with up to
``max_values`` distinct values per column (the "bridge" trick that lets text-to-SQL see content).
"""

from __future__ import annotations

import os
import sqlite3

from . import register_modality
from .base import TEXT_ATTRIBUTES, Attribute, Modality, SlotContext
from .text import TextModality

DEFAULT_MAX_VALUES = 2
_DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def linearize_table(rows: list) -> str:
    return " | ".join(" : ".join(str(cell) for cell in row) for row in rows)


def read_sqlite_schema(database, max_values: int) -> dict:
    """A schema dict (see the module docstring) from a sqlite3 connection or file path."""
    own = not isinstance(database, sqlite3.Connection)
    conn = sqlite3.connect(f"file:{os.fspath(database)}?mode=ro", uri=True) if own else database
    try:
        tables = {}
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        for table in names:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            values = {}
            for column in columns if max_values else []:
                rows = conn.execute(
                    f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL LIMIT {int(max_values)}'
                )
                values[column] = [r[0] for r in rows]
            tables[table] = {"columns": columns, "values": values}
        db_id = os.path.splitext(os.path.basename(os.fspath(database)))[0] if own else "main"
        return {"db_id": db_id, "tables": tables}
    finally:
        if own:
            conn.close()


def linearize_schema(schema: dict, max_values: int) -> str:
    parts = [str(schema.get("db_id", "database"))]
    for table, spec in schema["tables"].items():
        columns = []
        for column in spec["columns"]:
            values = list(spec.get("values", {}).get(column, []))[:max_values]
            columns.append(f"{column} ( {' , '.join(str(v) for v in values)} )" if values else str(column))
        parts.append(f"{table} : {' , '.join(columns)}")
    return " | ".join(parts)


def linearize(value, max_values: int = DEFAULT_MAX_VALUES, where: str = "STRUCT") -> str:
    if isinstance(value, sqlite3.Connection) or (
        isinstance(value, (str, os.PathLike)) and os.fspath(value).endswith(_DB_SUFFIXES)
    ):
        if not isinstance(value, sqlite3.Connection) and not os.path.exists(value):
            raise ValueError(f"{where}: database file {os.fspath(value)!r} does not exist")
        return linearize_schema(read_sqlite_schema(value, max_values), max_values)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "tables" in value:
        return linearize_schema(value, max_values)
    if isinstance(value, dict) and "rows" in value:
        rows = ([value["header"]] if value.get("header") else []) + list(value["rows"])
        title = f"{value['title']} | " if value.get("title") else ""
        return title + linearize_table(rows)
    if isinstance(value, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in value):
        return linearize_table(value)
    raise ValueError(
        f"{where}: expected a table (list of rows or {{'header', 'rows'}}), a schema "
        f"({{'db_id', 'tables'}}), a sqlite3 database or a string; got {type(value).__name__}"
    )


@register_modality
class StructModality(Modality):
    name = "STRUCT"
    text_like = True
    attributes = {
        **TEXT_ATTRIBUTES,
        "max_values": Attribute(int, minimum=0, help="column values shown per column of a database schema"),
    }

    @classmethod
    def is_single(cls, value) -> bool:
        if isinstance(value, (str, dict, sqlite3.Connection, os.PathLike)):
            return True
        # a single table is a list of rows of scalars; a batch is a list of tables or schemas
        return isinstance(value, (list, tuple)) and all(
            isinstance(r, (list, tuple)) and all(not isinstance(c, (list, tuple, dict)) for c in r) for r in value
        )

    @classmethod
    def encode(cls, value, ctx: SlotContext) -> list[int]:
        text = linearize(value, ctx.settings.get("max_values", DEFAULT_MAX_VALUES), ctx.where)
        return TextModality.encode(text, ctx)

    @classmethod
    def decode(cls, ids: list[int], ctx: SlotContext) -> str:
        return TextModality.decode(ids, ctx)

    @classmethod
    def output_ids(cls, ctx: SlotContext) -> list[range]:
        return TextModality.output_ids(ctx)
