"""One request of the soak/chaos traffic and what came of it.

Plain httpx (not the SDK): the driver must see the raw stream (error events,
``[DONE]``), hang up mid-stream on purpose, and never retry by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

KINDS = ("plain", "stream", "disconnect")


@dataclass
class Outcome:
    request_id: str
    kind: str  # plain | stream | disconnect
    route: str | None  # x-distill-route of the answer
    started: float  # time.monotonic()
    finished: float
    status: int | None  # None: no HTTP answer (connection refused/reset, timeout)
    complete: bool  # a whole answer: content, a finish_reason, [DONE] and no error event
    error: str | None  # kind of failure, None when complete (or a deliberate hang-up)

    @property
    def latency_ms(self) -> float:
        return (self.finished - self.started) * 1000

    @property
    def acknowledged(self) -> bool:
        """The server answered 200 with an id: its log row must exist."""
        return self.status == 200 and self.kind != "disconnect" and self.complete


def body_for(kind: str, prompt: str, max_tokens: int = 32) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    if kind != "plain":
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def stream_complete(raw: bytes) -> tuple[bool, str | None]:
    """Whether an SSE body is a whole answer; else why not."""
    events = [e.strip() for e in raw.split(b"\n\n") if e.strip()]
    if not events or events[-1] != b"data: [DONE]":
        return False, "stream_truncated"
    finished, text = False, ""
    for event in events[:-1]:
        payload = orjson.loads(event.removeprefix(b"data: "))
        if "error" in payload:
            return False, "stream_error_event"
        for choice in payload.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
            finished = finished or bool(choice.get("finish_reason"))
    if not finished or not text:
        return False, "stream_incomplete"
    return True, None


def _plain_complete(response: httpx.Response) -> tuple[bool, str | None]:
    if response.status_code != 200:
        return False, f"http_{response.status_code}"
    payload = response.json()
    choices = payload.get("choices") or []
    if not choices or not (choices[0].get("message") or {}).get("content"):
        return False, "empty_200"
    return True, None


async def send(
    client: httpx.AsyncClient,
    url: str,
    request_id: str,
    kind: str,
    prompt: str,
    headers: dict[str, str] | None = None,
) -> Outcome:
    """Sends one chat request to ``url`` (the proxy's /v1/chat/completions)."""
    started = time.monotonic()
    status: int | None = None
    route: str | None = None
    complete, error = False, None
    all_headers = {"x-request-id": request_id, **(headers or {})}
    try:
        async with client.stream(
            "POST", url, content=orjson.dumps(body_for(kind, prompt)), headers=all_headers
        ) as response:
            status, route = response.status_code, response.headers.get("x-distill-route")
            if kind == "disconnect" and status == 200:
                async for _ in response.aiter_raw():
                    break  # hang up after the first piece
                complete, error = False, None
            elif kind == "stream" and status == 200:
                complete, error = stream_complete(await response.aread())
            else:
                await response.aread()
                complete, error = _plain_complete(response)
    except httpx.TimeoutException:
        error = "timeout"
    except httpx.HTTPError as exc:
        error = f"connection:{type(exc).__name__}"
    return Outcome(request_id, kind, route, started, time.monotonic(), status, complete, error)
