"""Hand-built `requests` rows and Parquet snapshots written like the log store exports them
(a DuckDB table with the schema's columns, then COPY ... (FORMAT parquet))."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from proxy.logstore.schema import REQUEST_COLUMN_TYPES

T0 = datetime(2025, 1, 1, 12, 0, 0)
RowFactory = Callable[..., dict[str, Any]]
SnapshotWriter = Callable[[list[dict[str, Any]]], Path]


def _prompt_hash(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def build_row(
    i: int,
    question: str | None = None,
    answer: str | None = None,
    system: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A successful teacher-answered request; overrides set any column."""
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": question or f"question number {i}?"})
    row: dict[str, Any] = {
        "id": f"req-{i:05d}",
        "created_at": T0 + timedelta(minutes=i),
        "finished_at": T0 + timedelta(minutes=i, seconds=1),
        "requested_model": "gpt-4o-mini",
        "tag": None,
        "stream": False,
        "store": True,
        "route": "teacher",
        "reason": "low_confidence",
        "prompt_hash": _prompt_hash(messages),
        "request_json": json.dumps({"model": "gpt-4o-mini", "messages": messages}),
        "teacher_model": "gpt-4o-mini",
        "teacher_text": answer if answer is not None else f"answer number {i}",
        "teacher_finish_reason": "stop",
        "shadow": False,
        "status_code": 200,
        "error": None,
    }
    row.update(overrides)
    return row


def write_snapshot(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = ", ".join(f"{name} {typ}" for name, typ in REQUEST_COLUMN_TYPES)
    names = [name for name, _ in REQUEST_COLUMN_TYPES]
    with duckdb.connect() as conn:
        conn.execute(f"CREATE TABLE requests ({columns})")
        for row in rows:
            unknown = set(row) - set(names)
            assert not unknown, f"not a requests column: {unknown}"
        if rows:
            table = pa.Table.from_pylist([{n: row.get(n) for n in names} for row in rows])
            conn.register("hand_built", table)
            conn.execute("INSERT INTO requests SELECT * FROM hand_built")
        conn.execute(f"COPY requests TO '{path}' (FORMAT parquet)")
    return path


def write_db(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A request-log DuckDB file with the real schema (migrations) holding `rows`."""
    from proxy.logstore.schema import migrate

    names = [name for name, _ in REQUEST_COLUMN_TYPES]
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        if rows:
            table = pa.Table.from_pylist([{n: row.get(n) for n in names} for row in rows])
            conn.register("hand_built", table)
            conn.execute("INSERT INTO requests SELECT * FROM hand_built")
    return path
