"""Asking the student: the request as vLLM gets it, and its scored answer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from proxy.errors import ProxyError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from proxy.serving.structured import answer_problem, structured_spec
from proxy.serving.student_state import StudentVersion
from proxy.upstream.students import StudentPool
from trainer.confidence import score_response

# Features a request may use that a small student cannot serve (checked per request).
FEATURE_CHECKS = {
    "tools": lambda body: bool(body.get("tools")) or bool(body.get("tool_choice")),
    "functions": lambda body: bool(body.get("functions")),
    "images": lambda body: _has_part(body, {"image_url", "input_image"}),
    "audio": lambda body: (
        _has_part(body, {"input_audio", "audio"})
        or bool(body.get("audio"))
        or "audio" in (body.get("modalities") or [])
    ),
}


def _has_part(body: dict[str, Any], kinds: set[str]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in kinds for p in content
        ):
            return True
    return False


def unsupported_feature(body: dict[str, Any], features: frozenset[str]) -> str | None:
    for name in features:
        check = FEATURE_CHECKS.get(name)
        if check is not None and check(body):
            return name
    return None


@dataclass
class StudentAnswer:
    payload: dict[str, Any]
    latency_ms: float
    score: float
    scorer: str
    truncated: bool = False
    """The proxy's max_tokens cap (not the client's own limit) cut the answer short."""
    invalid_output: str | None = None
    """Why the answer does not satisfy the request's `response_format` (None: it does)."""


@dataclass
class StudentFailure:
    reason: str
    """`student_timeout`, `student_error` or `student_down`."""
    error: ProxyError


def strip_prompt_prefix(messages: list[Any], prefix: str | None) -> list[Any]:
    """Drops the system message the adapter has learned (prompt pruning)."""
    if not prefix or not messages:
        return messages
    first = messages[0]
    if isinstance(first, dict) and first.get("role") == "system" and first.get("content") == prefix:
        return messages[1:]
    return messages


def student_body(
    body: dict[str, Any], version: StudentVersion, top_logprobs: int, max_tokens: int | None
) -> dict[str, Any]:
    out = dict(body)
    out["model"] = version.name
    out["stream"] = False
    out.pop("stream_options", None)
    out["logprobs"] = True
    out["top_logprobs"] = max(int(body.get("top_logprobs") or 0), top_logprobs)
    out["messages"] = strip_prompt_prefix(list(body.get("messages") or []), version.prompt_prefix)
    if max_tokens is not None and cap_applies(body, max_tokens):
        for key in ("max_tokens", "max_completion_tokens"):
            if out.get(key) is None or out[key] > max_tokens:
                out[key] = max_tokens
    spec = structured_spec(body)
    if spec is not None:
        # vLLM's own field; response_format beside it would be a second, competing constraint.
        out.pop("response_format", None)
        out["structured_outputs"] = spec.constraint()
    elif version.closed_set and not (body.get("response_format") or body.get("tools")):
        out["structured_outputs"] = {"choice": list(version.closed_set)}
    return out


def cap_applies(body: dict[str, Any], max_tokens: int | None) -> bool:
    """True when the cap is below what the client allowed (nothing, or a larger limit)."""
    if max_tokens is None:
        return False
    limits = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
    asked = [v for v in limits if isinstance(v, int) and not isinstance(v, bool)]
    return not asked or min(asked) > max_tokens


def cut_short(payload: dict[str, Any]) -> bool:
    """Some choice stopped at the token limit (finish_reason `length`)."""
    return any(
        isinstance(c, dict) and c.get("finish_reason") == "length"
        for c in payload.get("choices") or []
    )


def scorer_for(version: StudentVersion, configured: str) -> str:
    if version.scorer:
        return version.scorer
    return configured


async def ask_student(
    pool: StudentPool,
    body: dict[str, Any],
    version: StudentVersion,
    *,
    scorer: str,
    timeout: float,
    top_logprobs: int,
    max_tokens: int | None,
    force: bool = False,
    background: bool = False,
) -> StudentAnswer | StudentFailure:
    """One student answer, scored. A `background` answer (cold start, nobody waits for it)
    that times out does not count against the breaker: it waited behind other answers, which
    says the student is busy, not failing; refused connections and errors still count."""
    endpoint = pool.pick(force)
    if endpoint is None:
        return StudentFailure("student_down", ServiceUnavailable(pool.reason()))
    request = student_body(body, version, top_logprobs, max_tokens)
    endpoint.inflight += 1
    try:
        result = await endpoint.upstream.chat(request, timeout)
    except UpstreamTimeout as exc:
        if not background:
            endpoint.breaker.failure()
        return StudentFailure("student_timeout", exc)
    except UpstreamError as exc:
        endpoint.breaker.failure()
        return StudentFailure("student_error", exc)
    finally:
        endpoint.inflight -= 1
    endpoint.breaker.success()
    value = score_response(scorer, result.payload)
    truncated = cap_applies(body, max_tokens) and cut_short(result.payload)
    spec = structured_spec(body)
    invalid = answer_problem(result.payload, spec) if spec is not None else None
    return StudentAnswer(result.payload, result.latency_ms, value, scorer, truncated, invalid)


def client_view(
    payload: dict[str, Any], body: dict[str, Any], requested_model: str
) -> dict[str, Any]:
    """The student's answer as the client sees it: its model name, its logprobs only."""
    out = dict(payload)
    out["model"] = requested_model
    wanted = bool(body.get("logprobs"))
    k = int(body.get("top_logprobs") or 0)
    choices = []
    for choice in payload.get("choices") or []:
        choice = dict(choice)
        if not wanted:
            choice["logprobs"] = None
        elif choice.get("logprobs"):
            content = [
                {**t, "top_logprobs": (t.get("top_logprobs") or [])[:k]}
                for t in choice["logprobs"].get("content") or []
            ]
            choice["logprobs"] = {**choice["logprobs"], "content": content}
        choices.append(choice)
    out["choices"] = choices
    return out


def format_confidence(value: float | None) -> str | None:
    if value is None:
        return None
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.4f}"
