"""``POST /v1/feedback``: a rating and/or a correction on a logged request."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError

from proxy.deps import SettingsDep, read_limited
from proxy.errors import InvalidRequest, ServiceUnavailable
from proxy.feedback.service import FeedbackService
from proxy.logstore.feedback import SOURCES
from proxy.protocol import FeedbackRequest

router = APIRouter(prefix="/v1", tags=["feedback"])


def _service(request: Request) -> FeedbackService:
    service = getattr(request.app.state, "feedback", None)
    if service is None:
        raise ServiceUnavailable("feedback is not available on this server")
    return service  # type: ignore[no-any-return]


async def _body(request: Request, limit: int) -> FeedbackRequest:
    raw = await read_limited(request, limit)
    try:
        return FeedbackRequest.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidRequest(
            f"Invalid feedback: {loc or 'body'}: {first.get('msg')}", param=loc
        ) from None


@router.post("/feedback")
async def post_feedback(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Stores the feedback (every one is kept; the latest per request counts) and returns it."""
    service = _service(request)
    caller = service.caller(request.headers.get("authorization"))
    body = await _body(request, settings.max_body_bytes)
    # The CLI (admin key) says whether a feedback came one at a time or from a file.
    extra = body.model_extra or {}
    source = extra.get("source") if caller.admin and extra.get("source") in SOURCES else "api"
    feedback = await service.submit(body, caller, str(source))
    return feedback.to_api()
