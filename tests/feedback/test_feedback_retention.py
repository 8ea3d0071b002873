"""Retention erases what users wrote in old feedback (corrections, notes), keeps ratings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxy.logstore import feedback as store
from proxy.logstore.writer import LogWriter
from proxy.privacy import purge_once


def test_retention_erases_old_corrections_and_notes(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with LogWriter(tmp_path / "d.duckdb", tmp_path / "spill", flush_interval=0.05) as writer:
        for request_id, age in (("old", 40), ("new", 1)):
            fb = store.new_feedback(
                request_id, "bad", "the right answer", "a note",
                source="api", now=now - timedelta(days=age),
            )  # fmt: skip
            writer.execute(store.INSERT_SQL, fb.params()).result(10)
        asyncio.run(purge_once(writer, 30))
        rows = writer.read(
            lambda c: c.execute(
                "SELECT request_id, rating, correction, note FROM feedback ORDER BY request_id"
            ).fetchall()
        )
    assert rows == [("new", "bad", "the right answer", "a note"), ("old", "bad", None, None)]
