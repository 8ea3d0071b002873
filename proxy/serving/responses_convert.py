"""The Responses API in chat terms: a request the student can answer as chat messages,
and a chat answer as a Responses object or its event stream.

Only what a text-only student can honour is converted: text input (a string or
message items with text parts), instructions, a text/JSON output format, sampling
parameters. Built-in or function tools, images and files, and state the proxy does
not hold (``previous_response_id``, ``conversation``, ``background``, stored prompts)
make a request teacher-only; `chat_request` says which feature it was.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

_ROLES = ("system", "developer", "user", "assistant")
_TEXT_PARTS = ("input_text", "output_text", "text")
_STATEFUL = ("previous_response_id", "conversation", "prompt")
_PASSED_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_tokens",
    "top_logprobs": "top_logprobs",
    "store": "store",
    "metadata": "metadata",
    "user": "user",
    "seed": "seed",
}


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = []
    for part in content:
        if not (isinstance(part, dict) and part.get("type") in _TEXT_PARTS):
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        parts.append(text)
    return "".join(parts)


def _messages(body: dict[str, Any]) -> list[dict[str, str]] | str:
    """Chat messages of the request, or the name of what keeps it from the student."""
    messages: list[dict[str, str]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        return "input"
    for item in items:
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            return "input_items"
        text = _text(item.get("content"))
        if item.get("role") not in _ROLES or text is None:
            return "input_parts"
        messages.append({"role": str(item["role"]), "content": text})
    return messages


def _response_format(body: dict[str, Any]) -> dict[str, Any] | str | None:
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    return "text_format"


def chat_request(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the chat body for the cascade, None) or (None, the feature that needs the teacher)."""
    for key in _STATEFUL:
        if body.get(key):
            return None, key
    if body.get("tools"):
        return None, "tools"
    if body.get("background"):
        return None, "background"
    messages = _messages(body)
    if isinstance(messages, str):
        return None, messages
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    fmt = _response_format(body)
    if isinstance(fmt, str):
        return None, fmt
    if fmt is not None:
        chat["response_format"] = fmt
    for key, chat_key in _PASSED_PARAMS.items():
        if body.get(key) is not None:
            chat[chat_key] = body[key]
    return chat, None


def output_text(response: dict[str, Any]) -> str | None:
    """The text of a Responses object's message output (what the log calls the answer)."""
    texts = [
        part.get("text", "")
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    ]
    return "".join(texts) if texts else None


def finish_reason(response: dict[str, Any]) -> str | None:
    """The chat-style finish reason of a Responses object (the trainer filters on it)."""
    status = response.get("status")
    if status == "completed":
        return "stop"
    if status == "incomplete":
        return "length"
    return str(status) if status else None


def _usage(payload: dict[str, Any]) -> dict[str, Any] | None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _envelope(body: dict[str, Any], response_id: str, created: int) -> dict[str, Any]:
    fmt = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature", 1.0),
        "text": fmt,
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def to_response(chat: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The student's chat answer as the Responses object the client asked for."""
    response = _envelope(body, f"resp_{uuid.uuid4().hex}", int(time.time()))
    choice = (chat.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    incomplete = choice.get("finish_reason") == "length"
    response["status"] = "incomplete" if incomplete else "completed"
    if incomplete:
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    response["output"] = [
        {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "status": response["status"],
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
    ]
    response["usage"] = _usage(chat)
    return response


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)] if text else []


def response_events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Responses event stream of a finished response, as OpenAI sends it."""
    start = {**response, "status": "in_progress", "output": [], "usage": None}
    item = response["output"][0]
    part = item["content"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    yield {"type": "response.created", "response": start}
    yield {"type": "response.in_progress", "response": start}
    yield {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {**item, "status": "in_progress", "content": []},
    }
    yield {"type": "response.content_part.added", **where, "part": {**part, "text": ""}}
    for piece in _pieces(part["text"]):
        yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
    yield {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []}
    yield {"type": "response.content_part.done", **where, "part": part}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    yield {"type": final, "response": response}


def encode_event(event: dict[str, Any], sequence: int) -> bytes:
    data = orjson.dumps({**event, "sequence_number": sequence})
    return b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n"
