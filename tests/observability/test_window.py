"""Time windows and chart buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.observability.window import bucket_for, parse_duration, parse_since

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("2w", 1209600),
        ("1.5h", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_since_accepts_durations_timestamps_and_all() -> None:
    assert parse_since("24h", now=NOW) == NOW - timedelta(hours=24)
    assert parse_since("2025-05-01T00:00:00") == datetime(2025, 5, 1, tzinfo=UTC)
    assert parse_since("all") is None and parse_since(None) is None
    with pytest.raises(ValueError, match="24h"):
        parse_since("yesterday")


def test_bucket_follows_the_data_in_the_window() -> None:
    day = NOW - timedelta(days=1)
    assert bucket_for(day, now=NOW) == 1800  # 24h / 60 points -> 30 min buckets
    # A day-wide window over the last 10 minutes of data: 10 s buckets, not 30 min.
    assert bucket_for(day, now=NOW, first=NOW - timedelta(minutes=10)) == 10
    # An old log that ended a week ago is bucketed over its own span, not up to now.
    first, last = NOW - timedelta(days=8), NOW - timedelta(days=7, hours=23)
    assert bucket_for(None, now=NOW, first=first, last=last) == 60
    assert bucket_for(None, now=NOW) == 60
    assert bucket_for(None, now=NOW, first=NOW - timedelta(days=365)) == 86400
