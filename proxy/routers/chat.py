"""POST /v1/chat/completions: a thin router over `ChatService`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import Response

from proxy.deps import ChatBodyDep, ChatServiceDep, ContextDep
from proxy.limits.http import LimitDep
from proxy.protocol import ChatCompletionRequest, ErrorResponse

router = APIRouter()


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` inlined: a `#/$defs/...` ref inside an
    OpenAPI document would resolve against the document root and break clients/tools."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return _inline(schema, defs)  # type: ignore[no-any-return]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a distilled endpoint: each status answers OpenAI's envelope."""
    return {code: {"model": ErrorResponse} for code in codes}


@router.post(
    "/v1/chat/completions",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(ChatCompletionRequest)}},
        }
    },
    responses=error_responses(400, 401, 413, 429, 502, 504),
)
async def chat_completions(
    ctx: ContextDep, body: ChatBodyDep, service: ChatServiceDep, _limits: LimitDep
) -> Response:
    return await service.complete(ctx, body)
