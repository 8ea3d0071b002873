"""HTTP clients for the OpenAI-compatible upstreams (student vLLM and teacher).

The transport is the I/O seam: tests pass an ``httpx.MockTransport`` or an
``ASGITransport`` instead of patching. Upstream keys live only here and are
sent only to their own upstream.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from proxy.errors import UpstreamError, UpstreamStatus, UpstreamTimeout

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass
class CallResult:
    """A finished non-streaming upstream call."""

    payload: dict[str, Any]
    latency_ms: float
    retries: int = 0
    attempts_failed: int = 0
    notes: list[str] = field(default_factory=list)


def make_http_client(
    timeout: float, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 512
) -> httpx.AsyncClient:
    """Pooled client; without a transport override, requests go out through aiohttp."""
    if transport is None:
        from proxy.upstream.aiohttp_transport import AiohttpTransport

        transport = AiohttpTransport(max_connections)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport
    )


def _error_message(payload: dict[str, Any], fallback: str) -> str:
    error = payload.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return fallback


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def decode_json(content: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"upstream sent invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UpstreamError("upstream sent a JSON value that is not an object")
    return value


class Upstream:
    """One OpenAI-compatible endpoint: a base URL, an optional key, a pooled client."""

    def __init__(self, name: str, base_url: str, api_key: str | None, client: httpx.AsyncClient):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._client = client

    def _url(self, path: str) -> str:
        """`path` under the base URL; an absolute URL (vLLM's `/pooling`, beside `/v1`)
        as it is."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def post_json(self, path: str, body: dict[str, Any], timeout: float) -> httpx.Response:
        try:
            return await self._client.post(
                self._url(path), content=orjson.dumps(body), headers=self._headers, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{self.name} timed out after {timeout:.1f}s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.name} unreachable: {type(exc).__name__}") from exc

    async def get_json(self, path: str, timeout: float) -> dict[str, Any]:
        try:
            response = await self._client.get(
                self._url(path), headers=self._headers, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{self.name} timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.name} unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise UpstreamError(f"{self.name} answered {response.status_code} on {path}")
        return decode_json(response.content)

    async def chat(self, body: dict[str, Any], timeout: float) -> CallResult:
        """One non-streaming chat completion; raises on any non-200."""
        started = time.perf_counter()
        # httpx timeouts bound each read, not the whole call: a trickling upstream
        # would outlive them, so the call as a whole gets a deadline too.
        try:
            async with asyncio.timeout(timeout):
                response = await self.post_json("/chat/completions", body, timeout)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.name} timed out after {timeout:.1f}s") from exc
        latency = (time.perf_counter() - started) * 1000
        payload = decode_json(response.content) if response.content else {}
        if response.status_code != 200:
            raise status_error(self.name, response, payload)
        check_answer(self.name, payload)
        return CallResult(payload=payload, latency_ms=latency)

    @asynccontextmanager
    async def open_stream(
        self, body: dict[str, Any], timeout: float
    ) -> AsyncIterator[httpx.Response]:
        request = self._client.build_request(
            "POST",
            self._url("/chat/completions"),
            content=orjson.dumps(body),
            headers=self._headers,
            timeout=timeout,
        )
        response = await self._send(request, timeout)
        try:
            if response.status_code != 200:
                content = await response.aread()
                payload = decode_json(content) if content else {}
                raise status_error(self.name, response, payload)
            yield response
        finally:
            await response.aclose()

    async def _send(self, request: httpx.Request, timeout: float) -> httpx.Response:
        """Sends with the body unread; transport failures as the proxy's upstream errors."""
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{self.name} timed out after {timeout:.1f}s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.name} unreachable: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def open_raw(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        content: bytes,
        timeout: float,
    ) -> AsyncIterator[httpx.Response]:
        """Any request, any answer: the response (every status) with its body unread.
        The client's own headers are sent, except that this upstream's key replaces theirs."""
        sent = {**headers}
        if "authorization" in self._headers:
            sent["authorization"] = self._headers["authorization"]
        request = self._client.build_request(
            method,
            self._url(path),
            params=tuple(params),
            content=content,
            headers=sent,
            timeout=timeout,
        )
        response = await self._send(request, timeout)
        try:
            yield response
        finally:
            await response.aclose()


def _is_answer(choice: Any) -> bool:
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        return False
    message = choice["message"]
    return isinstance(message.get("content"), str) or any(
        message.get(k) for k in ("tool_calls", "function_call", "refusal")
    )


def check_answer(name: str, payload: dict[str, Any]) -> None:
    """A 200 without a usable choice is a failed call, never an answer to pass on."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not all(map(_is_answer, choices)):
        raise UpstreamError(f"{name} answered 200 without a usable completion")


class RetryableStatus(UpstreamError):
    """A 429/5xx answer that may succeed when retried."""

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.upstream_status = status
        self.retry_after = retry_after


def status_error(name: str, response: httpx.Response, payload: dict[str, Any]) -> UpstreamError:
    message = _error_message(payload, f"{name} answered HTTP {response.status_code}")
    if response.status_code in RETRYABLE_STATUS:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RetryableStatus(
            f"{name} answered {response.status_code}: {message}", response.status_code, retry_after
        )
    return UpstreamStatus(response.status_code, payload, f"{name}: {message}")


async def sleep_backoff(
    attempt: int, base: float, retry_after: float | None, remaining: float
) -> bool:
    """Sleeps before retry `attempt`; False when the deadline leaves no room for it."""
    delay = retry_after if retry_after is not None else base * (2**attempt)
    if delay >= remaining:
        return False
    await asyncio.sleep(delay)
    return True
