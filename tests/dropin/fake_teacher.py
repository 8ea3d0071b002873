"""A fake OpenAI teacher for the whole API surface a drop-in app calls: chat, the
Responses API (plain and streamed), embeddings (float and base64), legacy
completions, moderations, file uploads (multipart) and binary audio. It records what
reached it, byte for byte, so tests can check the proxy relayed bodies unchanged."""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.fakes import FakeUpstream, _Stream, json_response

SPEECH = bytes(range(256)) * 64  # "audio": every byte value, 16 KB
DIMENSIONS = 8


def _sse(events: list[dict[str, Any]], named: bool) -> bytes:
    out = b""
    for event in events:
        head = b"event: " + event["type"].encode() + b"\n" if named else b""
        out += head + b"data: " + orjson.dumps(event) + b"\n\n"
    return out if named else out + b"data: [DONE]\n\n"


def _vector(i: int) -> list[float]:
    return [round(0.125 * (i + 1) * (d + 1), 3) for d in range(DIMENSIONS)]


def responses_object(text: str, model: str, *, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_teacher_1",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [
            {
                "id": "msg_teacher_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18},
    }


@dataclass
class FakeTeacher(FakeUpstream):
    """Chat like `FakeUpstream`; every other endpoint answered here."""

    responses_text: str = "The teacher answers via Responses."
    raw: list[httpx.Request] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)
    unreachable: bool = False
    """Every endpoint but chat fails to connect."""
    responses_failures: list[int] = field(default_factory=list)
    """Statuses /responses answers first (one per call), e.g. ``[503]``."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        if path in ("/chat/completions", "/models"):
            return await super().handle(request)
        if self.unreachable:
            raise httpx.ConnectError("connection refused")
        content = await request.aread()
        self.raw.append(request)
        self.bodies[path] = content
        self.headers_seen.append(dict(request.headers))
        handler = _HANDLERS.get(path.split("/")[1] if "/" in path else path)
        if handler is None:
            return json_response(404, {"error": {"message": f"no {path}", "code": "nope"}})
        return handler(self, request, content)

    def embeddings(self, request: httpx.Request, content: bytes) -> httpx.Response:
        body = orjson.loads(content)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, _ in enumerate(inputs):
            vector: Any = _vector(i)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{DIMENSIONS}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}
        payload = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        return json_response(200, payload, **{"x-request-id": "teacher-req-1"})

    def completions(self, request: httpx.Request, content: bytes) -> httpx.Response:
        body = orjson.loads(content)
        usage = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
        base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            choice = {"index": 0, "text": " world again", "finish_reason": "stop", "logprobs": None}
            return json_response(200, {**base, "choices": [choice], "usage": usage})
        events = [
            {**base, "choices": [{"index": 0, "text": t, "finish_reason": None}]}
            for t in (" world", " again")
        ]
        events.append({**base, "choices": [], "usage": usage})
        return _stream(_sse(events, named=False), self.stream_delay)

    def moderations(self, request: httpx.Request, content: bytes) -> httpx.Response:
        body = orjson.loads(content)
        result = {"flagged": False, "categories": {"violence": False}}
        result["category_scores"] = {"violence": 0.001}
        return json_response(
            200, {"id": "modr-1", "model": body.get("model") or "omni", "results": [result]}
        )

    def files(self, request: httpx.Request, content: bytes) -> httpx.Response:
        return json_response(
            200,
            {
                "id": "file-abc123",
                "object": "file",
                "bytes": len(content),
                "created_at": 1,
                "filename": "train.jsonl",
                "purpose": "fine-tune",
                "status": "processed",
            },
        )

    def audio(self, request: httpx.Request, content: bytes) -> httpx.Response:
        return httpx.Response(200, content=SPEECH, headers={"content-type": "audio/mpeg"})

    def responses(self, request: httpx.Request, content: bytes) -> httpx.Response:
        body = orjson.loads(content) if content else {}
        self.requests.append(body)
        if self.responses_failures:
            status = self.responses_failures.pop(0)
            return json_response(status, {"error": {"message": "overloaded", "code": None}})
        final = responses_object(self.responses_text, str(body.get("model")))
        if not body.get("stream"):
            return json_response(200, final)
        item = final["output"][0]
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        events = [
            {"type": "response.created", "response": {**final, "status": "in_progress"}},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.output_text.delta", **where, "delta": self.responses_text},
            {"type": "response.completed", "response": final},
        ]
        for i, event in enumerate(events):
            event["sequence_number"] = i
        return _stream(_sse(events, named=True), self.stream_delay)


def _stream(content: bytes, delay: float = 0.0) -> httpx.Response:
    """One SSE event per part, `delay` seconds apart (to see that the proxy does not buffer)."""
    parts = [part + b"\n\n" for part in content.split(b"\n\n") if part]
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Stream(parts, delay, None)
    )


_HANDLERS = {
    "embeddings": FakeTeacher.embeddings,
    "completions": FakeTeacher.completions,
    "moderations": FakeTeacher.moderations,
    "files": FakeTeacher.files,
    "audio": FakeTeacher.audio,
    "responses": FakeTeacher.responses,
}
