"""GET /v1/models (and /v1/models/{id}): the students serving (one per task slot), the
teacher's models (cached) and the configured aliases."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from proxy.deps import ContextDep
from proxy.errors import NotFound, UpstreamError
from proxy.protocol import ModelCard, ModelList
from proxy.serving.student_state import ActiveStudents

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


async def _model_ids(request: Request) -> list[str]:
    """The student alias, every serving slot's version (per task, each task's own), the
    teacher's models, the aliases: once each, in that order."""
    active = ActiveStudents.of(request.app.state.active)
    ids = ["distill-student", *(slot.current.name for _, slot in active.slots())]
    ids += await _teacher_models(request)
    ids += request.app.state.settings.model_alias_list
    return [i for i in dict.fromkeys(ids) if i]


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request, ctx: ContextDep) -> ModelList:
    return ModelList(data=[ModelCard(id=i) for i in await _model_ids(request)])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def retrieve_model(request: Request, ctx: ContextDep, model_id: str) -> ModelCard:
    """Clients that check their model before they start ask here. With a fixed
    teacher model every name is answered (the proxy serves any name the same way)."""
    settings = request.app.state.settings
    if settings.teacher_model or model_id in await _model_ids(request):
        return ModelCard(id=model_id)
    raise NotFound(
        f"The model '{model_id}' does not exist (DISTILL_MODEL_ALIASES lists more names).",
        param="model",
        code="model_not_found",
    )
