"""Client and admin keys. Keys are kept only as SHA-256 digests and compared in
constant time; the raw key never leaves this module (logs get the digest)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from proxy.errors import AuthenticationError, PermissionDenied


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class KeyRing:
    def __init__(self, client_keys: list[str], admin_key: str | None) -> None:
        self._clients = [digest(k) for k in client_keys]
        self._admin = digest(admin_key) if admin_key else None

    @property
    def requires_client_key(self) -> bool:
        return bool(self._clients)

    def _matches(self, presented: str, digests: list[str]) -> bool:
        candidate = digest(presented)
        found = False
        for known in digests:  # no early exit: time does not depend on which key matched
            found |= hmac.compare_digest(candidate, known)
        return found

    def client(self, authorization: str | None) -> str | None:
        """Checks a client request; returns the key digest to log (None without keys)."""
        if not self._clients:
            return None
        token = bearer(authorization)
        if token is None:
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        if not self._matches(token, self._clients) and not self.is_admin(token):
            raise AuthenticationError("Incorrect API key provided.")
        return digest(token)

    def is_admin(self, token: str | None) -> bool:
        return bool(token and self._admin and self._matches(token, [self._admin]))

    def admin(self, authorization: str | None, client_host: str | None) -> None:
        """Admin endpoints: the admin key, or loopback when no keys are configured at all."""
        token = bearer(authorization)
        if self._admin is None:
            if not self._clients and is_loopback(client_host):
                return
            raise PermissionDenied(
                "Admin endpoints need DISTILL_ADMIN_KEY to be configured.", code="admin_disabled"
            )
        if token is None:
            raise AuthenticationError("Missing admin key.", code="missing_api_key")
        if not self.is_admin(token):
            raise PermissionDenied("This key cannot use admin endpoints.", code="not_admin")
