"""Scoring a student version through the running vLLM, exactly as the proxy serves it.

Each eval request is built by the proxy's own `student_body` (the version's model name, its
pruned system prompt stripped, the closed-set `structured_outputs` choice, logprobs on) and
scored by the proxy's own scorer, so the agreement measured here and the confidences used for
calibration are those of real serving, not of an in-process Hugging Face generation.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.errors import UpstreamError
from proxy.loop.artifacts import EvalRow
from proxy.loop.calibration import Pair, agrees
from proxy.serving.records import first_text
from proxy.serving.student_call import student_body
from proxy.serving.student_state import StudentVersion
from proxy.upstream.students import StudentEndpoint, StudentPool
from trainer.confidence import score_response
from trainer.feedback import accuracy, teacher_gold_accuracy

PROBE = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}


class EvaluationError(RuntimeError):
    """The version could not be evaluated (student down, adapter not answering)."""


@dataclass(frozen=True)
class EvalItem:
    id: str
    text: str | None
    confidence: float | None
    agree: bool
    error: str | None = None


@dataclass
class EvalResult:
    model: str
    version: str
    scorer: str
    items: list[EvalItem] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.items)

    @property
    def agreed(self) -> int:
        return sum(1 for i in self.items if i.agree)

    @property
    def errors(self) -> int:
        return sum(1 for i in self.items if i.error)

    @property
    def agreement(self) -> float:
        return self.agreed / self.n if self.n else 0.0

    def pairs(self) -> list[Pair]:
        return [
            Pair(i.confidence, i.agree)
            for i in self.items
            if i.error is None and i.confidence is not None
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "scorer": self.scorer,
            "n": self.n,
            "agreed": self.agreed,
            "agreement": round(self.agreement, 4),
            "errors": self.errors,
        }


@dataclass(frozen=True)
class EvalSettings:
    scorer: str
    top_logprobs: int
    timeout: float
    concurrency: int


def _ready(pool: StudentPool) -> list[StudentEndpoint]:
    endpoints = [e for e in pool.endpoints if e.ready]
    if not endpoints:
        raise EvaluationError(f"no student replica is ready: {pool.reason()}")
    return endpoints


async def check_answers(pool: StudentPool, version: StudentVersion, timeout: float) -> None:
    """One tiny request for `version` on every ready replica; raises if any fails."""
    for endpoint in _ready(pool):
        request = student_body(PROBE, version, top_logprobs=1, max_tokens=4)
        request.pop("structured_outputs", None)  # the probe is about the adapter, not labels
        try:
            result = await endpoint.upstream.chat(request, timeout)
        except UpstreamError as exc:
            raise EvaluationError(
                f"{version.name} does not answer on {endpoint.url}: {exc.message}"
            ) from exc
        if not result.payload.get("choices"):
            raise EvaluationError(f"{version.name} answered without choices on {endpoint.url}")


async def evaluate(
    pool: StudentPool, version: StudentVersion, rows: Sequence[EvalRow], cfg: EvalSettings
) -> EvalResult:
    """Agreement of `version` with the teacher on `rows`; raises when most requests fail."""
    endpoints = itertools.cycle(_ready(pool))
    gate = asyncio.Semaphore(cfg.concurrency)

    async def one(row: EvalRow) -> EvalItem:
        endpoint = next(endpoints)
        request = student_body(row.body, version, cfg.top_logprobs, max_tokens=None)
        async with gate:
            try:
                result = await endpoint.upstream.chat(request, cfg.timeout)
            except UpstreamError as exc:
                return EvalItem(row.id, None, None, False, exc.message)
        text = first_text(result.payload)
        confidence = score_response(cfg.scorer, result.payload)
        return EvalItem(row.id, text, confidence, text is not None and agrees(text, row.reference))

    items = list(await asyncio.gather(*(one(r) for r in rows)))
    result = EvalResult(version.name, version.version, cfg.scorer, items)
    if rows and result.errors * 2 > result.n:
        first = next(i.error for i in items if i.error)
        raise EvaluationError(
            f"{version.name} failed {result.errors} of {result.n} eval requests (first: {first})"
        )
    return result


def gold_accuracy(rows: Sequence[EvalRow], items: Sequence[EvalItem]) -> dict[str, Any] | None:
    """The version's and the teacher's accuracy on the gold rows among `rows` (users'
    corrections), with 95% Wilson intervals; None without gold rows. Next to the agreement
    with the teacher it shows how often the teacher itself is wrong."""
    gold = {r.id: r for r in rows if r.gold}
    if not gold:
        return None
    scored = {i.id: i for i in items if i.id in gold and i.error is None}
    return {
        "rows": len(gold),
        "student": accuracy(1.0 if i.agree else 0.0 for i in scored.values()).to_dict(),
        "teacher": teacher_gold_accuracy((r.teacher, r.reference) for r in gold.values()).to_dict(),
    }
