"""The teacher: retries with backoff on 429/5xx/connection errors within a deadline,
honours Retry-After, relays client errors (4xx) unchanged, and asks for top-k
logprobs (soft labels) when configured, dropping them if the teacher refuses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from proxy.errors import UpstreamError, UpstreamStatus, UpstreamTimeout
from proxy.upstream.client import CallResult, RetryableStatus, Upstream, sleep_backoff

T = TypeVar("T")


class TeacherClient:
    def __init__(
        self,
        upstream: Upstream,
        *,
        model: str | None,
        timeout: float,
        deadline: float,
        retries: int,
        backoff: float,
        top_logprobs: int,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.model = model
        self.timeout = timeout
        self.deadline = deadline
        self.retries = retries
        self.backoff = backoff
        self.top_logprobs = top_logprobs
        self._on_retry = on_retry
        # Teachers that answered 400 to logprobs; remembered so we stop asking.
        self._no_logprobs: set[str] = set()

    def model_for(self, requested: str) -> str:
        return self.model or requested

    def prepare(self, body: dict[str, Any], *, stream: bool) -> tuple[dict[str, Any], bool]:
        """The teacher's request body, and whether the proxy added logprobs itself."""
        out = dict(body)
        out["model"] = self.model_for(str(body.get("model", "")))
        added = False
        wants = bool(body.get("logprobs"))
        if not wants and self.top_logprobs > 0 and out["model"] not in self._no_logprobs:
            out["logprobs"] = True
            out["top_logprobs"] = self.top_logprobs
            added = True
        if stream:
            options = dict(out.get("stream_options") or {})
            options["include_usage"] = True
            out["stream_options"] = options
        return out, added

    async def with_retries(self, attempt_fn: Callable[[float], Awaitable[T]]) -> tuple[T, int]:
        started = time.monotonic()
        attempt = 0
        while True:
            remaining = self.deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise UpstreamTimeout(f"teacher deadline of {self.deadline:.0f}s exceeded")
            try:
                return await attempt_fn(min(self.timeout, remaining)), attempt
            except (RetryableStatus, UpstreamTimeout) as exc:
                last: UpstreamError = exc
                retry_after = exc.retry_after if isinstance(exc, RetryableStatus) else None
            except UpstreamStatus:
                raise
            except UpstreamError as exc:
                last, retry_after = exc, None
            remaining = self.deadline - (time.monotonic() - started)
            if attempt >= self.retries or not await sleep_backoff(
                attempt, self.backoff, retry_after, remaining
            ):
                raise last
            attempt += 1
            if self._on_retry:
                self._on_retry(type(last).__name__)

    def _refused_logprobs(self, exc: UpstreamStatus, body: dict[str, Any], added: bool) -> bool:
        if not added or exc.status_code != 400 or "logprob" not in exc.message.lower():
            return False
        self._no_logprobs.add(str(body["model"]))
        body.pop("logprobs", None)
        body.pop("top_logprobs", None)
        return True

    async def chat(self, body: dict[str, Any], added_logprobs: bool) -> CallResult:
        try:
            result, retries = await self.with_retries(lambda t: self.upstream.chat(body, t))
        except UpstreamStatus as exc:
            if not self._refused_logprobs(exc, body, added_logprobs):
                raise
            result, retries = await self.with_retries(lambda t: self.upstream.chat(body, t))
        result.retries = retries
        return result

    @asynccontextmanager
    async def stream(
        self, body: dict[str, Any], added_logprobs: bool
    ) -> AsyncIterator[tuple[httpx.Response, int]]:
        """Opens a stream, retrying until the first byte; after that there is no retry."""
        holder: dict[str, Any] = {}

        async def attempt(timeout: float) -> httpx.Response:
            ctx = self.upstream.open_stream(body, timeout)
            response = await ctx.__aenter__()
            holder["ctx"] = ctx
            return response

        try:
            response, retries = await self.with_retries(attempt)
        except UpstreamStatus as exc:
            if not self._refused_logprobs(exc, body, added_logprobs):
                raise
            response, retries = await self.with_retries(attempt)
        try:
            yield response, retries
        finally:
            await holder["ctx"].__aexit__(None, None, None)
