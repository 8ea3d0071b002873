"""Limits that hold across replicas: the counters live in Redis or in PostgreSQL.

`SharedRateLimiter` keeps `RateLimiter`'s interface and messages, but counts in a
`CounterStore` every replica shares, so two replicas do not double a key's allowance:

- requests and tokens per minute: a sliding-window counter (this minute's count plus
  the previous minute's, weighted by how much of it is still inside the last 60 s). The
  amount is added first, atomically, and taken back if it went over, so concurrent
  admissions on several replicas can never all pass;
- spend per UTC day and month: counters booked when a request settles, seeded (only if
  absent) from the shared log's sums at startup.

The store is Redis when ``DISTILL_REDIS_URL`` is set (``INCRBYFLOAT`` with a TTL),
otherwise the PostgreSQL log's database (an UNLOGGED table of counters: state that may
be lost with a crash, never worth a WAL write). Store calls block, so the admission
runs in a thread (`blocking`) and settling in a background worker.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from proxy.errors import RateLimited
from proxy.limits.limiter import RateLimiter
from proxy.limits.policy import LimitPolicy, Limits, actual_tokens, estimate_tokens
from proxy.limits.spend import month_start, next_day, next_month

log = logging.getLogger(__name__)

MINUTE = 60
_TICKET_TTL = 600.0
_STORE_RETRY_SECONDS = 5.0
_DAY_TTL = 2 * 86_400
_MONTH_TTL = 33 * 86_400


class CounterStore(Protocol):
    errors: tuple[type[BaseException], ...]  # the store is unreachable or failing

    def add(self, key: str, amount: float, ttl: int) -> float: ...
    def get(self, keys: list[str]) -> list[float]: ...
    def seed(self, key: str, amount: float, ttl: int) -> None: ...


class RedisCounters:
    """Counters as Redis floats with a TTL."""

    def __init__(self, client: Any) -> None:
        import redis

        self._redis = client
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    @classmethod
    def from_url(cls, url: str) -> RedisCounters:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    def add(self, key: str, amount: float, ttl: int) -> float:
        pipe = self._redis.pipeline()
        pipe.incrbyfloat(key, amount)
        pipe.expire(key, ttl)
        total, _ = pipe.execute()
        return float(total)

    def get(self, keys: list[str]) -> list[float]:
        return [float(v) if v is not None else 0.0 for v in self._redis.mget(keys)]

    def seed(self, key: str, amount: float, ttl: int) -> None:
        self._redis.set(key, amount, ex=ttl, nx=True)


_PG_TABLE = """
CREATE UNLOGGED TABLE IF NOT EXISTS distill_limit_counters (
    key TEXT PRIMARY KEY,
    amount DOUBLE PRECISION NOT NULL,
    expires_at TIMESTAMP NOT NULL
)
"""


class PostgresCounters:
    """Counters as rows of an UNLOGGED table in the log's database (one upsert each)."""

    def __init__(self, url: str, pool_size: int = 4) -> None:
        import psycopg
        import psycopg_pool

        self.errors: tuple[type[BaseException], ...] = (
            psycopg.Error,
            psycopg_pool.PoolTimeout,
            OSError,
        )
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=True,
            timeout=2,  # an admission must not wait long for a lost database
        )
        self._calls = 0
        self._table = False
        try:
            with self._pool.connection() as conn:
                self._create_table(conn)
        except self.errors as exc:  # down at start: the replica serves, limits fail open
            log.warning("shared limits: database unreachable at start, retried later: %s", exc)

    def _create_table(self, conn: Any) -> None:
        from proxy.logstore.postgres import MIGRATION_LOCK

        conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
        try:
            conn.execute(_PG_TABLE)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
        self._table = True

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            if not self._table:
                self._create_table(conn)
            yield conn

    def add(self, key: str, amount: float, ttl: int) -> float:
        self._calls += 1
        with self._connection() as conn:
            if self._calls % 4096 == 0:  # keys carry their window: old ones only linger
                conn.execute("DELETE FROM distill_limit_counters WHERE expires_at < now()")
            row = conn.execute(
                "INSERT INTO distill_limit_counters (key, amount, expires_at) "
                "VALUES (%s, %s, now() + make_interval(secs => %s)) ON CONFLICT (key) DO UPDATE "
                "SET amount = distill_limit_counters.amount + EXCLUDED.amount RETURNING amount",
                [key, amount, ttl],
            ).fetchone()
        return float(row[0]) if row else amount

    def get(self, keys: list[str]) -> list[float]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT key, amount FROM distill_limit_counters WHERE key = ANY(%s)", [keys]
            ).fetchall()
        found = {str(k): float(v) for k, v in rows}
        return [found.get(k, 0.0) for k in keys]

    def seed(self, key: str, amount: float, ttl: int) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO distill_limit_counters (key, amount, expires_at) "
                "VALUES (%s, %s, now() + make_interval(secs => %s)) ON CONFLICT (key) DO NOTHING",
                [key, amount, ttl],
            )


