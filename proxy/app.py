"""`create_app(settings)`: the FastAPI application and its lifespan.

Everything with a lifetime (HTTP clients, the log writer, the vLLM supervisor,
the scheduler) is created in the lifespan and kept on ``app.state``, so tests
build as many independent apps as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from proxy.auth import KeyRing
from proxy.errors import InvalidRequest, ProxyError
from proxy.feedback.service import build_feedback
from proxy.limits.http import seed_spend_from_log
from proxy.limits.shared import limiter_from_settings
from proxy.loop.scheduler import start_loop, stop_loop
from proxy.privacy import build_sink, run_retention, scrub_secrets, scrubber_from_settings
from proxy.request_ids import RequestIdMiddleware
from proxy.routers import (
    admin,
    breakdown,
    chat,
    feedback,
    health,
    models,
    passthrough,
    responses,
    stats,
    tasks,
)
from proxy.serving.chat import ChatService
from proxy.serving.observer import RequestObserver
from proxy.serving.passthrough import PassthroughService
from proxy.serving.pending import PendingRows
from proxy.serving.refused import log_refused
from proxy.serving.responses import ResponsesService
from proxy.serving.shadow import ShadowSampler
from proxy.serving.student_state import ActiveStudents, StudentVersion
from proxy.serving.vote_student import VoteStudent
from proxy.settings import Settings
from proxy.upstream.breaker import CircuitBreaker
from proxy.upstream.client import Upstream, make_http_client
from proxy.upstream.students import StudentPool
from proxy.upstream.teacher import TeacherClient

if TYPE_CHECKING:
    from proxy.student.supervisor import VLLMSupervisor

log = logging.getLogger("distill")


class Transports:
    """Optional transport overrides (the I/O seam for tests).

    `vllm_command` replaces the embedded student's command line (see `VLLMSupervisor`),
    `encoder_command` the embedded encoder's (the vote student's embeddings).
    """

    def __init__(
        self,
        student: httpx.AsyncBaseTransport | None = None,
        teacher: httpx.AsyncBaseTransport | None = None,
        vllm_command: list[str] | None = None,
        encoder_command: list[str] | None = None,
    ) -> None:
        self.student = student
        self.teacher = teacher
        self.vllm_command = vllm_command
        self.encoder_command = encoder_command


def _teacher(
    settings: Settings, client: httpx.AsyncClient, observer: RequestObserver
) -> TeacherClient | None:
    if not settings.teacher_configured:
        return None
    key = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else None
    return TeacherClient(
        Upstream("teacher", settings.teacher_url, key, client),
        model=settings.teacher_model,
        timeout=settings.teacher_timeout,
        deadline=settings.teacher_deadline,
        retries=settings.teacher_retries,
        backoff=settings.teacher_backoff,
        top_logprobs=settings.teacher_top_logprobs,
        on_retry=lambda kind: observer.on_upstream_retry("teacher", kind),
    )


def _build_state(app: FastAPI, settings: Settings, transports: Transports) -> None:
    state = app.state
    state.settings = settings
    state.keys = KeyRing(
        settings.client_keys,
        settings.admin_key.get_secret_value() if settings.admin_key else None,
    )
    state.student_http = make_http_client(settings.student_timeout, transports.student)
    state.teacher_http = make_http_client(settings.teacher_timeout, transports.teacher)
    state.observer = build_observer(app, settings)
    state.pool = StudentPool(
        state.student_http,
        breaker_factory=lambda: CircuitBreaker(
            settings.breaker_failures, settings.breaker_cooldown
        ),
    )
    state.vote = _vote_student(settings, state.student_http)
    state.encoder_supervisor = None
    state.teacher = _teacher(settings, state.teacher_http, state.observer)
    state.active = ActiveStudents(
        StudentVersion(name=settings.student_model or ""), per_task=settings.loop_scope == "task"
    )
    state.models_cache = {}
    state.writer = build_writer(settings)
    state.limiter = limiter_from_settings(settings)
    state.scrubber = scrubber_from_settings(settings)
    # Rows waiting for background work are journaled at response time (durable mode).
    held = getattr(state.writer, "held", None)
    state.sink = build_sink(settings, state.writer.submit, state.limiter.settle, held=held)
    state.pending = PendingRows(journal=state.sink)
    state.feedback = build_feedback(settings, state.writer, state.keys, state.pending)
    cpu_student = _embedded_cpu_student(settings)
    state.chat = ChatService(
        settings,
        state.pool,
        state.teacher,
        state.active,
        sink=state.sink,
        observer=state.observer,
        shadow=ShadowSampler(settings.effective_shadow_rate, settings.shadow_budget_per_hour),
        student_cap=settings.student_token_cap(cpu_student=cpu_student),
        background_max=settings.background_cap(cpu_student=cpu_student),
        pending=state.pending,
        vote=state.vote,
    )
    state.passthrough = PassthroughService(settings, state.teacher, state.sink, state.observer)
    state.responses = ResponsesService(state.chat, state.passthrough)
    state.supervisor = None
    state.background = []


def _vote_student(settings: Settings, http: httpx.AsyncClient) -> VoteStudent | None:
    """The students on the encoder (closed-set vote, extraction spans) and its pool (None:
    those tasks use LoRA). Its encoder is `encoder_url`, else the one `distill serve` runs
    beside its own student; an external student without an encoder URL keeps LoRA."""
    external_student = bool(settings.student_urls)
    wanted = settings.closed_set_student == "vote" or settings.extraction_student == "spans"
    if not wanted or (external_student and not settings.encoder_url):
        return None
    pool = StudentPool(
        http,
        breaker_factory=lambda: CircuitBreaker(
            settings.breaker_failures, settings.breaker_cooldown
        ),
    )
    return VoteStudent(pool, settings.encoder_served_name, settings.encoder_timeout)


def _embedded_cpu_student(settings: Settings) -> bool:
    """`distill serve` runs the student itself, on the CPU build of vLLM or without a GPU."""
    if settings.student_urls:
        return False
    from proxy.student.command import detect_device

    return detect_device() == "cpu"


def build_writer(settings: Settings) -> Any:
    from proxy.logstore.writer import LogWriter

    return LogWriter.from_settings(settings)


def build_observer(app: FastAPI, settings: Settings) -> RequestObserver:
    from proxy.observability.observer import build_accounting

    return build_accounting(app.state, settings)


async def _watch_students(app: FastAPI) -> None:
    """Keeps the student pool in step with the supervisor (embedded) or probes (external)."""
    state = app.state
    models_due = 0.0
    while True:
        supervisor = state.supervisor
        if supervisor is not None:
            models_due = await _follow_supervisor(state, supervisor, models_due)
            await asyncio.sleep(0.25)
            continue
        await state.pool.probe()
        _adopt_served_model(state)
        await asyncio.sleep(2.0 if state.pool.ready else 0.5)


async def _follow_supervisor(state: Any, supervisor: VLLMSupervisor, models_due: float) -> float:
    """The supervisor decides readiness; the served models are re-read every 2 s while ready.

    Returns when the models are due next.
    """
    url = supervisor.url
    if not (supervisor.ready and url):
        state.pool.set_urls([url] if url else [])
        state.pool.mark_down(supervisor.reason)
        return 0.0
    state.pool.set_urls([url], ready=True)
    now = time.monotonic()
    if now < models_due:
        return models_due
    await state.pool.probe(readiness=False)
    return now + 2.0


def _adopt_served_model(state: Any) -> None:
    """Without DISTILL_STUDENT_MODEL the student's first served model is used."""
    if state.active.current.name:
        return
    for endpoint in state.pool.endpoints:
        if endpoint.models:
            current = state.active.current
            state.active.update(StudentVersion(**{**current.__dict__, "name": endpoint.models[0]}))
            return


