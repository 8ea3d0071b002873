"""Dashboard buttons -> the run loop's admin endpoints, inside the process.

The run/rollback endpoints (`POST /admin/runs`, `POST /admin/rollback`) accept the
admin key as a Bearer header; a browser logged in with a cookie has no such
header. The dashboard therefore posts to its own endpoints, which call the admin
ones in-process (ASGI, no network) with the server's own credentials, and relay the
answer unchanged. The run loop keeps a single implementation and its own auth.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.responses import Response

from proxy.settings import Settings

# The admin dependency lets loopback in when no keys are configured; present as loopback.
_LOOPBACK = ("127.0.0.1", 0)


async def forward_admin(
    app: Any, settings: Settings, method: str, path: str, body: bytes, timeout: float = 30.0
) -> Response:
    headers = {"content-type": "application/json", "x-distill-forwarded-by": "dashboard"}
    if settings.admin_key is not None:
        headers["authorization"] = f"Bearer {settings.admin_key.get_secret_value()}"
    transport = httpx.ASGITransport(app=app, client=_LOOPBACK)
    async with httpx.AsyncClient(transport=transport, base_url="http://distill.internal") as client:
        answer = await client.request(method, path, content=body, headers=headers, timeout=timeout)
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type", "application/json"),
    )
