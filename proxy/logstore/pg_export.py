"""The trainer's Parquet snapshot taken from PostgreSQL, in the very format DuckDB writes.

Rows stream out of PostgreSQL through server-side cursors into a scratch DuckDB file
built by the same migrations as the embedded log; the snapshot query of
`snapshot.export_snapshot` then runs there unchanged. Column names, order and types
match whichever engine the log lives in, and memory stays bounded by one chunk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import psycopg

from proxy.logstore.row_filter import RowFilter
from proxy.logstore.schema import migrate

if TYPE_CHECKING:
    from proxy.logstore.pgsql import PgCursor

_CHUNK_ROWS = 5_000
_VIEW = "_distill_pg_chunk"
_SKIP_TABLES = frozenset({"schema_migrations"})

CopyOut = Callable[[duckdb.DuckDBPyConnection, Path, RowFilter], None]


def _columns(cur: Any, table: str, schema_filter: str) -> list[str]:
    rows = cur.execute(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_name = ?{schema_filter} ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _tables(duck: duckdb.DuckDBPyConnection) -> list[str]:
    rows = duck.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return [str(r[0]) for r in rows if str(r[0]) not in _SKIP_TABLES]


def _object_columns(names: list[str], rows: list[tuple[Any, ...]]) -> dict[str, np.ndarray]:
    frame: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        array = np.empty(len(rows), dtype=object)
        for j, row in enumerate(rows):
            array[j] = row[i]  # element-wise: a JSON text must stay one scalar
        frame[name] = array
    return frame


def _fill(
    pg: psycopg.Connection[Any],
    duck: duckdb.DuckDBPyConnection,
    table: str,
    names: list[str],
    where: tuple[str, list[Any]],
) -> None:
    column_list = ", ".join(names)
    clause, params = where
    with pg.transaction(), pg.cursor(name=f"distill_snapshot_{table}") as cur:
        cur.itersize = _CHUNK_ROWS
        cur.execute(f"SELECT {column_list} FROM {table}{clause}", params)
        while rows := cur.fetchmany(_CHUNK_ROWS):
            duck.register(_VIEW, _object_columns(names, rows))
            try:
                duck.execute(
                    f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {_VIEW}"
                )
            finally:
                duck.unregister(_VIEW)


def export_parquet(cur: PgCursor, dest: Path, rows: RowFilter, copy: CopyOut) -> None:
    """Writes the snapshot of the PostgreSQL log behind `cur` to `dest` with `copy` (the
    DuckDB snapshot query): the selected `requests` rows and the other tables it may join."""
    with (
        tempfile.TemporaryDirectory(prefix=".snapshot-", dir=dest.parent) as scratch,
        duckdb.connect(str(Path(scratch) / "snapshot.duckdb")) as duck,
    ):
        migrate(duck)
        requests_where = rows.where(placeholder="%s")
        for table in _tables(duck):
            present = set(_columns(cur, table, " AND table_schema = current_schema()"))
            names = [c for c in _columns(duck, table, "") if c in present]
            if names:
                where = requests_where if table == "requests" else ("", [])
                _fill(cur.connection, duck, table, names, where)
        copy(duck, dest, RowFilter(include_unstored=True))  # filtered on the way in
