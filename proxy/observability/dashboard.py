"""`/dashboard`: the page, its static assets (vendored, works offline), the login, and
the buttons' endpoints that relay to the run loop's admin API."""

from __future__ import annotations

import asyncio
import html
import mimetypes
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from proxy.deps import get_keys, get_settings, require_admin
from proxy.errors import AuthenticationError, NotFound, PayloadTooLarge, PermissionDenied
from proxy.observability.dashboard_auth import COOKIE, DashboardWriteDep, has_session, issue_token
from proxy.observability.forward import forward_admin

STATIC = Path(__file__).resolve().parent.parent / "static"
_LOGIN_LIMIT = 4096
_FAILED_LOGIN_DELAY = 0.5  # slows down guessing; the key comparison itself is constant-time

router = APIRouter(include_in_schema=False)


def _login_page(message: str | None, status: int, next_url: str = "/dashboard") -> HTMLResponse:
    page = (STATIC / "login.html").read_text(encoding="utf-8")
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    page = page.replace("<!--MESSAGE-->", note).replace("<!--NEXT-->", html.escape(next_url))
    return HTMLResponse(page, status_code=status)


def _safe_next(value: str | None) -> str:
    """Only the dashboard itself: a login must never redirect to another site."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


def _authorized(request: Request) -> tuple[bool, str | None]:
    if has_session(request):
        return True, None
    try:
        require_admin(request)
    except (AuthenticationError, PermissionDenied) as exc:
        if request.headers.get("authorization"):
            raise  # an API client with a wrong key gets the JSON error, not a form
        return False, exc.message if isinstance(exc, PermissionDenied) else None
    return True, None


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    ok, message = _authorized(request)
    if not ok:
        here = "/dashboard" + (f"?{request.url.query}" if request.url.query else "")
        return _login_page(message, 401, _safe_next(here))
    response = FileResponse(STATIC / "dashboard.html", media_type="text/html")
    response.headers["cache-control"] = "no-store"
    return response


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    settings = get_settings(request)
    if settings.admin_key is None:
        return _login_page("No admin key is configured: set DISTILL_ADMIN_KEY.", 403)
    raw = await request.body()
    if len(raw) > _LOGIN_LIMIT:
        raise PayloadTooLarge("login form too large")
    form = parse_qs(raw.decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    next_values = form.get("next")
    next_url = _safe_next(next_values[0] if next_values else None)
    if not get_keys(request).is_admin(key):
        await asyncio.sleep(_FAILED_LOGIN_DELAY)
        return _login_page("That is not the admin key.", 401, next_url)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        issue_token(settings) or "",
        max_age=int(settings.dashboard_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/dashboard/logout")
async def logout() -> Response:
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/dashboard/static/{name:path}")
async def static_file(name: str) -> Response:
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file() or path.suffix == ".html":
        raise NotFound(f"no dashboard asset {name!r}")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = FileResponse(path, media_type=media_type)
    response.headers["cache-control"] = "public, max-age=300"
    return response


@router.post("/dashboard/api/runs")
async def trigger_run(request: Request, _: DashboardWriteDep) -> Response:
    body = await request.body()
    return await forward_admin(
        request.app, get_settings(request), "POST", "/admin/runs", body or b"{}"
    )


@router.post("/dashboard/api/rollback")
async def rollback(request: Request, _: DashboardWriteDep) -> Response:
    body = await request.body()
    return await forward_admin(
        request.app, get_settings(request), "POST", "/admin/rollback", body or b"{}"
    )