async def _watch_encoder(state: Any) -> None:
    """The encoder pool follows its supervisor (embedded) or its probes (external)."""
    pool = state.vote.pool
    while True:
        supervisor = state.encoder_supervisor
        if supervisor is None:
            await pool.probe()
        elif supervisor.ready and supervisor.url:
            pool.set_urls([supervisor.url], ready=True)
        else:
            pool.set_urls([supervisor.url] if supervisor.url else [])
            pool.mark_down(supervisor.reason)
        await asyncio.sleep(2.0 if pool.ready else 0.5)


async def _start_encoder(app: FastAPI, command: list[str] | None) -> None:
    state = app.state
    settings: Settings = state.settings
    if state.vote is None:
        return
    if settings.encoder_url:
        state.vote.pool.set_urls([settings.encoder_url], reason="probing the encoder")
    else:
        from proxy.student.encoder import encoder_spec
        from proxy.student.supervisor import VLLMSupervisor

        supervisor = VLLMSupervisor(settings, command=command, spec=encoder_spec(settings))
        state.encoder_supervisor = supervisor
        await supervisor.start()
    state.background.append(asyncio.create_task(_watch_encoder(state), name="encoder-watch"))


async def _start_student(app: FastAPI, vllm_command: list[str] | None = None) -> None:
    settings: Settings = app.state.settings
    if settings.student_urls:
        app.state.pool.set_urls(settings.student_urls, reason="probing the student")
    else:
        from proxy.student.supervisor import VLLMSupervisor

        supervisor = VLLMSupervisor(settings, command=vllm_command)
        app.state.supervisor = supervisor
        if not app.state.active.current.name:
            app.state.active.update(StudentVersion(name=supervisor.model_name))
        await supervisor.start()
    app.state.background.append(asyncio.create_task(_watch_students(app), name="student-watch"))
    if app.state.teacher is None:
        log.warning(
            "No teacher configured (DISTILL_TEACHER_API_KEY / OPENAI_API_KEY unset): serving the "
            "student only; low-confidence answers are marked 'x-distill-degraded: no-teacher'."
        )


