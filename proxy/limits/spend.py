"""Spend per client per UTC day and UTC month, from the `cost_usd` of finished requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_day(now: datetime) -> datetime:
    return day_start(now) + timedelta(days=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


@dataclass
class _Totals:
    day: datetime
    month: datetime
    day_usd: float = 0.0
    month_usd: float = 0.0


class SpendLedger:
    """Running totals per identity; a new UTC day/month starts from zero."""

    def __init__(self) -> None:
        self._totals: dict[str, _Totals] = {}

    def _current(self, identity: str, now: datetime) -> _Totals:
        day, month = day_start(now), month_start(now)
        totals = self._totals.get(identity)
        if totals is None:
            totals = self._totals[identity] = _Totals(day, month)
        if totals.month != month:
            totals.month, totals.month_usd = month, 0.0
        if totals.day != day:
            totals.day, totals.day_usd = day, 0.0
        return totals

    def add(self, identity: str, usd: float, now: datetime) -> None:
        totals = self._current(identity, now)
        totals.day_usd += usd
        totals.month_usd += usd

    def seed(self, identity: str, day_usd: float, month_usd: float, now: datetime) -> None:
        """Sets the totals read back from the log at startup."""
        totals = self._current(identity, now)
        totals.day_usd, totals.month_usd = day_usd, month_usd

    def spent(self, identity: str, now: datetime) -> tuple[float, float]:
        if identity not in self._totals:
            return 0.0, 0.0
        totals = self._current(identity, now)
        return totals.day_usd, totals.month_usd
