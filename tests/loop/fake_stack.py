"""Fakes for the loop's fast tests: a vLLM with the runtime LoRA API, a teacher that labels,
and the task they share.

The task: label a review ``positive`` when it contains "good", else ``negative``. The teacher
always answers right. The fake vLLM's base model answers "maybe" with low confidence; an
adapter answers according to the ``fake_quality`` its ``adapter_config.json`` declares
(written by `fake_trainer.py`): ``good`` (the teacher's label), ``bad`` (the other label) or
``none`` (like the base model), always confidently. Like vLLM, an unknown model name is a 404.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.fakes import completion, error_response, json_response

BASE = "student-base"
LABELS = ("negative", "positive")


def oracle(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    text = str(messages[-1].get("content") if messages else "")
    return "positive" if "good" in text else "negative"


def review(i: int, good: bool) -> list[dict[str, str]]:
    word = "good" if good else "dull"
    return [{"role": "user", "content": f"Review {i}: the film was {word}. Label it."}]


@dataclass
class FakeTeacher:
    """Always right: answers `label(body)` (default: the review task's `oracle`)."""

    label: Callable[[dict[str, Any]], str] = oracle
    requests: list[dict[str, Any]] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return json_response(200, {"object": "list", "data": [{"id": "teacher"}]})
        body = orjson.loads(request.content)
        self.requests.append(body)
        top_k = int(body.get("top_logprobs") or 0)
        return json_response(
            200,
            completion(self.label(body), model=str(body.get("model")), logprob=-0.01, top_k=top_k),
        )


@dataclass
class FakeVLLM:
    """A vLLM replica with runtime LoRA loading; `restart()` forgets every adapter."""

    base: str = BASE
    base_logprob: float = -2.0
    adapters: dict[str, str] = field(default_factory=dict)  # name -> quality
    loads: list[dict[str, Any]] = field(default_factory=list)
    unloads: list[str] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    refuse_loads: bool = False
    hold: threading.Event | None = None
    """When set, requests whose prompt contains HOLD wait until the event is set."""
    base_answer: Callable[[dict[str, Any]], tuple[str, float] | None] | None = None
    """The base model's (text, logprob) for a request, where it is not "maybe" (None)."""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def restart(self) -> None:
        self.adapters.clear()

    def models(self) -> list[str]:
        return [self.base, *self.adapters]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/v1/models"):
            return json_response(
                200,
                {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models()]},
            )
        body = orjson.loads(request.content) if request.content else {}
        if path.endswith("/v1/load_lora_adapter"):
            return self._load(body)
        if path.endswith("/v1/unload_lora_adapter"):
            name = body.get("lora_name")
            if name not in self.adapters:
                return error_response(404, f"The lora adapter '{name}' cannot be found.")
            del self.adapters[name]
            self.unloads.append(name)
            return httpx.Response(200, text=f"Success: LoRA adapter '{name}' removed.")
        if path.endswith("/v1/chat/completions"):
            return await self._chat(body)
        return error_response(404, f"no route {path}")

    def _load(self, body: dict[str, Any]) -> httpx.Response:
        self.loads.append(body)
        name, path = body.get("lora_name"), Path(str(body.get("lora_path")))
        if self.refuse_loads:
            return error_response(500, "fake: cannot load adapters right now")
        if name in self.adapters:
            return error_response(400, f"The lora adapter '{name}' has already been loaded.")
        try:
            config = json.loads((path / "adapter_config.json").read_text())
        except (OSError, ValueError):
            return error_response(404, f"Loading lora {name} failed: No adapter found for {path}")
        self.adapters[str(name)] = str(config.get("fake_quality", "none"))
        return httpx.Response(200, text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _chat(self, body: dict[str, Any]) -> httpx.Response:
        self.chats.append(body)
        model = body.get("model")
        if model != self.base and model not in self.adapters:
            return error_response(404, f"The model `{model}` does not exist.")
        if self.hold is not None and "HOLD" in json.dumps(body.get("messages")):
            await asyncio.to_thread(self.hold.wait, 10)
        text, logprob = self._answer(body, self.adapters.get(str(model)))
        choice = (body.get("structured_outputs") or {}).get("choice")
        if choice and text not in choice:
            text = choice[0]
        top_k = int(body.get("top_logprobs") or 0)
        return json_response(
            200,
            completion(
                text,
                model=str(model),
                logprob=logprob,
                with_logprobs=bool(body.get("logprobs")),
                top_k=top_k,
            ),
        )

    def _answer(self, body: dict[str, Any], quality: str | None) -> tuple[str, float]:
        right = oracle(body)
        if quality == "good":
            return right, -0.01
        if quality == "bad":
            return LABELS[1 - LABELS.index(right)], -0.01
        if quality is None and self.base_answer is not None:
            answer = self.base_answer(body)
            if answer is not None:
                return answer
        return "maybe", self.base_logprob
