"""Chat completions: decide the route, ask the student, fall back to the teacher, log.

The route is always decided before the first byte goes to the client, so a
streamed answer is never half student, half teacher:

1. forced route (`x-distill-route`), unsupported features (tools, images, ...)
   and an unavailable student go straight to the teacher;
2. otherwise the student answers in full (non-streaming, with logprobs), the
   configured scorer rates it, and it is served when ``score >= threshold`` and
   the proxy's max_tokens cap did not cut it short;
3. else the teacher answers (retried within a deadline); if the teacher fails
   the student's answer is served, marked ``x-distill-degraded``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from proxy.errors import ProxyError, ServiceUnavailable, UpstreamError
from proxy.privacy.sink import scrubber_from_settings
from proxy.serving import records
from proxy.serving.observer import RequestObserver
from proxy.serving.pending import PendingRows
from proxy.serving.records import RequestContext
from proxy.serving.shadow import ShadowSampler
from proxy.serving.sse import DONE, completion_to_chunks, encode
from proxy.serving.structured import INVALID
from proxy.serving.student_call import (
    StudentAnswer,
    StudentFailure,
    ask_student,
    client_view,
    format_confidence,
    scorer_for,
    unsupported_feature,
)
from proxy.serving.student_state import ActiveStudents, StudentVersion
from proxy.serving.teacher_relay import relay_teacher_stream, teacher_client_view
from proxy.serving.vote_student import VoteStudent, ask_vote
from proxy.settings import Settings
from proxy.tasks.resolve import TASK_EXCLUDED, TASK_TOO_LITTLE_TRAFFIC, TaskResolver
from proxy.upstream.students import StudentPool
from proxy.upstream.teacher import TeacherClient

RecordSink = Callable[[dict[str, Any]], None]


@dataclass
class Decision:
    serve_student: bool
    reason: str
    answer: StudentAnswer | None = None
    failure: StudentFailure | None = None
    threshold: float | None = None
    version: StudentVersion | None = None
    pending_student: asyncio.Task[StudentAnswer | StudentFailure] | None = None


class ChatService:
    def __init__(
        self,
        settings: Settings,
        pool: StudentPool,
        teacher: TeacherClient | None,
        active: ActiveStudents,
        sink: RecordSink,
        observer: RequestObserver,
        shadow: ShadowSampler,
        pending: PendingRows,
        background_max: int,
        student_cap: int | None = None,
        vote: VoteStudent | None = None,
    ) -> None:
        self.settings = settings
        self.vote = vote
        """The vote students (closed-set tasks) and their encoder; None: generative only."""
        self.student_cap = student_cap
        """max_tokens cap of student calls (`Settings.student_token_cap`)."""
        self.background_max = background_max
        """Most background student answers in flight (`Settings.background_cap`)."""
        self.pending = pending
        """Rows waiting for background work before they are logged (feedback looks here)."""
        self.pool = pool
        self.teacher = teacher
        self.active = active
        self._sink = sink
        self._observer = observer
        self._shadow = shadow
        self.tasks = TaskResolver(settings.tasks)
        # Teacher error messages relayed mid-stream may echo a key; scrubbed like log rows.
        self._scrub = scrubber_from_settings(settings).scrub
        self._background: set[asyncio.Task[Any]] = set()
        self._pending_students = 0  # background student answers in flight

    def _student_done(self, _task: asyncio.Task[Any]) -> None:
        self._pending_students -= 1

    # --- entry point -----------------------------------------------------------------
    async def complete(self, ctx: RequestContext, body: dict[str, Any]) -> Response:
        stream = bool(body.get("stream"))
        record = records.base_record(ctx, body, stream)
        try:
            ctx.task = self.tasks.assign(ctx.task_header, body, record)
            decision = await self.decide(ctx, body, record)
            if decision.serve_student:
                return self._serve_student(ctx, body, decision, record)
            return await self._serve_teacher(ctx, body, decision, record)
        except ProxyError as exc:
            record.update(
                route=record.get("route") or "none", error=exc.message, error_code=exc.code
            )
            self.finish(record, ctx, exc.status_code)
            raise

    # --- routing ---------------------------------------------------------------------
    def _pre_route(
        self, ctx: RequestContext, body: dict[str, Any], version: StudentVersion
    ) -> str | None:
        """A reason to skip the student entirely, or None to ask it."""
        if ctx.forced_route == "teacher":
            return "forced"
        if ctx.task is not None and ctx.task.excluded:
            return TASK_EXCLUDED
        if ctx.forced_route == "student":
            return None
        feature = unsupported_feature(body, self.settings.unsupported)
        if feature:
            return f"unsupported:{feature}"
        pool = self.vote.pool if self.vote and version.kind == "vote" else self.pool
        if not pool.available():
            return "student_down" if pool.ready else "student_not_ready"
        return None

    def threshold_for(self, version: StudentVersion) -> float | None:
        if self.settings.calibration_mode:
            return version.threshold
        return self.settings.confidence_threshold

    def _ask(
        self,
        body: dict[str, Any],
        version: StudentVersion,
        force: bool = False,
        background: bool = False,
    ) -> Coroutine[Any, Any, Any]:
        if version.kind == "vote" and self.vote is not None:
            return ask_vote(self.vote, body, version, force=force)
        return ask_student(
            self.pool,
            body,
            version,
            scorer=scorer_for(version, self.settings.confidence_scorer),
            timeout=self.settings.student_timeout,
            top_logprobs=self.settings.student_top_logprobs,
            max_tokens=self.student_cap,
            force=force,
            background=background,
        )

    async def decide(
        self, ctx: RequestContext, body: dict[str, Any], record: dict[str, Any]
    ) -> Decision:
        task_name = ctx.task.name if ctx.task is not None else None
        version = self.active.for_task(task_name).current
        record.update(student_model=version.name, student_version=version.version)
        skip = self._pre_route(ctx, body, version)
        if skip is not None and (ctx.forced_route == "teacher" or self.teacher is not None):
            return Decision(False, skip, version=version)
        threshold = self.threshold_for(version)
        if threshold is None and ctx.forced_route == "auto" and self.teacher is not None:
            # Cold start: an uncalibrated student serves nothing, but its answer is
            # still logged beside the teacher's (the pair calibration needs), unless the
            # student is already that far behind: an unbounded backlog only delays the log.
            reason = self._uncalibrated_reason(task_name)
            if self._pending_students >= self.background_max:
                self._observer.on_upstream_error("student", "background_skipped")
                return Decision(False, reason, version=version)
            task = asyncio.ensure_future(self._ask(body, version, background=True))
            self._pending_students += 1
            task.add_done_callback(self._student_done)
            return Decision(False, reason, version=version, pending_student=task)
        result = await self._ask(body, version, force=ctx.forced_route == "student")
        return self._judge(ctx, result, threshold, version)

    def _uncalibrated_reason(self, task: str | None) -> str:
        if task is not None and self.active.too_little_traffic(task, self.settings.train_min_rows):
            return TASK_TOO_LITTLE_TRAFFIC
        return "uncalibrated"

    def _judge(
        self,
        ctx: RequestContext,
        result: StudentAnswer | StudentFailure,
        threshold: float | None,
        version: StudentVersion,
    ) -> Decision:
        if isinstance(result, StudentFailure):
            self._observer.on_upstream_error("student", result.reason)
            if ctx.forced_route == "student" or self.teacher is None:
                raise result.error
            return Decision(False, result.reason, failure=result, version=version)
        if ctx.forced_route == "student":
            return Decision(True, "forced", answer=result, threshold=threshold, version=version)
        if result.invalid_output is not None and self.teacher is not None:
            # Not the JSON the request's response_format asks for: never served as such.
            return Decision(False, INVALID, answer=result, threshold=threshold, version=version)
        if self.teacher is None:
            return Decision(True, "no_teacher", answer=result, threshold=threshold, version=version)
        if result.truncated:  # cut short by our cap: incomplete, however confident
            return Decision(
                False, "student_truncated", answer=result, threshold=threshold, version=version
            )
        confident = threshold is not None and result.score >= threshold
        reason = "confident" if confident else "low_confidence"
        return Decision(confident, reason, answer=result, threshold=threshold, version=version)

    # --- the student's answer --------------------------------------------------------
    def route_headers(
        self, ctx: RequestContext, route: str, reason: str, decision: Decision
    ) -> dict[str, str]:
        headers = {
            "x-request-id": ctx.request_id,
            "x-distill-route": route,
            "x-distill-reason": reason,
        }
        if ctx.task is not None:  # the task it was routed as: named, derived or merged
            headers["x-distill-task"] = ctx.task.name
        if decision.version is not None:
            headers["x-distill-student-version"] = decision.version.version
        if decision.answer is not None:
            confidence = format_confidence(decision.answer.score)
            if confidence is not None:
                headers["x-distill-confidence"] = confidence
        return headers

    def note_student(self, record: dict[str, Any], decision: Decision) -> None:
        answer = decision.answer
        if answer is None:
            return
        records.add_student(record, answer.payload, answer.latency_ms)
        record.update(scorer=answer.scorer, confidence=answer.score, threshold=decision.threshold)

    def _serve_student(
        self,
        ctx: RequestContext,
        body: dict[str, Any],
        decision: Decision,
        record: dict[str, Any],
        degraded: str | None = None,
    ) -> Response:
        assert decision.answer is not None
        self.note_student(record, decision)
        reason = decision.reason
        if degraded is None and reason == "no_teacher":
            confident = (
                decision.threshold is not None
                and decision.answer.score >= decision.threshold
                and not decision.answer.truncated
                and decision.answer.invalid_output is None
            )
            degraded = None if confident else "no-teacher"
        record.update(route="student", reason=reason, degraded=degraded)
        headers = self.route_headers(ctx, "student", reason, decision)
        if degraded:
            headers["x-distill-degraded"] = degraded
        payload = client_view(decision.answer.payload, body, str(body.get("model")))
        shadow = self.maybe_shadow(body, record, decision)
        if not body.get("stream"):
            self.finish(record, ctx, 200, extra=shadow)
            return Response(orjson.dumps(payload), media_type="application/json", headers=headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = completion_to_chunks(
            payload, include_usage=include_usage, keep_logprobs=bool(body.get("logprobs"))
        )

        async def gen() -> Any:
            status = 499
            try:
                for i, chunk in enumerate(chunks):
                    if i == 0:
                        record["ttfb_ms"] = (time.perf_counter() - ctx.started) * 1000
                    yield encode(chunk)
                status = 200
                self.finish(record, ctx, status, extra=shadow)  # logged before [DONE] goes out
                yield DONE
            finally:
                if status != 200:
                    record["error"] = "client disconnected mid-stream"
                    self.finish(record, ctx, status, extra=shadow)

        return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)

    def maybe_shadow(
        self, body: dict[str, Any], record: dict[str, Any], decision: Decision
    ) -> Awaitable[None] | None:
        kind = decision.version.kind if decision.version is not None else "lora"
        if self.teacher is None or not self._shadow.take(self.settings.shadow_rate_for(kind)):
            return None
        teacher = self.teacher

        async def shadow_call() -> None:
            request, added = teacher.prepare({**body, "stream": False}, stream=False)
            request.pop("stream_options", None)
            try:
                result = await teacher.chat(request, added)
            except UpstreamError as exc:
                record["error"] = f"shadow teacher call failed: {exc.message}"
                self._observer.on_upstream_error("teacher", type(exc).__name__)
                return
            records.add_teacher(record, result.payload, result.latency_ms, result.retries)
            record.update(shadow=True, teacher_model=request["model"])

        return shadow_call()

    # --- the teacher's answer --------------------------------------------------------
    async def _serve_teacher(
        self,
        ctx: RequestContext,
        body: dict[str, Any],
        decision: Decision,
        record: dict[str, Any],
    ) -> Response:
        if self.teacher is None:
            raise ServiceUnavailable(
                "the student is unavailable and no teacher is configured", code="no_upstream"
            )
        self.note_student(record, decision)
        if decision.failure is not None:
            record["error"] = f"student: {decision.failure.error.message}"
        record.update(route="teacher", reason=decision.reason)
        headers = self.route_headers(ctx, "teacher", decision.reason, decision)
        request, added = self.teacher.prepare(body, stream=bool(body.get("stream")))
        record["teacher_model"] = request["model"]
        extra = self.await_student(decision, record)
        try:
            if body.get("stream"):
                return await relay_teacher_stream(
                    self.teacher,
                    request,
                    added,
                    body,
                    ctx,
                    record,
                    headers,
                    finish=lambda status: self.finish(record, ctx, status, extra=extra),
                    scrub=self._scrub,
                )
            result = await self.teacher.chat(request, added)
        except UpstreamError as exc:
            self._observer.on_upstream_error("teacher", type(exc).__name__)
            return self._teacher_failed(ctx, body, decision, record, exc, extra)
        records.add_teacher(record, result.payload, result.latency_ms, result.retries)
        self.finish(record, ctx, 200, extra=extra)
        payload = teacher_client_view(result.payload, added)
        return Response(orjson.dumps(payload), media_type="application/json", headers=headers)

    def _teacher_failed(
        self,
        ctx: RequestContext,
        body: dict[str, Any],
        decision: Decision,
        record: dict[str, Any],
        exc: UpstreamError,
        extra: Awaitable[None] | None,
    ) -> Response:
        """Degrades to the student's answer when there is one; else the error goes out."""
        if extra is not None:
            self._spawn(extra)
        record["error"] = f"teacher: {exc.message}"
        if decision.answer is None or getattr(exc, "payload", None) is not None:
            raise exc
        self._observer.on_upstream_error("teacher", "degraded")
        return self._serve_student(ctx, body, decision, record, degraded="teacher-unavailable")

    def await_student(self, decision: Decision, record: dict[str, Any]) -> Awaitable[None] | None:
        task = decision.pending_student
        if task is None:
            return None

        async def wait() -> None:
            result = await task
            if isinstance(result, StudentAnswer):
                records.add_student(record, result.payload, result.latency_ms)
                record.update(scorer=result.scorer, confidence=result.score)
            else:
                record["student_text"] = None

        return wait()

    # --- logging ---------------------------------------------------------------------
    def finish(
        self,
        record: dict[str, Any],
        ctx: RequestContext,
        status: int,
        extra: Awaitable[None] | None = None,
    ) -> None:
        records.finish(record, ctx, time.perf_counter(), status)
        ctx.logged = True
        if extra is None:
            self._submit(record)
            return

        token = self.pending.hold(record)  # journaled as it is now (see PendingRows)

        async def later() -> None:
            try:
                await extra
            finally:
                self._submit(record)
                self.pending.release(record, token)

        self._spawn(later())

    def _submit(self, record: dict[str, Any]) -> None:
        self._observer.on_finish(record)
        self._sink(record)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float) -> None:
        """Waits for background work (shadow calls, pending student answers) on shutdown."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)
