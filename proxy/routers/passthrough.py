"""Every other path under /v1/: relayed to the teacher (DISTILL_PASSTHROUGH), 405 on a
path the proxy serves with another method, else OpenAI's 404 ``Invalid URL``.

Registered last: the proxy's own routes match first.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy.deps import get_settings, read_limited, request_context
from proxy.errors import MethodNotAllowed, NotFound, PermissionDenied
from proxy.limits.http import enforce_limits
from proxy.serving.multipart_summary import multipart_summary
from proxy.serving.passthrough import FORWARDED_REQUEST_HEADERS, PassthroughService, RelayCall
from proxy.settings import PASSTHROUGH_ENDPOINTS

router = APIRouter()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Paths the proxy answers itself (with one method); their sub-paths are relayed.
SERVED_HERE = {"chat": "completions", "models": "", "responses": ""}


def _endpoint_name(request: Request, name: str, rest: str) -> str:
    """The pass-through name of this path, or the refusal it gets."""
    path = request.url.path
    segments = [name, *rest.split("/")] if rest else [name]
    if any(s in ("", ".", "..") for s in segments) or name not in PASSTHROUGH_ENDPOINTS:
        raise NotFound(f"Invalid URL ({request.method} {path})", code="unknown_url")
    own = SERVED_HERE.get(name)
    # GET /v1/models/{id} is answered here; deleting a fine-tuned model is the teacher's.
    if (own is not None and rest == own) or (name == "models" and request.method != "DELETE"):
        raise MethodNotAllowed(f"{request.method} is not allowed on {path}")
    if name == "chat" and not rest.startswith("completions/"):
        raise NotFound(f"Invalid URL ({request.method} {path})", code="unknown_url")
    return name


def _upstream_path(request: Request) -> str:
    # As the client encoded it (an id with %2F stays one segment), minus the /v1 prefix.
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    return path.removeprefix("/v1")


async def _body(request: Request) -> tuple[bytes, dict[str, Any] | None]:
    # Relayed bodies (a batch of embeddings inputs, an upload) may be far larger than
    # a chat request; only their log copy is bounded by max_body_bytes.
    is_json = "json" in request.headers.get("content-type", "")
    content = await read_limited(request, get_settings(request).max_upload_bytes)
    if not (is_json and content):
        return content, None
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content, None  # relayed anyway: the teacher words the 400
    if isinstance(body, dict):
        request.state.body = body
        return content, body
    return content, None


@router.api_route("/v1/{name}", methods=METHODS, include_in_schema=False)
@router.api_route("/v1/{name}/{rest:path}", methods=METHODS, include_in_schema=False)
async def passthrough(request: Request, name: str, rest: str = "") -> Response:
    endpoint = _endpoint_name(request, name, rest)
    ctx = await request_context(request)
    service: PassthroughService = request.app.state.passthrough
    if not service.enabled(endpoint):
        raise PermissionDenied(
            f"This proxy does not relay /v1/{endpoint} (DISTILL_PASSTHROUGH).",
            code="endpoint_disabled",
        )
    content, body = await _body(request)
    await enforce_limits(request, ctx, body or {})
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
    content_type = request.headers.get("content-type", "")
    headers["x-client-request-id"] = ctx.request_id  # OpenAI's header for tracing a call
    call = RelayCall(
        method=request.method,
        path=_upstream_path(request),
        params=list(request.query_params.multi_items()),
        headers=headers,
        content=content,
        body=body,
        form=None if body is not None else multipart_summary(content_type, content),
    )
    return await service.relay(ctx, call)
