"""Time windows: ``--since 24h`` / ``?since=7d`` and the chart bucket that fits them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Bucket sizes a chart may use, smallest first.
_BUCKETS = (1, 2, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
_TARGET_BUCKETS = 60


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 24h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """A duration back from now, an ISO timestamp (UTC if naive), or None for ``all``."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a duration or timestamp: {text!r} (use e.g. 24h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def bucket_for(
    since: datetime | None,
    now: datetime | None = None,
    first: datetime | None = None,
    last: datetime | None = None,
) -> int:
    """Bucket seconds giving about 60 points over the data actually in the window: from
    the later of `since` and the first row to the last row (else now). A 7-day window
    over one hour of data still gets minute buckets; an old log is not squeezed."""
    end = _aware(last) if last is not None else (now or datetime.now(UTC))
    starts = [_aware(t) for t in (since, first) if t is not None]
    if not starts:
        return 60
    start = max(starts)
    span = max((end - start).total_seconds(), 1.0)
    for bucket in _BUCKETS:
        if span / bucket <= _TARGET_BUCKETS:
            return bucket
    return _BUCKETS[-1]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
