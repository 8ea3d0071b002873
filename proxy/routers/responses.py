"""POST /v1/responses: a thin router over `ResponsesService`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from proxy.deps import ContextDep, json_object, validation_error
from proxy.limits.http import enforce_limits
from proxy.protocol import ResponsesRequest
from proxy.routers.chat import error_responses, inline_schema
from proxy.serving.responses import ResponsesService

router = APIRouter()


@router.post(
    "/v1/responses",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(ResponsesRequest)}},
        }
    },
    responses=error_responses(400, 401, 413, 429, 502),
)
async def create_response(request: Request, ctx: ContextDep) -> Response:
    body: dict[str, Any] = await json_object(request)
    try:
        ResponsesRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    await enforce_limits(request, ctx, body)
    service: ResponsesService = request.app.state.responses
    return await service.create(ctx, body)
