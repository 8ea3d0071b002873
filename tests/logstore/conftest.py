"""Fixtures for the log store: a writer on a temporary database and realistic rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from proxy.logstore.writer import LogWriter

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_record(i: int, **overrides: Any) -> dict[str, Any]:
    """A plausible `requests` row (the shape proxy/serving builds)."""
    record: dict[str, Any] = {
        "id": f"req-{i:06d}",
        "created_at": T0 + timedelta(seconds=i),
        "finished_at": T0 + timedelta(seconds=i, milliseconds=40),
        "requested_model": "gpt-4o-mini",
        "stream": i % 2 == 0,
        "store": True,
        "route": "student" if i % 4 else "teacher",
        "reason": "confident" if i % 4 else "low_confidence",
        "scorer": "mean_logprob",
        "confidence": -0.1 * (i % 10),
        "threshold": -0.5,
        "request_json": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"q{i}"}],
        },
        "student_text": f"answer {i}",
        "teacher_logprobs_json": [
            {"token": "a", "logprob": -0.1, "top_logprobs": [{"token": "b", "logprob": -2.5}]}
        ],
        "student_prompt_tokens": 12,
        "student_completion_tokens": 5,
        "total_latency_ms": 10.0 + i,
        "status_code": 200,
        "cost_usd": 0.0001,
        "counterfactual_cost_usd": 0.001,
    }
    record.update(overrides)
    return record


WriterFactory = Callable[..., LogWriter]


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[WriterFactory]:
    """Builds started writers on tmp_path/log.duckdb; closes them after the test."""
    made: list[LogWriter] = []

    def factory(**kwargs: Any) -> LogWriter:
        kwargs.setdefault("flush_interval", 0.05)
        writer = LogWriter(tmp_path / "log.duckdb", tmp_path / "spill", **kwargs).start()
        made.append(writer)
        return writer

    yield factory
    for writer in made:
        writer.close(timeout=5)


def count_rows(writer: LogWriter) -> int:
    row = writer.read(lambda cur: cur.execute("SELECT count(*) FROM requests").fetchone())
    assert row is not None
    return int(row[0])
