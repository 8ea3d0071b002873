"""The traffic driver: sends tasks' queries with the official `openai` SDK, concurrently.

Each request goes out with its task's prompt and options and is recorded with what a
user of the proxy can observe: the served answer (scored by its task), the route and
confidence headers, latency (and time to first token when streamed), token usage and
errors. A mix of streaming and non-streaming calls is decided per query by a seeded
hash, so reruns send the same mix.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

from bench.harness.examples import Example
from bench.harness.hashing import unit_hash
from bench.harness.task import Task
from trainer.confidence import SCORERS, score_response

# A stream can break after the headers, below the SDK's own exception mapping.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (openai.APIConnectionError, OSError)
try:
    import httpx2

    _TRANSPORT_ERRORS += (httpx2.HTTPError,)
except ImportError:  # an openai SDK built on plain httpx
    import httpx

    _TRANSPORT_ERRORS += (httpx.HTTPError,)


@dataclass(slots=True)
class RequestRecord:
    """One request as the client saw it."""

    phase: str
    round: int
    index: int
    gold: str
    stream: bool
    status: int
    answer: str | None = None
    predicted: str | None = None
    correct: bool = False
    route: str | None = None
    reason: str | None = None
    confidence: float | None = None
    degraded: str | None = None
    student_version: str | None = None
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    scores: dict[str, float] | None = None
    """Every confidence scorer on the answer's logprobs, when the client asked for them."""
    request_id: str | None = None
    feedback: str | None = None
    """``sent`` when the dataset label went to POST /v1/feedback, else why it failed."""
    task: str | None = None
    task_seen: str | None = None
    """The proxy's name for the request's task (``x-distill-task`` on the response)."""
    metrics: dict[str, float] | None = None
    """The task's per-request numbers (slot matches, schema validity), when it has any."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class DriverConfig:
    """How the driver talks to its target."""

    base_url: str
    api_key: str = "bench-client"
    model: str | None = None  # None: each task's own model name
    concurrency: int = 8
    stream_fraction: float = 0.3
    max_tokens: int | None = None  # None: each task's own limit
    timeout: float = 180.0
    seed: int = 0
    feedback_rate: float = 0.0  # share of teacher answers corrected via /v1/feedback
    feedback_phases: tuple[str, ...] = ("learning",)
    # Send each request's task name (x-distill-task); by default the proxy must find it.
    name_tasks: bool = False


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Driver:
    """Sends queries to one OpenAI-compatible base URL and records the outcome."""

    def __init__(self, cfg: DriverConfig, tasks: Task | Sequence[Task]) -> None:
        self.cfg = cfg
        self.tasks: list[Task] = [tasks] if not isinstance(tasks, Sequence) else list(tasks)
        if not self.tasks:
            raise ValueError("a driver needs at least one task")
        self._by_name = {t.name: t for t in self.tasks}
        # The SDK's default pool (1000 connections) never queues our workers.
        self.client = AsyncOpenAI(
            base_url=cfg.base_url, api_key=cfg.api_key, max_retries=0, timeout=cfg.timeout
        )

    async def aclose(self) -> None:
        await self.client.close()

    def task_of(self, example: Example) -> Task:
        """The example's task (mixed traffic names it; a one-task driver has no choice)."""
        if len(self.tasks) == 1 and not example.task:
            return self.tasks[0]
        try:
            return self._by_name[example.task]
        except KeyError:
            raise ValueError(f"no task {example.task!r} in this driver") from None

    def request(
        self,
        example: Example,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The SDK arguments of one chat completion for `example` (what goes on the wire)."""
        task = self.task_of(example)
        if self.cfg.name_tasks:
            headers = {"x-distill-task": task.name, **(headers or {})}
        return {
            "model": self.cfg.model or task.model,
            "messages": task.messages(example),
            "temperature": 0,
            "max_tokens": self.cfg.max_tokens or task.max_tokens,
            **task.request_options(),
            "extra_headers": headers or None,
            "extra_body": extra_body or None,
        }

    def is_stream(self, index: int) -> bool:
        return unit_hash(self.cfg.seed, "stream", index) < self.cfg.stream_fraction

    async def run(
        self,
        items: Sequence[tuple[int, Example]],
        phase: str,
        round_no: int,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
        stop: Callable[[list[RequestRecord]], bool] | None = None,
        force_stream: bool | None = None,
    ) -> list[RequestRecord]:
        """Sends `items` with bounded concurrency; stops dispatching once `stop(records)`."""
        records: list[RequestRecord] = []
        queue = list(reversed(items))

        async def worker() -> None:
            while queue and not (stop is not None and stop(records)):
                index, example = queue.pop()
                stream = self.is_stream(index) if force_stream is None else force_stream
                rec = await self.one(index, example, stream, phase, round_no, headers, extra_body)
                records.append(rec)

        await asyncio.gather(*(worker() for _ in range(max(1, self.cfg.concurrency))))
        return records

    async def one(
        self,
        index: int,
        example: Example,
        stream: bool,
        phase: str,
        round_no: int,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> RequestRecord:
        """One chat completion; never raises for HTTP-level failures (they are recorded)."""
        task = self.task_of(example)
        rec = RequestRecord(
            phase, round_no, index, example.answer, stream, status=0, task=task.name
        )
        kwargs = self.request(example, headers, extra_body)
        start = time.perf_counter()
        try:
            if stream:
                await self._streamed(rec, kwargs, start)
            else:
                await self._plain(rec, kwargs)
        except openai.APIStatusError as exc:
            rec.status, rec.error = exc.status_code, str(exc)[:300]
            self._headers(rec, exc.response.headers)
        except _TRANSPORT_ERRORS as exc:
            rec.error = f"{type(exc).__name__}: {exc}"[:300]
        rec.latency_ms = (time.perf_counter() - start) * 1000
        scored = task.score(rec.answer, example)
        rec.predicted, rec.correct, rec.metrics = scored.predicted, scored.correct, scored.metrics
        if self.wants_feedback(rec):
            await self._feedback(rec)
        return rec

    def wants_feedback(self, rec: RequestRecord) -> bool:
        """A seeded share of the teacher's answers, as users of an app would correct them."""
        return (
            rec.route == "teacher"
            and rec.request_id is not None
            and rec.phase in self.cfg.feedback_phases
            and unit_hash(self.cfg.seed, "feedback", rec.index) < self.cfg.feedback_rate
        )

    async def _feedback(self, rec: RequestRecord) -> None:
        # The dataset label is the correction even when the teacher was right: a user
        # confirming the answer, and the proxy's measure of the teacher's accuracy.
        body = {"request_id": rec.request_id, "rating": None, "correction": rec.gold}
        try:
            await self.client.post("/feedback", cast_to=object, body=body)
            rec.feedback = "sent"
        except openai.APIStatusError as exc:
            rec.feedback = f"HTTP {exc.status_code}: {str(exc)[:200]}"
        except _TRANSPORT_ERRORS as exc:
            rec.feedback = f"{type(exc).__name__}: {exc}"[:200]

    def _headers(self, rec: RequestRecord, headers: Mapping[str, str]) -> None:
        rec.route = headers.get("x-distill-route")
        rec.reason = headers.get("x-distill-reason")
        rec.confidence = _float(headers.get("x-distill-confidence"))
        rec.degraded = headers.get("x-distill-degraded")
        rec.student_version = headers.get("x-distill-student-version")
        rec.request_id = headers.get("x-request-id")
        rec.task_seen = headers.get("x-distill-task")

    async def _plain(self, rec: RequestRecord, kwargs: dict[str, Any]) -> None:
        raw = await self.client.chat.completions.with_raw_response.create(**kwargs)
        rec.status = raw.status_code
        self._headers(rec, raw.headers)
        completion = raw.parse()
        rec.answer = completion.choices[0].message.content if completion.choices else None
        if completion.choices and completion.choices[0].logprobs is not None:
            payload = completion.model_dump()
            rec.scores = {name: score_response(name, payload) for name in SCORERS}
        if completion.usage is not None:
            rec.prompt_tokens = completion.usage.prompt_tokens
            rec.completion_tokens = completion.usage.completion_tokens

    async def _streamed(self, rec: RequestRecord, kwargs: dict[str, Any], start: float) -> None:
        raw = await self.client.chat.completions.with_raw_response.create(
            stream=True, stream_options={"include_usage": True}, **kwargs
        )
        rec.status = raw.status_code
        self._headers(rec, raw.headers)
        parts: list[str] = []
        async for chunk in raw.parse():
            if chunk.usage is not None:
                rec.prompt_tokens = chunk.usage.prompt_tokens
                rec.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.index == 0 and choice.delta.content:
                    if rec.ttfb_ms is None:
                        rec.ttfb_ms = (time.perf_counter() - start) * 1000
                    parts.append(choice.delta.content)
        rec.answer = "".join(parts)
