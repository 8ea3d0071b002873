"""`Reconnect`: when the writer may try to (re)open its log database again.

A replica whose PostgreSQL is down (at start, or lost later) keeps serving: its rows go
to the spill journal, and the writer retries the connection with a bounded exponential
backoff (1 s, doubling, at most 30 s) instead of on every flush, so an unreachable host
(a connect timeout each try) does not stall the writer thread. The first success replays
the journal. `describe()` is what /readyz says about the database while it is away.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 30.0


@dataclass
class Reconnect:
    """Backoff state of one connection: `due()` says whether to try now."""

    location: str
    first: float = FIRST_DELAY
    maximum: float = MAX_DELAY
    clock: Callable[[], float] = time.monotonic
    attempts: int = 0  # failed tries since the last success
    last_error: str | None = None
    _delay: float = 0.0
    _next_try: float = field(default=float("-inf"))

    @property
    def down(self) -> bool:
        return self.attempts > 0

    def due(self) -> bool:
        return self.clock() >= self._next_try

    def retry_in(self) -> float:
        return max(0.0, self._next_try - self.clock())

    def failed(self, exc: BaseException) -> None:
        """One try failed: wait twice as long before the next (bounded)."""
        self.attempts += 1
        self.last_error = f"{type(exc).__name__}: {exc}".strip()[:300]
        self._delay = min(self.maximum, self._delay * 2 if self._delay else self.first)
        self._next_try = self.clock() + self._delay
        log.warning(
            "log database %s unreachable (try %d: %s); serving, rows go to the spill "
            "journal; retrying in %.0f s",
            self.location,
            self.attempts,
            self.last_error,
            self._delay,
        )

    def succeeded(self) -> None:
        if self.attempts:
            log.warning(
                "log database %s reachable again after %d failed tries; replaying the "
                "spill journal",
                self.location,
                self.attempts,
            )
        self.attempts = 0
        self.last_error = None
        self._delay = 0.0
        self._next_try = float("-inf")

    def describe(self) -> str:
        """For /readyz: ``reachable``, or how long until the next try."""
        if not self.down:
            return "reachable"
        wait = max(1, math.ceil(self.retry_in()))
        return f"unreachable, retrying in {wait} s; rows go to the spill journal"
