"""Cost accounting for one logged request: what it cost, and what teacher-only would have.

Actual spend (``cost_usd``) is every call that was paid for:

- the student's call whenever it produced an answer (served, rejected as not
  confident, or logged beside the teacher's answer while uncalibrated);
- the teacher's call whenever it returned anything: a served fallback, a
  shadow call (the student served, the teacher ran in the background), or a
  failed/broken stream (its usage if reported, else what was received).

The counterfactual (``counterfactual_cost_usd``) prices the same request as if the
teacher had answered alone: teacher prices applied to the request's prompt tokens
and to the length of the answer actually served. When nothing was served the
teacher-only world would have paid for the same failed teacher call, so it equals
the teacher part of the spend.

Usage is taken from the upstreams' ``usage`` blocks (the proxy asks for it on
streams too). Where it is missing (a stream cut before its usage chunk) tokens are
estimated at 4 characters per token so a paid call never counts as free. Student
token counts stand in for teacher token counts where the teacher was not called:
the tokenizers differ, so the counterfactual of a student-served answer is an
estimate, and never below a characters/4 estimate of the whole request (a student that
learned its system prompt is billed without it; the teacher would not have been).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.observability.prices import PriceBook, StudentPricing

_CHARS_PER_TOKEN = 4.0
_TOKENS_PER_MESSAGE = 3  # role and separators, per OpenAI's chat token accounting


@dataclass(frozen=True)
class CostBreakdown:
    student_usd: float
    teacher_usd: float
    counterfactual_usd: float
    estimated: bool
    """True when some token count was estimated from text (usage was missing)."""

    @property
    def actual_usd(self) -> float:
        return self.student_usd + self.teacher_usd

    @property
    def savings_usd(self) -> float:
        return self.counterfactual_usd - self.actual_usd


def estimate_tokens(text: str | None) -> int:
    if not text:
        return 0
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return ""


def estimate_prompt_tokens(request: Any) -> int:
    """Rough prompt size of a chat request (dict or JSON text) when no usage was reported."""
    if isinstance(request, str | bytes):
        try:
            request = orjson.loads(request)
        except orjson.JSONDecodeError:
            return estimate_tokens(request if isinstance(request, str) else None)
    if not isinstance(request, Mapping):
        return 0
    messages = request.get("messages") or []
    total = 0
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, Mapping):
            total += estimate_tokens(_message_text(message.get("content"))) + _TOKENS_PER_MESSAGE
    return total


@dataclass
class _Tokens:
    prompt: int
    completion: int
    estimated: bool


def _side(record: Mapping[str, Any], side: str) -> _Tokens | None:
    """Tokens of one upstream call, or None when that upstream returned nothing."""
    prompt = record.get(f"{side}_prompt_tokens")
    completion = record.get(f"{side}_completion_tokens")
    text = record.get(f"{side}_text")
    answered = record.get(f"{side}_latency_ms") is not None or text is not None
    if prompt is None and completion is None and not answered:
        return None
    estimated = prompt is None or completion is None
    if prompt is None:
        prompt = estimate_prompt_tokens(record.get("request_json"))
    if completion is None:
        completion = estimate_tokens(text)
    return _Tokens(int(prompt), int(completion), estimated)


class CostModel:
    """Prices log rows with a teacher price book and the student's pricing."""

    def __init__(
        self, prices: PriceBook, student: StudentPricing, teacher_model: str | None = None
    ) -> None:
        self.prices = prices
        self.student = student
        self.teacher_model = teacher_model

    def _teacher_model(self, record: Mapping[str, Any]) -> str | None:
        model = record.get("teacher_model") or self.teacher_model or record.get("requested_model")
        return str(model) if model else None

    def price(self, record: Mapping[str, Any]) -> CostBreakdown:
        student = _side(record, "student")
        teacher = _side(record, "teacher")
        model = self._teacher_model(record)
        student_usd = 0.0
        if student is not None:
            student_usd = self.student.cost(student.prompt, student.completion)
        teacher_usd = 0.0
        if teacher is not None:
            teacher_usd = self.prices.cost(model, teacher.prompt, teacher.completion)
        route = record.get("route")
        served = teacher if route == "teacher" else student if route == "student" else None
        if served is None:
            counterfactual = teacher_usd
        else:
            # The prompt as the teacher counts it when it was called. Else the student's count,
            # but never below an estimate of the full request: a pruned system prompt is not
            # in the student's count, yet the teacher would have been billed for it.
            prompt = (
                teacher.prompt
                if teacher is not None
                else max(served.prompt, estimate_prompt_tokens(record.get("request_json")))
            )
            counterfactual = self.prices.cost(model, prompt, served.completion)
        estimated = any(t is not None and t.estimated for t in (student, teacher))
        return CostBreakdown(student_usd, teacher_usd, counterfactual, estimated)

    def apply(self, record: dict[str, Any]) -> CostBreakdown:
        """Prices the row and writes ``cost_usd`` / ``counterfactual_cost_usd`` into it."""
        costs = self.price(record)
        record["cost_usd"] = costs.actual_usd
        record["counterfactual_cost_usd"] = costs.counterfactual_usd
        return costs
