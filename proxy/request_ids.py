"""Request ids: every request gets one before anything else runs, every response carries it.

A client's ``x-request-id`` is kept exactly as sent when it is printable ASCII and at
most `MAX_REQUEST_ID` characters; anything else is refused with a 400 (under a generated
id), never silently replaced. The middleware is plain ASGI so streamed responses pass
through untouched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.errors import InvalidRequest

MAX_REQUEST_ID = 200
HEADER = "x-request-id"

# Renders a refusal (and logs its row): (scope, error) -> an ASGI app answering it.
Refuse = Callable[[Scope, InvalidRequest], ASGIApp]


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def check_request_id(value: str) -> str | None:
    """Why a client's request id cannot be kept, or None when it can."""
    if not value:
        return "x-request-id must not be empty"
    if len(value) > MAX_REQUEST_ID:
        return f"x-request-id must be at most {MAX_REQUEST_ID} characters (got {len(value)})"
    if not (value.isascii() and value.isprintable()):
        # Header values are bytes; only printable ASCII round-trips unchanged into the
        # response header and the log.
        return "x-request-id must contain printable ASCII characters only"
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, refuse: Refuse) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(HEADER)
        problem = check_request_id(incoming) if incoming is not None else None
        request_id = incoming if incoming is not None and problem is None else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["received"] = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if HEADER not in headers:
                    headers[HEADER] = request_id
            await send(message)

        if problem is not None:
            error = InvalidRequest(problem, param=HEADER, code="invalid_request_id")
            await self.refuse(scope, error)(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)
