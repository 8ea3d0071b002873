"""Browser login for `/dashboard`: the admin key is exchanged once for a signed cookie.

The cookie holds ``<expiry>.<HMAC>`` keyed by a secret derived from the admin key, never
the key itself, so it cannot be turned back into the key and rotating the key logs every
browser out. It is HttpOnly and SameSite=Strict; state-changing calls made with it must
also carry the ``x-distill-csrf`` header, which a cross-site form cannot send.

The login is a POST form on purpose: a ``?key=`` URL would land in access logs and
browser history.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, Request

from proxy.deps import get_settings, require_admin
from proxy.errors import PermissionDenied
from proxy.settings import Settings

COOKIE = "distill_admin"
CSRF_HEADER = "x-distill-csrf"


def _secret(settings: Settings) -> bytes | None:
    if settings.admin_key is None:
        return None
    key = settings.admin_key.get_secret_value().encode("utf-8")
    return hashlib.sha256(b"distill-dashboard-session\x00" + key).digest()


def _sign(secret: bytes, expiry: int) -> str:
    return hmac.new(secret, f"dashboard:{expiry}".encode(), hashlib.sha256).hexdigest()


def issue_token(settings: Settings, now: float | None = None) -> str | None:
    """A session token valid for `dashboard_session_hours`; None without an admin key."""
    secret = _secret(settings)
    if secret is None:
        return None
    expiry = int((now or time.time()) + settings.dashboard_session_hours * 3600)
    return f"{expiry}.{_sign(secret, expiry)}"


def token_valid(settings: Settings, token: str | None, now: float | None = None) -> bool:
    secret = _secret(settings)
    if secret is None or not token:
        return False
    expiry_text, _, signature = token.partition(".")
    if not expiry_text.isdigit():
        return False
    expected = _sign(secret, int(expiry_text))
    return hmac.compare_digest(expected, signature) and int(expiry_text) > (now or time.time())


def has_session(request: Request) -> bool:
    return token_valid(get_settings(request), request.cookies.get(COOKIE))


def require_admin_or_session(request: Request) -> None:
    """Admin access for reads: a dashboard cookie, else what `AdminDep` accepts."""
    if has_session(request):
        return
    require_admin(request)


def require_admin_or_session_write(request: Request) -> None:
    """Admin access for writes: a cookie only together with the CSRF header."""
    if has_session(request):
        if request.headers.get(CSRF_HEADER) != "1":
            raise PermissionDenied(f"Dashboard actions need the {CSRF_HEADER} header.", code="csrf")
        return
    require_admin(request)


DashboardReadDep = Annotated[None, Depends(require_admin_or_session)]
DashboardWriteDep = Annotated[None, Depends(require_admin_or_session_write)]
