"""OpenAI chat-completion payloads (full response and SSE chunks) for the replay teacher."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Choice:
    """One generated answer: its tokens, their logprobs (None: not asked) and why it stopped."""

    tokens: list[str]
    logprobs: list[dict[str, Any]] | None
    finish_reason: str = "stop"

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(slots=True)
class Completion:
    """Everything needed to render one response, in either format."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    prompt_tokens: int
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.tokens) for c in self.choices)

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }


def _logprobs_obj(content: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return None if content is None else {"content": content, "refusal": None}


def full_response(c: Completion) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    return {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": "fp_replay",
        "service_tier": "default",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": ch.text, "refusal": None},
                "logprobs": _logprobs_obj(ch.logprobs),
                "finish_reason": ch.finish_reason,
            }
            for i, ch in enumerate(c.choices)
        ],
        "usage": c.usage(),
    }


def _chunk(c: Completion, choices: list[dict[str, Any]]) -> bytes:
    body: dict[str, Any] = {
        "id": c.id,
        "object": "chat.completion.chunk",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": "fp_replay",
        "choices": choices,
    }
    if c.include_usage:
        body["usage"] = None
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _delta(index: int, delta: dict[str, Any], logprobs: Any, finish: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def stream_chunks(c: Completion) -> Iterator[bytes]:
    """SSE frames: a role chunk, one chunk per token, a finish chunk per choice, usage, [DONE]."""
    for i, _ in enumerate(c.choices):
        yield _chunk(
            c, [_delta(i, {"role": "assistant", "content": "", "refusal": None}, None, None)]
        )
    for i, ch in enumerate(c.choices):
        for j, token in enumerate(ch.tokens):
            lp = None if ch.logprobs is None else {"content": [ch.logprobs[j]], "refusal": None}
            yield _chunk(c, [_delta(i, {"content": token}, lp, None)])
        yield _chunk(c, [_delta(i, {}, None, ch.finish_reason)])
    if c.include_usage:
        body = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": "fp_replay",
            "choices": [],
            "usage": c.usage(),
        }
        yield b"data: " + orjson.dumps(body) + b"\n\n"
    yield b"data: [DONE]\n\n"


def error_body(message: str, param: str | None, code: str | None, kind: str) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
