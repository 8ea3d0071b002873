"""`RateLimiter`: per-client requests/minute, tokens/minute and spend budgets.

Admission (`admit`) happens after authentication and body validation, before any
upstream is asked. Tokens are estimated then (prompt characters / 4 + max_tokens) and
corrected by the upstream's reported usage once the request finishes (`settle`, called
with the request's log row, after the cost observer has set ``cost_usd``).

Everything is in memory and single-process: state lives on the event loop (both
`admit` and `settle` run there) and is lost on restart, except spend, which is read
back from the log at startup (`seed_spend`). Spend is checked on admission, so
requests already in flight when a budget runs out may overshoot it a little.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from proxy.errors import RateLimited
from proxy.limits.policy import LimitPolicy, Limits, actual_tokens, estimate_tokens
from proxy.limits.spend import SpendLedger, next_day, next_month
from proxy.limits.window import Entry, SlidingWindow

if TYPE_CHECKING:
    from proxy.settings import Settings

WINDOW_SECONDS = 60.0
_SWEEP_EVERY = 1024  # admissions between sweeps of idle clients and unsettled tickets
_TICKET_TTL = 600.0  # an unsettled ticket older than this is forgotten


@dataclass
class _Client:
    requests: SlidingWindow = field(default_factory=lambda: SlidingWindow(WINDOW_SECONDS))
    tokens: SlidingWindow = field(default_factory=lambda: SlidingWindow(WINDOW_SECONDS))


@dataclass
class _Ticket:
    identity: str
    tokens: Entry | None
    at: float


@dataclass
class LimiterStats:
    admitted: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class RateLimiter:
    def __init__(
        self,
        policy: LimitPolicy,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._wall = wall
        self._clients: dict[str, _Client] = {}
        self._tickets: dict[str, collections.deque[_Ticket]] = {}
        self._spend = SpendLedger()
        self._admissions = 0
        self.stats = LimiterStats()

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        defaults = Limits(
            rpm=settings.limit_rpm,
            tpm=settings.limit_tpm,
            usd_per_day=settings.limit_usd_per_day,
            usd_per_month=settings.limit_usd_per_month,
        )
        return cls(
            LimitPolicy(defaults, settings.key_limits, settings.limit_assumed_completion_tokens)
        )

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    # --- admission -------------------------------------------------------------------
    def admit(self, identity: str, request_id: str, body: Mapping[str, Any]) -> None:
        """Counts the request against its client's limits or raises `RateLimited`."""
        limits = self.policy.for_identity(identity)
        if not limits.any:
            return
        now = self._clock()
        self._check_spend(identity, limits)
        client = self._clients.setdefault(identity, _Client())
        need = estimate_tokens(body, self.policy.assumed_completion_tokens)
        self._check_requests(client, limits, now)
        self._check_tokens(client, limits, now, need)
        client.requests.add(now, 1)
        entry = client.tokens.add(now, need) if limits.tpm is not None else None
        self._tickets.setdefault(request_id, collections.deque()).append(
            _Ticket(identity, entry, now)
        )
        self.stats.admitted += 1
        self._admissions += 1
        if self._admissions % _SWEEP_EVERY == 0:
            self.sweep(now)

    def _reject(self, kind: str, message: str, wait: float, code: str) -> RateLimited:
        self.stats.rejected[kind] += 1
        return RateLimited(message, code=code, headers={"retry-after": _retry_after(wait)})

    def _check_requests(self, client: _Client, limits: Limits, now: float) -> None:
        if limits.rpm is None:
            return
        wait = client.requests.wait_for_room(now, limits.rpm, 1)
        if wait is None:
            raise self._reject(
                "rpm",
                "This key may not send requests (limit 0 per minute).",
                60,
                "rate_limit_exceeded",
            )
        if wait > 0:
            raise self._reject(
                "rpm",
                f"Rate limit reached: {limits.rpm} requests per minute for this key. "
                f"Retry in {_retry_after(wait)}s.",
                wait,
                "rate_limit_exceeded",
            )

    def _check_tokens(self, client: _Client, limits: Limits, now: float, need: int) -> None:
        if limits.tpm is None:
            return
        wait = client.tokens.wait_for_room(now, limits.tpm, need)
        if wait is None:
            raise self._reject(
                "tpm",
                f"Request too large: about {need} tokens (prompt characters / 4 + max_tokens) "
                f"but this key is limited to {limits.tpm} tokens per minute; lower max_tokens "
                "or shorten the prompt.",
                WINDOW_SECONDS,
                "rate_limit_exceeded",
            )
        if wait > 0:
            raise self._reject(
                "tpm",
                f"Rate limit reached: {limits.tpm} tokens per minute for this key "
                f"(this request: about {need}). Retry in {_retry_after(wait)}s.",
                wait,
                "rate_limit_exceeded",
            )

    def _check_spend(self, identity: str, limits: Limits) -> None:
        if limits.usd_per_day is None and limits.usd_per_month is None:
            return
        wall = self._wall()
        day_usd, month_usd = self._spend.spent(identity, wall)
        if limits.usd_per_month is not None and month_usd >= limits.usd_per_month:
            wait = (next_month(wall) - wall).total_seconds()
            raise self._reject(
                "usd_per_month",
                f"Monthly budget of ${limits.usd_per_month:.2f} for this key is used up "
                f"(${month_usd:.4f} spent this UTC month).",
                wait,
                "insufficient_quota",
            )
        if limits.usd_per_day is not None and day_usd >= limits.usd_per_day:
            wait = (next_day(wall) - wall).total_seconds()
            raise self._reject(
                "usd_per_day",
                f"Daily budget of ${limits.usd_per_day:.2f} for this key is used up "
                f"(${day_usd:.4f} spent this UTC day).",
                wait,
                "insufficient_quota",
            )

    # --- after the answer ------------------------------------------------------------
    def settle(self, record: Mapping[str, Any]) -> None:
        """Corrects the token estimate with the real usage and books the spend."""
        request_id = record.get("id")
        queue = self._tickets.get(request_id) if isinstance(request_id, str) else None
        if not queue:
            return
        ticket = queue.popleft()
        if not queue:
            del self._tickets[request_id]  # type: ignore[arg-type]
        used = actual_tokens(record)
        client = self._clients.get(ticket.identity)
        if ticket.tokens is not None and used is not None and client is not None:
            client.tokens.correct(ticket.tokens, used)
        cost = record.get("cost_usd")
        if isinstance(cost, int | float) and cost > 0:
            self._spend.add(ticket.identity, float(cost), self._wall())

    def seed_spend(self, totals: Iterable[tuple[str, float, float]]) -> None:
        """(identity, usd this UTC day, usd this UTC month) read from the log at startup."""
        wall = self._wall()
        for identity, day_usd, month_usd in totals:
            self._spend.seed(identity, float(day_usd or 0), float(month_usd or 0), wall)

    def sweep(self, now: float | None = None) -> None:
        """Forgets idle clients and tickets that were never settled (bounded memory)."""
        now = self._clock() if now is None else now
        for identity in [i for i, c in self._clients.items() if _idle(c, now)]:
            del self._clients[identity]
        stale = [rid for rid, q in self._tickets.items() if now - q[-1].at > _TICKET_TTL]
        for request_id in stale:
            del self._tickets[request_id]

    @property
    def tracked(self) -> tuple[int, int]:
        """(clients, unsettled tickets) held in memory."""
        return len(self._clients), sum(len(q) for q in self._tickets.values())


def _idle(client: _Client, now: float) -> bool:
    client.requests.prune(now)
    client.tokens.prune(now)
    return not client.requests and not client.tokens
