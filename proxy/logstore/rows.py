"""Turning log records (dicts) into a columnar batch and inserting it into `requests`.

The batch goes in as ONE statement: a dict of numpy object arrays registered as a
relation and copied with ``INSERT ... SELECT``. Measured on this machine for
1,000 realistic rows (6 KB of JSON each): ~60 ms, against ~1,500 ms for
``executemany`` (one prepared execution per row), ~500 ms for multi-row
``VALUES`` and ~120 ms for ``UNNEST`` of list parameters; pandas/pyarrow are
not needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import numpy as np
import orjson

from proxy.logstore.schema import JSON_COLUMNS, REQUEST_COLUMNS, TIMESTAMP_COLUMNS

COLUMN_SET: frozenset[str] = frozenset(REQUEST_COLUMNS)
_BATCH_VIEW = "_distill_log_batch"
_COLUMN_LIST = ", ".join(REQUEST_COLUMNS)

# Errors that depend on the rows themselves (bad values, duplicate ids): retrying the
# same rows can never succeed, so they are isolated row by row instead of spilled.
ROW_ERRORS: tuple[type[duckdb.Error], ...] = (
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.InvalidInputException,
    duckdb.InvalidTypeException,
)

Columns = list[list[Any]]


class InsertBatch(Protocol):
    """Writes a columnar batch into `requests` (the writer's seam for fault injection)."""

    def __call__(
        self, conn: duckdb.DuckDBPyConnection, columns: Columns, ignore_conflicts: bool
    ) -> None: ...


def unknown_keys(record: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in record if k not in COLUMN_SET)


def json_text(value: Any) -> str:
    """JSON column value: str is taken as JSON text already; anything else is encoded."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return orjson.dumps(value, default=str).decode("utf-8")


def utc_naive(value: Any) -> Any:
    """TIMESTAMP columns hold naive UTC; aware datetimes, ISO strings and epochs are converted."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def to_columns(records: Sequence[Mapping[str, Any]]) -> Columns:
    """Columnar batch in REQUEST_COLUMNS order; missing keys are NULL, unknown keys ignored."""
    n = len(records)
    columns: Columns = [[None] * n for _ in REQUEST_COLUMNS]
    plan = _PLAN  # one dict lookup per value: this loop is the writer's hot path
    for row, record in enumerate(records):
        for key, value in record.items():
            step = plan.get(key)
            if step is None or value is None:
                continue
            index, convert = step
            columns[index][row] = value if convert is None else convert(value)
    return columns


_PLAN: dict[str, tuple[int, Callable[[Any], Any] | None]] = {
    name: (
        i,
        json_text if name in JSON_COLUMNS else utc_naive if name in TIMESTAMP_COLUMNS else None,
    )
    for i, name in enumerate(REQUEST_COLUMNS)
}


def select_rows(columns: Columns, rows: Sequence[int]) -> Columns:
    return [[col[i] for i in rows] for col in columns]


def _object_array(values: list[Any]) -> np.ndarray:
    # Slice assignment keeps every element a scalar object (np.array would try to nest).
    array = np.empty(len(values), dtype=object)
    try:
        array[:] = values
    except ValueError:  # a list/tuple value (a caller bug): let DuckDB reject that row
        for i, value in enumerate(values):
            array[i] = value
    return array


def insert_batch(
    conn: duckdb.DuckDBPyConnection, columns: Columns, ignore_conflicts: bool = False
) -> None:
    """One INSERT for the whole batch (atomic: all rows or none)."""
    frame = {name: _object_array(col) for name, col in zip(REQUEST_COLUMNS, columns, strict=True)}
    verb = "INSERT OR IGNORE INTO" if ignore_conflicts else "INSERT INTO"
    conn.register(_BATCH_VIEW, frame)
    try:
        conn.execute(f"{verb} requests ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_BATCH_VIEW}")
    finally:
        conn.unregister(_BATCH_VIEW)
