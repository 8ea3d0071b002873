"""The proxy's error hierarchy. Every error the proxy itself produces is a `ProxyError`
and is rendered in OpenAI's envelope: ``{"error": {"message", "type", "param", "code"}}``.

    ProxyError
    ├── InvalidRequest        400 invalid_request_error
    ├── AuthenticationError   401 authentication_error
    ├── PermissionDenied      403 permission_error
    ├── NotFound              404 not_found_error
    ├── MethodNotAllowed      405 invalid_request_error
    ├── PayloadTooLarge       413 invalid_request_error
    ├── RateLimited           429 rate_limit_error (carries Retry-After)
    ├── ServiceUnavailable    503 service_unavailable
    └── UpstreamError         502 upstream_error (teacher/student failed)
        ├── UpstreamTimeout   504 timeout
        └── UpstreamStatus    relays an upstream 4xx body as is
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    status_code = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(ProxyError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ProxyError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ProxyError):
    status_code = 403
    error_type = "permission_error"


class NotFound(ProxyError):
    status_code = 404
    error_type = "not_found_error"


class MethodNotAllowed(ProxyError):
    status_code = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(ProxyError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(ProxyError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ServiceUnavailable(ProxyError):
    status_code = 503
    error_type = "service_unavailable"


class UpstreamError(ProxyError):
    status_code = 502
    error_type = "upstream_error"
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "timeout"
    code = "upstream_timeout"


class UpstreamStatus(UpstreamError):
    """An upstream answered with a client error (4xx): relayed to the client unchanged."""

    def __init__(self, status_code: int, payload: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.payload = payload

    def body(self) -> dict[str, Any]:
        if isinstance(self.payload.get("error"), dict):
            return self.payload
        return super().body()
