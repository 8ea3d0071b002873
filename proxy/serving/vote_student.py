"""The students on the encoder at serving time: embed the query on the encoder's vLLM, vote
over the version's index (`trainer/vote.py`) or tag its spans (`trainer/spans.py`, a
span-shaped extraction), answer as a chat completion.

The answer is the chat completion the teacher would have given for a closed-set task: the
label as the message content, `finish_reason` "stop", usage from the encoder's token count.
Its logprobs carry one token, the label, whose log-probability is the log of the label's
vote share, so the `sequence_prob` scorer reads the vote share back and the calibration
gate, the log and the client's `logprobs` see one consistent confidence. The other labels
that got votes are its `top_logprobs`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from proxy.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from proxy.serving.structured import answer_problem, structured_spec
from proxy.serving.student_call import StudentAnswer, StudentFailure
from proxy.serving.student_state import StudentVersion
from proxy.upstream.client import decode_json
from proxy.upstream.students import StudentPool
from trainer.confidence import score_response
from trainer.encoder import mean_pool, parse_states, pooling_body, pooling_url
from trainer.spans import SpanAnswer, SpanStudent, is_span_dir
from trainer.vote import Vote, VoteIndex, log_share, query_text

SCORER = "sequence_prob"


@dataclass
class VoteResult:
    payload: dict[str, Any]
    latency_ms: float


class VoteStudent:
    """The loaded vote indexes by version name, and the encoder replicas that embed queries."""

    def __init__(self, pool: StudentPool, encoder_name: str, timeout: float) -> None:
        self.pool = pool
        self.encoder_name = encoder_name
        self.timeout = timeout
        self._indexes: dict[str, VoteIndex | SpanStudent] = {}

    # --- versions ------------------------------------------------------------------------
    def load(self, name: str, directory: Path) -> None:
        """Raises `VoteIndexError` when the directory holds no readable index."""
        if name not in self._indexes:
            loader = SpanStudent.load if is_span_dir(directory) else VoteIndex.load
            self._indexes[name] = loader(directory)

    def unload(self, name: str) -> None:
        self._indexes.pop(name, None)

    def index(self, name: str) -> VoteIndex | SpanStudent | None:
        return self._indexes.get(name)

    def loaded(self) -> list[str]:
        return list(self._indexes)

    def available(self) -> bool:
        return self.pool.available()

    # --- answers -------------------------------------------------------------------------
    async def embed(
        self, texts: list[str], timeout: float | None = None, force: bool = False
    ) -> tuple[np.ndarray, int]:
        """(sentence vectors, prompt tokens) from one encoder replica; raises
        `UpstreamError`."""
        states, tokens = await self.token_states(texts, timeout, force)
        return mean_pool(states), tokens

    async def token_states(
        self, texts: list[str], timeout: float | None = None, force: bool = False
    ) -> tuple[list[np.ndarray], int]:
        """(per-token states of each text, prompt tokens) from one encoder replica; raises
        `UpstreamError`.

        A connection error is retried once: an embedding is idempotent, and a pooled
        connection the encoder closed while idle fails the first request that reuses it."""
        try:
            return await self._pool_once(texts, timeout, force)
        except UpstreamTimeout:
            raise
        except UpstreamError:
            return await self._pool_once(texts, timeout, force)

    async def _pool_once(
        self, texts: list[str], timeout: float | None, force: bool
    ) -> tuple[list[np.ndarray], int]:
        endpoint = self.pool.pick(force)
        if endpoint is None:
            raise ServiceUnavailable(f"the encoder is unavailable: {self.pool.reason()}")
        endpoint.inflight += 1
        try:
            response = await endpoint.upstream.post_json(
                pooling_url(endpoint.upstream.base_url),
                pooling_body(self.encoder_name, texts),
                timeout or self.timeout,
            )
        except UpstreamError:
            endpoint.breaker.failure()
            raise
        finally:
            endpoint.inflight -= 1
        payload = decode_json(response.content) if response.content else {}
        if response.status_code != 200:
            endpoint.breaker.failure()
            raise UpstreamError(f"encoder answered {response.status_code}")
        endpoint.breaker.success()
        try:
            states = parse_states(payload)
        except ValueError as exc:
            raise UpstreamError(f"encoder sent an unexpected payload: {exc}") from exc
        tokens = int((payload.get("usage") or {}).get("prompt_tokens") or 0)
        return states, tokens

    async def complete(
        self,
        body: dict[str, Any],
        version: StudentVersion,
        timeout: float | None = None,
        force: bool = False,
    ) -> VoteResult:
        """The version's answer to `body` as a chat completion; raises `UpstreamError`
        (encoder down or failing) or `ServiceUnavailable` (the index is not loaded)."""
        index = self._indexes.get(version.name)
        if index is None:
            raise ServiceUnavailable(f"the vote index of {version.name} is not loaded")
        text = query_text(body.get("messages") or [])
        started = time.perf_counter()
        if text is None:
            raise UpstreamError("the request has no user message for the vote student")
        if isinstance(index, SpanStudent):
            states, tokens = await self.token_states([text], timeout, force)
            answer = index.answer(text, states[0])
            if answer is None:
                raise UpstreamError("the encoder's tokens differ from the span student's")
            payload = span_completion(answer, version.name, tokens)
        else:
            vectors, tokens = await self.embed([text], timeout, force)
            payload = completion(index.vote(vectors[0]), version.name, tokens)
        return VoteResult(payload, (time.perf_counter() - started) * 1000)


def completion(vote: Vote, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A chat completion whose content is the voted label (see the module docstring)."""
    top = [(label, share) for label, share in vote.ranking[:5]]
    return _completion(vote.label, vote.share, top, model, prompt_tokens)


def span_completion(answer: SpanAnswer, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A span student's JSON answer as one token whose probability is its confidence."""
    return _completion(answer.text, answer.confidence, [], model, prompt_tokens)


def _completion(
    content: str, share: float, top: list[tuple[str, float]], model: str, prompt_tokens: int
) -> dict[str, Any]:
    token = {
        "token": content,
        "logprob": log_share(share),
        "bytes": list(content.encode()),
        "top_logprobs": [
            {"token": label, "logprob": log_share(p), "bytes": list(label.encode())}
            for label, p in top
        ],
    }
    return {
        "id": f"chatcmpl-vote-{secrets.token_hex(8)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": {"content": [token]},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 1,
            "total_tokens": prompt_tokens + 1,
        },
    }


async def ask_vote(
    vote: VoteStudent,
    body: dict[str, Any],
    version: StudentVersion,
    *,
    force: bool = False,
) -> StudentAnswer | StudentFailure:
    """`ask_student` for a vote version: the same answer and failure types, scored by the
    vote share (`sequence_prob` of the one label token). Background or not, a failed
    embedding counts against the breaker: it waits behind no decode. A label is checked
    against the request's `response_format` like a generated answer: a closed set learnt
    from plain-text answers says nothing about the JSON this request asks for."""
    try:
        result = await vote.complete(body, version, force=force)
    except UpstreamTimeout as exc:
        return StudentFailure("student_timeout", exc)
    except ServiceUnavailable as exc:
        return StudentFailure("student_down", exc)
    except UpstreamError as exc:
        return StudentFailure("student_error", exc)
    score = score_response(SCORER, result.payload)
    spec = structured_spec(body)
    invalid = answer_problem(result.payload, spec) if spec is not None else None
    return StudentAnswer(result.payload, result.latency_ms, score, SCORER, invalid_output=invalid)
