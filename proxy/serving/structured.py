"""Structured outputs: a `response_format` request is served by the student only when
its decoding was constrained to the schema and the answer parses and validates.

vLLM constrains decoding with ``structured_outputs`` (``{"json": schema}``); a
``json_object`` request gets a JSON-object grammar. Constrained decoding can still
end early (``max_tokens``) or meet a schema feature the grammar backend ignores, so
the answer is checked again here before it is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

INVALID = "invalid_structured_output"
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class StructuredSpec:
    kind: str
    """``json_schema`` or ``json_object``."""
    schema: dict[str, Any]

    def constraint(self) -> dict[str, Any]:
        """The student's ``structured_outputs`` field."""
        return {"json": self.schema}


def structured_spec(body: dict[str, Any]) -> StructuredSpec | None:
    """The structured output a chat request asks for, or None (text)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return StructuredSpec("json_object", _ANY_OBJECT)
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return StructuredSpec("json_schema", schema if isinstance(schema, dict) else _ANY_OBJECT)
    return None


def _check(text: str, spec: StructuredSpec) -> str | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    try:
        jsonschema.validate(value, spec.schema)
    except jsonschema.ValidationError as exc:
        return f"does not match the schema: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the request's schema is invalid: {exc.message}"
    return None


def answer_problem(payload: dict[str, Any], spec: StructuredSpec) -> str | None:
    """Why the student's answer cannot be served for `spec`, or None when every choice
    finished and holds JSON that validates."""
    choices = payload.get("choices") or []
    if not choices:
        return "no choices"
    for choice in choices:
        if choice.get("finish_reason") not in (None, "stop"):
            return f"finished with {choice.get('finish_reason')!r}"
        content = (choice.get("message") or {}).get("content")
        if not isinstance(content, str):
            return "no text content"
        problem = _check(content, spec)
        if problem is not None:
            return problem
    return None
