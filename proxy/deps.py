"""FastAPI dependencies as `Annotated` aliases: what routers need from `app.state`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from pydantic import ValidationError

from proxy.auth import KeyRing
from proxy.errors import InvalidRequest, PayloadTooLarge
from proxy.protocol import ChatCompletionRequest
from proxy.request_ids import new_request_id
from proxy.serving.chat import ChatService
from proxy.serving.records import RequestContext
from proxy.settings import Settings
from proxy.tasks.identity import TASK_HEADER

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a
# thread pool, a thread hop per request that costs more than the work they do.

ROUTES = ("auto", "student", "teacher")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_chat_service(request: Request) -> ChatService:
    return request.app.state.chat  # type: ignore[no-any-return]


def get_keys(request: Request) -> KeyRing:
    return request.app.state.keys  # type: ignore[no-any-return]


def client_host(request: Request) -> str | None:
    return request.client.host if request.client else None


def require_admin(request: Request) -> None:
    get_keys(request).admin(request.headers.get("authorization"), client_host(request))


async def request_context(request: Request) -> RequestContext:
    # The request id (kept as the client sent it, or generated) comes from
    # RequestIdMiddleware, which ran before anything else.
    started = getattr(request.state, "received", None) or time.perf_counter()
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    request.state.request_id = request_id
    key_hash = get_keys(request).client(request.headers.get("authorization"))
    route = (request.headers.get("x-distill-route") or "auto").strip().lower()
    if route not in ROUTES:
        raise InvalidRequest(
            f"x-distill-route must be one of {', '.join(ROUTES)}, not {route!r}",
            param="x-distill-route",
        )
    tag = request.headers.get("x-distill-tag")
    ctx = RequestContext(
        request_id=request_id,
        started=started,
        client_key_hash=key_hash,
        forced_route=route,
        tag=tag[:128] if tag else None,
        endpoint=request.url.path[:300],
        task_header=request.headers.get(TASK_HEADER),
    )
    request.state.ctx = ctx  # the error handler logs a refusal with it
    return ctx


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
    size = 0
    parts: list[bytes] = []
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        parts.append(part)
    return b"".join(parts)


async def json_object(request: Request) -> dict[str, Any]:
    """The client's JSON object body (bounded by max_body_bytes), kept on the request
    state so a refusal's log row can say what was asked."""
    raw = await read_limited(request, get_settings(request).max_body_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        # What cannot be encoded again (orjson nests at most 254 levels deep) could be
        # neither forwarded nor logged: refuse it here instead of failing later with a 500.
        orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequest(f"The request body cannot be processed: {exc}") from None
    request.state.body = body
    return body


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return f"Invalid request: {loc or 'body'}: {first.get('msg')}", loc or None


def validation_error(exc: ValidationError) -> InvalidRequest:
    message, param = _validation_message(exc)
    return InvalidRequest(message, param=param)


async def chat_body(request: Request) -> dict[str, Any]:
    """The client's JSON body, validated, returned as the raw dict (so unknown fields pass)."""
    body = await json_object(request)
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        message, param = _validation_message(exc)
        raise InvalidRequest(message, param=param) from None
    return body


async def _settings_dep(request: Request) -> Settings:
    return get_settings(request)


async def _admin_dep(request: Request) -> None:
    require_admin(request)


SettingsDep = Annotated[Settings, Depends(_settings_dep)]
ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]
ContextDep = Annotated[RequestContext, Depends(request_context)]
ChatBodyDep = Annotated[dict[str, Any], Depends(chat_body)]
AdminDep = Annotated[None, Depends(_admin_dep)]
