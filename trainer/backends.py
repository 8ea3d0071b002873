"""Generation backends for evaluation, behind one small protocol.

- `HFBackend`: transformers (+ peft adapter) `generate` in this process, greedy, with raw
  logits per step for token logprobs and top-k (the CPU path of `distill train`).
- `OpenAIBackend`: a running vLLM (or any OpenAI-compatible server) with ``logprobs`` and
  ``top_logprobs``; the path the scheduler uses when the student server is up.

Both return the answer text plus an OpenAI-style ``logprobs.content`` list, so the proxy's
confidence scorers apply unchanged. With a closed label set both constrain decoding to the
labels (vLLM: ``structured_outputs: {"choice": labels}``, falling back to the pre-0.11
``guided_choice``; HF: a prefix trie over the labels' token ids), and the logprobs stay the
model's raw ones, so ``exp(sum of logprobs)`` is the probability of the chosen answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

log = logging.getLogger("trainer.backends")

Message = dict[str, Any]


@dataclass(frozen=True)
class Generation:
    text: str
    logprobs: list[dict[str, Any]]
    finish_reason: str | None = None


class GenerationBackend(Protocol):
    """What evaluation needs from a model: answers with logprobs."""

    description: str

    def generate(
        self,
        conversations: Sequence[list[Message]],
        max_new_tokens: int,
        top_logprobs: int,
        closed_set: list[str] | None,
    ) -> list[Generation]: ...

    def close(self) -> None: ...


class BackendError(RuntimeError):
    """The evaluation backend failed (server unreachable, bad response)."""


class OpenAIBackend:
    """Chat completions against a running OpenAI-compatible server (vLLM)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        concurrency: int = 4,
        timeout: float = 120.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.description = f"openai:{self.base_url} model={model}"
        self._concurrency = concurrency
        self._client = client or httpx.Client(timeout=timeout)
        self._choice_field = "structured_outputs"

    def close(self) -> None:
        self._client.close()

    def generate(
        self,
        conversations: Sequence[list[Message]],
        max_new_tokens: int,
        top_logprobs: int,
        closed_set: list[str] | None,
    ) -> list[Generation]:
        def one(messages: list[Message]) -> Generation:
            return self._complete(messages, max_new_tokens, top_logprobs, closed_set)

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            return list(pool.map(one, conversations))

    def _complete(
        self,
        messages: list[Message],
        max_new_tokens: int,
        top_logprobs: int,
        closed_set: list[str] | None,
    ) -> Generation:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": top_logprobs,
        }
        if closed_set:
            body.update(self._choice_body(closed_set))
        response = self._post(body)
        if response.status_code == 400 and closed_set and self._choice_field != "guided_choice":
            # vLLM < 0.11 only knows the older name for the choice constraint.
            log.info("structured_outputs refused (400); retrying with guided_choice")
            self._choice_field = "guided_choice"
            body.pop("structured_outputs", None)
            body.update(self._choice_body(closed_set))
            response = self._post(body)
        if response.status_code != 200:
            raise BackendError(
                f"{self.description}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return _parse_completion(response.json())

    def _choice_body(self, labels: list[str]) -> dict[str, Any]:
        if self._choice_field == "guided_choice":
            return {"guided_choice": labels}
        return {"structured_outputs": {"choice": labels}}

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.description}: {type(exc).__name__}: {exc}") from exc


def _parse_completion(data: dict[str, Any]) -> Generation:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BackendError(f"malformed chat completion: {str(data)[:300]}") from exc
    content = (choice.get("logprobs") or {}).get("content") or []
    return Generation(text=text, logprobs=list(content), finish_reason=choice.get("finish_reason"))


class HFBackend:
    """Local transformers generation (greedy) with an optional PEFT adapter."""

    def __init__(
        self, base_model: str | Path, adapter: Path | None = None, batch_size: int = 8
    ) -> None:
        self.base_model = str(base_model)
        self.adapter = adapter
        self.batch_size = batch_size
        self.description = f"hf:{self.base_model}" + (f" adapter={adapter}" if adapter else "")
        self._model: Any = None
        self._tokenizer: Any = None

    def close(self) -> None:
        self._model = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from trainer.hfgen import load_model

            self._model, self._tokenizer = load_model(self.base_model, self.adapter)
        return self._model, self._tokenizer

    def generate(
        self,
        conversations: Sequence[list[Message]],
        max_new_tokens: int,
        top_logprobs: int,
        closed_set: list[str] | None,
    ) -> list[Generation]:
        from trainer.hfgen import generate_batch

        model, tokenizer = self._load()
        out: list[Generation] = []
        for i in range(0, len(conversations), self.batch_size):
            batch = list(conversations[i : i + self.batch_size])
            for text, content, finish in generate_batch(
                model, tokenizer, batch, max_new_tokens, top_logprobs, closed_set
            ):
                out.append(Generation(text=text, logprobs=content, finish_reason=finish))
        return out