def _retry(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class SharedRateLimiter(RateLimiter):
    """`RateLimiter` whose counts live in a `CounterStore` shared by every replica."""

    blocking = True  # admit() does I/O: call it in a thread

    def __init__(
        self,
        policy: LimitPolicy,
        store: CounterStore,
        clock: Callable[[], float] = time.time,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(policy, clock=clock, wall=wall)
        self._store = store
        self._shared_tickets: dict[str, tuple[str, int, int, float]] = {}
        self._settler = ThreadPoolExecutor(1, thread_name_prefix="distill-limits")
        self._last_error_log = float("-inf")
        self._skip_until = float("-inf")

    def _key(self, identity: str, kind: str, window: int | str) -> str:
        return f"distill:limit:{identity}:{kind}:{window}"

    def admit(self, identity: str, request_id: str, body: Mapping[str, Any]) -> None:
        limits = self.policy.for_identity(identity)
        if not limits.any or self._clock() < self._skip_until:
            return
        try:
            self._admit_shared(identity, request_id, body, limits)
        except self._store.errors as exc:
            # Fail open: an unreachable counter store must not take the proxy down with it,
            # nor make every request wait for its timeout: leave it alone for a while.
            now = self._clock()
            self._skip_until = now + _STORE_RETRY_SECONDS
            if now - self._last_error_log >= 30:
                self._last_error_log = now
                log.error("shared limits unavailable, admitting uncounted: %s", exc)

    def _admit_shared(
        self, identity: str, request_id: str, body: Mapping[str, Any], limits: Limits
    ) -> None:
        self._check_shared_spend(identity, limits)
        now = self._clock()
        window = int(now // MINUTE)
        need = estimate_tokens(body, self.policy.assumed_completion_tokens)
        if limits.tpm is not None and need > limits.tpm:
            raise self._reject(
                "tpm",
                f"Request too large: about {need} tokens (prompt characters / 4 + max_tokens) "
                f"but this key is limited to {limits.tpm} tokens per minute; lower max_tokens "
                "or shorten the prompt.",
                MINUTE,
                "rate_limit_exceeded",
            )
        if limits.rpm is not None:
            self._take(identity, "rpm", window, 1, limits.rpm, now, "requests")
        if limits.tpm is not None:
            try:
                self._take(identity, "tpm", window, need, limits.tpm, now, "tokens")
            except RateLimited:
                if limits.rpm is not None:  # refund the request counted above
                    self._store.add(self._key(identity, "rpm", window), -1, 2 * MINUTE)
                raise
        self._shared_tickets[request_id] = (identity, window, need, now)
        self.stats.admitted += 1
        self._admissions += 1
        if self._admissions % 1024 == 0:
            self._forget_stale(now)

    def _take(
        self,
        identity: str,
        kind: str,
        window: int,
        amount: float,
        limit: float,
        now: float,
        unit: str,
    ) -> None:
        key = self._key(identity, kind, window)
        current = self._store.add(key, amount, 2 * MINUTE)
        (previous,) = self._store.get([self._key(identity, kind, window - 1)])
        weight = 1.0 - (now - window * MINUTE) / MINUTE
        if current + previous * weight <= limit:
            return
        self._store.add(key, -amount, 2 * MINUTE)  # over: take it back
        wait = (window + 1) * MINUTE - now
        if limit == 0:
            message = f"This key may not send {unit} (limit 0 per minute)."
        else:
            message = (
                f"Rate limit reached: {int(limit)} {unit} per minute for this key "
                f"(counted across all replicas). Retry in {_retry(wait)}s."
            )
        raise self._reject(kind, message, wait, "rate_limit_exceeded")

    def _spend_keys(self, identity: str, wall: datetime) -> tuple[str, str]:
        day, month = wall.date().isoformat(), month_start(wall).date().isoformat()[:7]
        return self._key(identity, "usd_day", day), self._key(identity, "usd_month", month)

    def _check_shared_spend(self, identity: str, limits: Limits) -> None:
        if limits.usd_per_day is None and limits.usd_per_month is None:
            return
        wall = self._wall()
        day_usd, month_usd = self._store.get(list(self._spend_keys(identity, wall)))
        if limits.usd_per_month is not None and month_usd >= limits.usd_per_month:
            raise self._reject(
                "usd_per_month",
                f"Monthly budget of ${limits.usd_per_month:.2f} for this key is used up "
                f"(${month_usd:.4f} spent this UTC month).",
                (next_month(wall) - wall).total_seconds(),
                "insufficient_quota",
            )
        if limits.usd_per_day is not None and day_usd >= limits.usd_per_day:
            raise self._reject(
                "usd_per_day",
                f"Daily budget of ${limits.usd_per_day:.2f} for this key is used up "
                f"(${day_usd:.4f} spent this UTC day).",
                (next_day(wall) - wall).total_seconds(),
                "insufficient_quota",
            )

    def settle(self, record: Mapping[str, Any]) -> None:
        request_id = record.get("id")
        ticket = self._shared_tickets.pop(request_id, None) if isinstance(request_id, str) else None
        if ticket is None:
            return
        self._settler.submit(self._book, ticket, actual_tokens(record), record.get("cost_usd"))

    def _book(self, ticket: tuple[str, int, int, float], used: int | None, cost: Any) -> None:
        identity, window, need, _ = ticket
        limits = self.policy.for_identity(identity)
        try:
            if limits.tpm is not None and used is not None and used != need:
                self._store.add(self._key(identity, "tpm", window), used - need, 2 * MINUTE)
            if isinstance(cost, int | float) and cost > 0:
                day_key, month_key = self._spend_keys(identity, self._wall())
                self._store.add(day_key, float(cost), _DAY_TTL)
                self._store.add(month_key, float(cost), _MONTH_TTL)
        except self._store.errors as exc:
            log.warning("could not book usage on the shared limits: %s", exc)

    def seed_spend(self, totals: Iterable[tuple[str, float, float]]) -> None:
        wall = self._wall()
        try:
            for identity, day_usd, month_usd in totals:
                day_key, month_key = self._spend_keys(identity, wall)
                self._store.seed(day_key, float(day_usd or 0), _DAY_TTL)
                self._store.seed(month_key, float(month_usd or 0), _MONTH_TTL)
        except self._store.errors as exc:
            log.warning("could not seed the shared budgets from the log: %s", exc)

    def _forget_stale(self, now: float) -> None:
        stale = [r for r, t in self._shared_tickets.items() if now - t[3] > _TICKET_TTL]
        for request_id in stale:
            del self._shared_tickets[request_id]

    @property
    def tracked(self) -> tuple[int, int]:
        return 0, len(self._shared_tickets)


def limiter_from_settings(settings: Any) -> RateLimiter:
    """In-process limits for one process; shared ones with Redis or a PostgreSQL log."""
    limiter = RateLimiter.from_settings(settings)
    if not limiter.enabled:
        return limiter
    store: CounterStore
    if settings.redis_url:
        store = RedisCounters.from_url(settings.redis_url)
    elif settings.db_is_postgres:
        store = PostgresCounters(str(settings.db))
    else:
        return limiter
    return SharedRateLimiter(limiter.policy, store)
