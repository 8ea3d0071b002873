"""The ``feedback`` table: one row per feedback received, the latest per request counts.

Plain parameterised SQL (no DuckDB-only syntax) so any log backend with the same
migrations can run it. Functions take a DB-API style connection or cursor; the server
calls the writes through its log writer's thread (the single writer).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

RATINGS: tuple[str, ...] = ("good", "bad")
SOURCES = ("api", "cli", "import")
FEEDBACK_COLUMNS = (
    "id", "request_id", "created_at", "rating", "correction", "note", "source",
    "client_key_hash",
)  # fmt: skip
INSERT_SQL = (
    f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in FEEDBACK_COLUMNS)})"
)
# Ties on created_at (a bulk import in one instant) fall back to the id, which sorts by
# creation time too (see `new_id`).
_LATEST_ORDER = "ORDER BY created_at DESC, id DESC"


class Cursor(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...


@dataclass(frozen=True)
class Feedback:
    """A stored feedback."""

    id: str
    request_id: str
    created_at: datetime  # naive UTC, like the request log
    rating: str | None
    correction: str | None
    note: str | None
    source: str
    client_key_hash: str | None = None

    def params(self) -> list[Any]:
        return [getattr(self, c) for c in FEEDBACK_COLUMNS]

    def to_api(self) -> dict[str, Any]:
        """The API's view (the key hash stays in the database)."""
        return {
            "id": self.id,
            "object": "feedback",
            "request_id": self.request_id,
            "rating": self.rating,
            "correction": self.correction,
            "note": self.note,
            "source": self.source,
            "created_at": int(self.created_at.replace(tzinfo=UTC).timestamp()),
        }


def new_id(now_ns: int | None = None) -> str:
    """``fb_`` + 16 hex digits of the time in ns + 8 random: sortable by creation."""
    return f"fb_{now_ns if now_ns is not None else time.time_ns():016x}{secrets.token_hex(4)}"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_feedback(
    request_id: str,
    rating: str | None,
    correction: str | None,
    note: str | None,
    *,
    source: str,
    client_key_hash: str | None = None,
    now: datetime | None = None,
) -> Feedback:
    if rating is not None and rating not in RATINGS:
        raise ValueError(f"rating must be one of {', '.join(RATINGS)} or null, not {rating!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown feedback source {source!r}")
    return Feedback(
        id=new_id(),
        request_id=request_id,
        created_at=now or utcnow(),
        rating=rating,
        correction=correction,
        note=note,
        source=source,
        client_key_hash=client_key_hash,
    )


def stamped_in_order(items: Sequence[Feedback]) -> list[Feedback]:
    """A batch with strictly increasing timestamps, so its last line for a request wins."""
    out: list[Feedback] = []
    for i, fb in enumerate(items):
        at = fb.created_at + timedelta(microseconds=i)
        out.append(replace(fb, created_at=at))
    return out


# A client retrying with its own id gets one row per attempt (``<id>~<n>``, linked by
# ``request_id``): feedback on that id is about the answer it saw last, the newest attempt.
_RESOLVE = (
    "SELECT id, client_key_hash, coalesce(request_id, id) FROM requests "
    "WHERE id IN ({marks}) OR request_id IN ({marks}) "
    "ORDER BY coalesce(attempt, 1)"
)


def resolve_many(conn: Cursor, request_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """Given id -> (the row the feedback is about, the key hash that made the request)."""
    if not request_ids:
        return {}
    ids = list(request_ids)
    marks = ", ".join("?" for _ in ids)
    rows = conn.execute(_RESOLVE.format(marks=marks), ids + ids).fetchall()
    wanted = set(ids)
    out: dict[str, tuple[str, str | None]] = {}
    for row_id, key_hash, client_id in rows:  # oldest attempt first: the newest wins
        for given in {row_id, client_id} & wanted:
            out[given] = (row_id, key_hash)
    return out


def resolve(conn: Cursor, request_id: str) -> tuple[str, str | None] | None:
    return resolve_many(conn, [request_id]).get(request_id)


def latest_sql(columns: str = "*") -> str:
    """The latest feedback per request as a subquery (portable: a window function)."""
    return (
        f"SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY request_id "
        f"{_LATEST_ORDER}) AS feedback_rank FROM feedback) latest WHERE feedback_rank = 1"
    )


def insert_many(conn: Cursor, items: Sequence[Feedback]) -> int:
    """Inserts a batch in one transaction (the CLI's path when no server owns the file)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        for fb in items:
            conn.execute(INSERT_SQL, fb.params())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(items)


# Added to every snapshot row: the latest feedback and how many were received.
SNAPSHOT_COLUMN_TYPES = (
    ("feedback_rating", "VARCHAR"),
    ("feedback_correction", "VARCHAR"),
    ("feedback_note", "VARCHAR"),
    ("feedback_at", "TIMESTAMP"),
    ("feedback_count", "INTEGER"),
)
SNAPSHOT_COLUMNS = tuple(name for name, _ in SNAPSHOT_COLUMN_TYPES)


def has_table(conn: Cursor) -> bool:
    rows = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'feedback'"
    ).fetchall()
    return bool(rows and rows[0][0])


def snapshot_select(conn: Cursor, alias: str = "r") -> tuple[str, str]:
    """(extra select list, join clause) adding the latest feedback of each request row.

    A log file from before the feedback migration (read-only, not migrated) gets the same
    columns, all NULL, so every snapshot has one shape."""
    if not has_table(conn):
        nulls = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in SNAPSHOT_COLUMN_TYPES)
        return nulls, ""
    latest = latest_sql(
        "request_id, rating AS feedback_rating, correction AS feedback_correction, "
        "note AS feedback_note, created_at AS feedback_at"
    )
    counted = "SELECT request_id, count(*) AS feedback_count FROM feedback GROUP BY request_id"
    select = (
        "fl.feedback_rating, fl.feedback_correction, fl.feedback_note, fl.feedback_at, "
        "CAST(fc.feedback_count AS INTEGER) AS feedback_count"
    )
    join = (
        f" LEFT JOIN ({latest}) fl ON fl.request_id = {alias}.id"
        f" LEFT JOIN ({counted}) fc ON fc.request_id = {alias}.id"
    )
    return select, join
