"""Server-sent events in OpenAI's chat streaming format.

- `encode` / `DONE`: bytes on the wire (``data: {...}\\n\\n`` ... ``data: [DONE]\\n\\n``).
- `SSEParser`: incremental parser for an upstream byte stream (handles split
  lines, CRLF, comments and multi-line data fields).
- `completion_to_chunks`: turns a complete (student) answer into the chunk
  sequence a streaming client expects.
- `ChunkAccumulator`: rebuilds a complete answer from relayed (teacher) chunks,
  so the log row holds the full text, logprobs and usage of a streamed answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class SSEParser:
    """Feed bytes, get the ``data`` payloads of completed events (as str)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        events: list[str] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                return events
            line = self._buffer[:newline].rstrip(b"\r")
            self._buffer = self._buffer[newline + 1 :]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if field == b"data":
                self._data.append(value.removeprefix(b" ").decode("utf-8", errors="replace"))

    def close(self) -> list[str]:
        """Flushes an event that was not terminated by a blank line."""
        events = self.feed(b"\n\n") if self._buffer else []
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events


def _chunk(base: dict[str, Any], choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {**base, "object": "chat.completion.chunk", "choices": choices}


def completion_to_chunks(
    response: dict[str, Any], *, include_usage: bool, keep_logprobs: bool
) -> Iterator[dict[str, Any]]:
    """Yields the chunks of a finished completion: role, content, finish, then usage."""
    base: dict[str, Any] = {k: response[k] for k in ("id", "created", "model") if k in response}
    if "system_fingerprint" in response:
        base["system_fingerprint"] = response["system_fingerprint"]
    usage_base: dict[str, Any] = {**base, "usage": None} if include_usage else base
    for choice in response.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        yield _chunk(
            usage_base,
            [
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        )
        delta: dict[str, Any] = {}
        for key in ("content", "tool_calls", "refusal", "reasoning_content"):
            if message.get(key):
                delta[key] = message[key]
        if delta:
            logprobs = choice.get("logprobs") if keep_logprobs else None
            yield _chunk(
                usage_base,
                [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}],
            )
        yield _chunk(
            usage_base,
            [
                {
                    "index": index,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            ],
        )
    if include_usage:
        yield {
            **base,
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": response.get("usage"),
        }


class ChunkAccumulator:
    """Reassembles streamed chunks into a chat.completion object."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.saw_finish = False

    def add(self, chunk: dict[str, Any]) -> None:
        """Merges one chunk; parts of the wrong type (a broken upstream) are skipped."""
        for key in ("id", "created", "model", "system_fingerprint"):
            if key in chunk and key not in self.meta:
                self.meta[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
            self.usage = chunk["usage"]
        for delta_choice in _list(chunk.get("choices")):
            if isinstance(delta_choice, dict):
                self._add_choice(delta_choice)

    def _add_choice(self, delta_choice: dict[str, Any]) -> None:
        index = _index(delta_choice.get("index", 0), len(self.choices))
        if index is None:
            return
        choice = self.choices.setdefault(
            index,
            {
                "index": index,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "logprobs": None,
            },
        )
        delta = _dict(delta_choice.get("delta"))
        message = choice["message"]
        message["content"] += _str(delta.get("content"))
        for call in _list(delta.get("tool_calls")):
            if isinstance(call, dict):
                self._add_tool_call(message.setdefault("tool_calls", []), call)
        content = _list(_dict(delta_choice.get("logprobs")).get("content"))
        if content:
            choice["logprobs"] = choice["logprobs"] or {"content": []}
            choice["logprobs"]["content"].extend(content)
        if delta_choice.get("finish_reason"):
            choice["finish_reason"] = delta_choice["finish_reason"]
            self.saw_finish = True

    @staticmethod
    def _add_tool_call(calls: list[dict[str, Any]], delta: dict[str, Any]) -> None:
        index = _index(delta.get("index", len(calls)), len(calls))
        if index is None:
            return
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        function = _dict(delta.get("function"))
        call["function"]["name"] += _str(function.get("name"))
        call["function"]["arguments"] += _str(function.get("arguments"))

    def result(self) -> dict[str, Any]:
        return {
            **self.meta,
            "object": "chat.completion",
            "choices": [self.choices[i] for i in sorted(self.choices)],
            "usage": self.usage,
        }


# Indexes of choices/tool calls arrive from the upstream: a huge one must not make the
# accumulator allocate (or sort mixed types); beyond this they are ignored.
_MAX_INDEX = 1024


def _index(value: Any, seen: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= max(_MAX_INDEX, seen) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
