"""Stable hashes stored in the request log: prompts (for grouping/splits) and client keys.

`prompt_hash` ignores formatting noise (runs of whitespace, string vs list-of-parts
content) but keeps case, roles and order, so two requests hash equal exactly when
a model would see the same conversation text. Non-text parts (images, audio) and
tool calls are included canonically, so conversations that differ only there do
not collide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

_EXTRA_FIELDS = ("name", "tool_calls", "tool_call_id", "function_call")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _content_text(content: Any) -> tuple[str, list[Any]]:
    """Returns (collapsed text, canonical non-text parts) of a message's content."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return _collapse(content), []
    if isinstance(content, Iterable) and not isinstance(content, bytes | Mapping):
        texts: list[str] = []
        others: list[Any] = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
            else:
                others.append(part)
        return _collapse(" ".join(texts)), others
    return _collapse(str(content)), []


def _normalise(message: Mapping[str, Any]) -> list[Any]:
    text, others = _content_text(message.get("content"))
    extras = {k: message[k] for k in _EXTRA_FIELDS if message.get(k) is not None}
    entry: list[Any] = [str(message.get("role", "")), text]
    if others or extras:
        entry.extend([others, extras])
    return entry


def prompt_hash(messages: Iterable[Mapping[str, Any]]) -> str:
    """sha256 (hex) of the normalised conversation."""
    canonical = [_normalise(m) for m in messages]
    blob = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()


def key_hash(key: str) -> str:
    """sha256 (hex) of a client key: what the log stores instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
