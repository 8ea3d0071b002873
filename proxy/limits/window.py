"""A sliding time window of weighted events (requests, tokens), in memory."""

from __future__ import annotations

import collections


class Entry:
    """One event; its amount may be corrected later (estimated tokens -> actual)."""

    __slots__ = ("amount", "at", "live")

    def __init__(self, at: float, amount: float) -> None:
        self.at = at
        self.amount = amount
        self.live = True


class SlidingWindow:
    """Events of the last `span` seconds and their running total.

    Exact (no buckets): one deque entry per event, pruned lazily. With per-minute
    limits the deque never holds more entries than the limit allows per span."""

    def __init__(self, span: float = 60.0) -> None:
        self.span = span
        self._entries: collections.deque[Entry] = collections.deque()
        self._total = 0.0

    def prune(self, now: float) -> None:
        horizon = now - self.span
        entries = self._entries
        while entries and entries[0].at <= horizon:
            old = entries.popleft()
            old.live = False
            self._total -= old.amount
        if not entries:
            self._total = 0.0  # no float drift once empty

    def total(self, now: float) -> float:
        self.prune(now)
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, now: float, amount: float) -> Entry:
        entry = Entry(now, amount)
        self._entries.append(entry)
        self._total += amount
        return entry

    def correct(self, entry: Entry, amount: float) -> None:
        """Replaces an event's amount; events already out of the window are ignored."""
        if entry.live:
            self._total += amount - entry.amount
        entry.amount = amount

    def wait_for_room(self, now: float, limit: float, need: float) -> float | None:
        """Seconds until `need` more fits under `limit`; 0 if it fits now; None if never."""
        if need > limit:
            return None
        self.prune(now)
        excess = self._total + need - limit
        if excess <= 0:
            return 0.0
        for entry in self._entries:
            excess -= entry.amount
            if excess <= 0:
                return max(0.0, entry.at + self.span - now)
        return self.span