async def _start_limits_and_retention(app: FastAPI) -> None:
    state = app.state
    await seed_spend_from_log(state.limiter, state.writer)
    days = state.settings.retention_days
    if days:
        job = run_retention(
            state.writer,
            days,
            state.settings.retention_interval,
            # The loop (and its leader) starts after this task: look the role up each pass.
            leading=lambda: getattr(getattr(state, "leader", None), "is_leader", True),
        )
        state.background.append(asyncio.create_task(job, name="retention"))


async def _shutdown(app: FastAPI) -> None:
    state = app.state
    settings: Settings = state.settings
    await stop_loop(app)
    for task in state.background:
        task.cancel()
    for task in state.background:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await state.chat.drain(timeout=settings.shutdown_grace)
    for supervisor in (state.supervisor, state.encoder_supervisor):
        if supervisor is not None:
            await supervisor.stop()
    await asyncio.to_thread(state.writer.close, settings.shutdown_grace)
    await state.student_http.aclose()
    await state.teacher_http.aclose()


def create_app(settings: Settings | None = None, transports: Transports | None = None) -> FastAPI:
    settings = settings or Settings()
    transports = transports or Transports()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _build_state(app, settings, transports)
        app.state.writer.start()
        await _start_limits_and_retention(app)
        await _start_student(app, transports.vllm_command)
        await _start_encoder(app, transports.encoder_command)
        await start_loop(app)
        try:
            yield
        finally:
            await _shutdown(app)

    app = FastAPI(
        title="distill-proxy",
        version="0.1.0",
        lifespan=lifespan,
        description="OpenAI-compatible distilling inference proxy.",
    )
    for router in (chat.router, models.router, health.router, stats.router, admin.router):
        app.include_router(router)
    app.include_router(feedback.router)
    app.include_router(breakdown.router)
    app.include_router(responses.router)
    app.include_router(tasks.router)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware, refuse=_refusal)
    # Last on purpose: it answers every other path under /v1/ (relay, 405 or 404).
    app.include_router(passthrough.router)
    return app


def _refusal(scope: Scope, exc: InvalidRequest) -> JSONResponse:
    return _error_response(Request(scope), exc)


def _error_response(request: Request, exc: ProxyError) -> JSONResponse:
    # Every refusal leaves a row, unless the request's service logged it already.
    log_refused(request, exc)
    headers = dict(exc.headers)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers["x-request-id"] = request_id
    # Upstream errors are relayed; one that echoes a key it was sent must not pass it on.
    body = scrub_secrets(request.app.state, exc.body())
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


_HTTP_CODES = {404: "unknown_url", 405: "method_not_allowed"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProxyError)
    async def proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return _error_response(
            request, InvalidRequest(f"Invalid request: {loc}: {first.get('msg')}")
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort: the client still gets OpenAI's envelope, the traceback goes to the log.
        log.exception("unhandled error", exc_info=exc)
        return _error_response(request, ProxyError("The proxy hit an internal error."))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ProxyError(str(exc.detail), code=_HTTP_CODES.get(exc.status_code))
        error.status_code = exc.status_code
        error.error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error_response(request, error)
