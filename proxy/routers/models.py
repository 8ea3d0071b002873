"""GET /v1/models: the student versions and the teacher's models (cached)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from proxy.deps import ContextDep
from proxy.errors import UpstreamError
from proxy.protocol import ModelCard, ModelList

router = APIRouter()
_TEACHER_CACHE_SECONDS = 60.0


async def _teacher_models(request: Request) -> list[str]:
    state = request.app.state
    teacher = state.teacher
    if teacher is None:
        return []
    cache: dict[str, Any] = state.models_cache
    if time.monotonic() - cache.get("at", -1e9) < _TEACHER_CACHE_SECONDS:
        return list(cache["ids"])
    try:
        payload = await teacher.upstream.get_json("/models", timeout=5.0)
        ids = [str(m.get("id")) for m in payload.get("data") or [] if m.get("id")]
    except UpstreamError:
        ids = [teacher.model] if teacher.model else []
    cache.update(at=time.monotonic(), ids=ids)
    return ids


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request, ctx: ContextDep) -> ModelList:
    active = request.app.state.active.current
    ids = ["distill-student", active.name]
    ids += [m for m in await _teacher_models(request) if m not in ids]
    return ModelList(data=[ModelCard(id=i) for i in ids])
