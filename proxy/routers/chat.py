"""POST /v1/chat/completions: a thin router over `ChatService`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from proxy.deps import ChatBodyDep, ChatServiceDep, ContextDep
from proxy.limits.http import LimitDep
from proxy.protocol import ChatCompletionRequest, ErrorResponse

router = APIRouter()


@router.post(
    "/v1/chat/completions",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
        }
    },
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
        502: {"model": ErrorResponse},
        504: {"model": ErrorResponse},
    },
)
async def chat_completions(
    ctx: ContextDep, body: ChatBodyDep, service: ChatServiceDep, _limits: LimitDep
) -> Response:
    return await service.complete(ctx, body)
