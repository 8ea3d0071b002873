"""The student pool: one or more vLLM replicas, balanced by fewest requests in flight,
each behind its own circuit breaker. Replicas come from `DISTILL_STUDENT_URL` or
from the embedded vLLM supervisor once it is ready."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from proxy.errors import UpstreamError
from proxy.upstream.breaker import CircuitBreaker
from proxy.upstream.client import Upstream


@dataclass
class StudentEndpoint:
    upstream: Upstream
    breaker: CircuitBreaker
    ready: bool = False
    inflight: int = 0
    reason: str = "not probed yet"
    models: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.upstream.base_url


class StudentPool:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        breaker_factory: Callable[[], CircuitBreaker],
        probe_timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._breaker_factory = breaker_factory
        self._probe_timeout = probe_timeout
        self._endpoints: list[StudentEndpoint] = []
        self.not_ready_reason = "no student configured"

    @property
    def endpoints(self) -> list[StudentEndpoint]:
        return list(self._endpoints)

    def set_urls(self, urls: list[str], *, ready: bool = False, reason: str = "") -> None:
        """Replaces the replica list, keeping state of replicas that stay."""
        known = {e.url: e for e in self._endpoints}
        endpoints = []
        for url in urls:
            endpoint = known.get(url.rstrip("/")) or StudentEndpoint(
                Upstream("student", url, None, self._client), self._breaker_factory()
            )
            endpoint.ready = ready or endpoint.ready
            if ready:
                endpoint.reason = ""  # whatever kept it down (e.g. "loading") is over
            endpoints.append(endpoint)
        self._endpoints = endpoints
        if reason:
            self.not_ready_reason = reason

    def mark_down(self, reason: str) -> None:
        for endpoint in self._endpoints:
            endpoint.ready = False
            endpoint.reason = reason
            endpoint.models = []
        self.not_ready_reason = reason

    def available(self) -> bool:
        return any(e.ready and e.breaker.state != "open" for e in self._endpoints)

    @property
    def ready(self) -> bool:
        return any(e.ready for e in self._endpoints)

    def reason(self) -> str:
        if self.available():
            # Available yet not picked: every ready replica is half-open with its one trial
            # request in flight, or closed to new requests after recent failures.
            return "student replicas are recovering from failures (circuit breaker half-open)"
        if any(e.ready for e in self._endpoints):
            return "student circuit breaker open after repeated failures"
        details = [e.reason for e in self._endpoints if e.reason]
        return "; ".join(details) or self.not_ready_reason

    def pick(self, force: bool = False) -> StudentEndpoint | None:
        """The least busy ready replica its breaker lets through; with `force` (the client
        asked for the student by name) any ready replica, since the breaker only exists to
        keep automatic traffic off a failing student, and the call's outcome still feeds it."""
        candidates = [e for e in self._endpoints if e.ready]
        candidates.sort(key=lambda e: e.inflight)
        for endpoint in candidates:
            if force or endpoint.breaker.allow():
                return endpoint
        return None

    async def probe(self, *, readiness: bool = True) -> None:
        """Checks every replica's /models and records the models it serves.

        With `readiness` (external students) the answer also decides whether the replica is
        ready; without it (a supervised student, whose supervisor decides) only ready replicas
        are asked and only their model lists change.
        """
        for endpoint in self._endpoints:
            if not (readiness or endpoint.ready):
                continue
            try:
                payload = await endpoint.upstream.get_json("/models", self._probe_timeout)
            except UpstreamError as exc:
                if readiness:
                    endpoint.ready = False
                    endpoint.reason = f"{endpoint.url}: {exc.message}"
                continue
            endpoint.models = [str(m.get("id")) for m in payload.get("data") or []]
            if readiness:
                endpoint.ready = True
                endpoint.reason = ""

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "url": e.url,
                "ready": e.ready,
                "breaker": e.breaker.state,
                "inflight": e.inflight,
                "reason": e.reason,
                "models": e.models,
            }
            for e in self._endpoints
        ]
