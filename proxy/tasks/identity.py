"""Which task a chat or Responses request belongs to: named by the client, or derived.

**Named.** The ``x-distill-task`` header, else ``metadata.distill_task`` in the body (the
same places as the tag: ``x-distill-tag`` / ``metadata.distill_tag``). A name is a short
slug: 1 to 64 characters of ``a-z``, ``0-9``, ``.``, ``_``, ``-``, starting with a letter or
a digit; it is lower-cased and stripped first, so ``Intents`` is ``intents``. Anything else
(too long, spaces, ``/``, not a string) is refused with a 400 (``invalid_task_name``): a
typo must not silently become a new task.

**Derived** when the client names none: ``auto-<model>-<8 hex>``. ``<model>`` is the
requested model as a slug (at most 32 characters); the hex digits are the start of a
SHA-256 over

- the requested model (in full),
- the leading system prompt (the first messages with role ``system`` or ``developer``, or
  the Responses ``instructions``) with its variable parts masked (`proxy.tasks.masking`:
  numbers, dates, ids, e-mails, URLs, quoted values),
- the structured output asked for: the canonical form (sorted keys, no spaces) of the
  ``response_format`` JSON schema (or the Responses ``text.format``), ``json_object``, or
  nothing,
- whether tools (or functions) are offered.

The same template with other values in it is the same task; another schema, another
model or tools switched on is another task. The name is stable across restarts,
replicas and proxy versions (change this rule only with a migration of the names). The
user's ``[tasks.NAME]`` overrides (`proxy.tasks.config`) are applied afterwards.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson

from proxy.errors import InvalidRequest
from proxy.tasks.masking import mask

TASK_HEADER = "x-distill-task"
METADATA_KEY = "distill_task"
DERIVED_PREFIX = "auto-"
UNKNOWN = "unknown"
"""The task of a refused request whose body was never read (no name, nothing to derive)."""
INVALID_NAME = "invalid_task_name"
MAX_NAME = 64
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_MODEL_SLUG = 32
_NOT_SLUG = re.compile(r"[^a-z0-9.]+")
_SYSTEM_ROLES = ("system", "developer")


def is_task_name(value: object) -> bool:
    """A valid name as it stands (config keys and `match` entries are not normalised)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _normalised(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    return name if is_task_name(name) else None


def client_task(header: str | None, body: dict[str, Any]) -> str | None:
    """The task the client named (header first, then metadata), or None; a bad name is a 400."""
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    raw: object = header
    where = TASK_HEADER
    if header is None or not header.strip():
        raw, where = (metadata or {}).get(METADATA_KEY), f"metadata.{METADATA_KEY}"
    if raw is None or raw == "":  # empty, like an empty tag: not named
        return None
    name = _normalised(raw)
    if name is None:
        shown = raw[:80] if isinstance(raw, str) else type(raw).__name__
        raise InvalidRequest(
            f"{where} must be a task name: 1-{MAX_NAME} characters of a-z, 0-9, '.', '_', '-', "
            f"starting with a letter or digit (got {shown!r})",
            param=where,
            code=INVALID_NAME,
        )
    return name


def lenient_client_task(header: str | None, body: dict[str, Any] | None) -> str | None:
    """The client's name if it is a valid one, else None (never raises: refused rows)."""
    try:
        return client_task(header, body or {})
    except InvalidRequest:
        return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def system_prompt(body: dict[str, Any]) -> str:
    """The request's leading system prompt as sent (chat messages or Responses fields)."""
    parts: list[str] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        parts.append(instructions)
    messages = body.get("messages")
    if not isinstance(messages, list):
        items = body.get("input")
        messages = items if isinstance(items, list) else []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in _SYSTEM_ROLES:
            break
        parts.append(_text(message.get("content")))
    return "\n".join(parts)


def _output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        spec = fmt.get("json_schema")
        if fmt.get("type") == "json_schema" and isinstance(spec, dict):
            return {"type": "json_schema", "schema": spec.get("schema")}
        return {"type": fmt.get("type")}
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        return {"type": fmt.get("type"), "schema": fmt.get("schema")}
    return None


def schema_digest(body: dict[str, Any]) -> str:
    """The structured output asked for, canonical: ``json_schema:<sha256>``, ``json_object``,
    another type's name, or "" for text."""
    fmt = _output_format(body)
    if fmt is None or fmt.get("type") == "text":
        return ""
    if fmt.get("type") != "json_schema":
        return str(fmt.get("type"))
    canonical = orjson.dumps(fmt.get("schema"), option=orjson.OPT_SORT_KEYS, default=str)
    return "json_schema:" + hashlib.sha256(canonical).hexdigest()


def _model_slug(model: object) -> str:
    slug = _NOT_SLUG.sub("-", str(model or "").lower()).strip("-.")
    return slug[:_MODEL_SLUG].rstrip("-.") or "model"


def derive_task(
    body: dict[str, Any], masker: Callable[[str], str] = mask, prompt: str | None = None
) -> str:
    """``auto-<model>-<8 hex>`` (the rule in the module docstring); `masker` is `mask`, or a
    cached form of it; `prompt` is `system_prompt(body)` where the caller has it already."""
    model = body.get("model") if isinstance(body.get("model"), str) else ""
    tools = bool(body.get("tools") or body.get("functions"))
    if prompt is None:
        prompt = system_prompt(body)
    key = "\x1f".join((str(model), masker(prompt), schema_digest(body), "tools" if tools else ""))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{DERIVED_PREFIX}{_model_slug(model)}-{digest}"
