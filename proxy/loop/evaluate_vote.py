"""Scoring a vote version on held-out rows: the queries embedded in batches on the encoder's
vLLM (the server that embeds them at serving time), voted over the version's index, each
answer scored as it would be served (`sequence_prob` of the voted label = its vote share).
One pass over a few hundred rows takes seconds, so a round's evaluation costs less than the
generative student's training ever did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from proxy.errors import ProxyError
from proxy.loop.artifacts import EvalRow
from proxy.loop.calibration import agrees
from proxy.loop.evaluate import EvalItem, EvalResult, EvaluationError
from proxy.serving.records import first_text
from proxy.serving.student_state import StudentVersion
from proxy.serving.vote_student import SCORER, VoteStudent, completion, span_completion
from trainer.confidence import score_response
from trainer.encoder import mean_pool
from trainer.spans import SpanStudent
from trainer.vote import VoteIndex, query_text

BATCH = 64


async def evaluate_vote(
    vote: VoteStudent, index: VoteIndex | SpanStudent, version: StudentVersion,
    rows: Sequence[EvalRow], timeout: float,
) -> EvalResult:  # fmt: skip
    """Agreement of the vote (or span) version with the teacher on `rows`; raises
    `EvaluationError` when the encoder cannot embed them."""
    texts = [query_text(r.body.get("messages") or []) for r in rows]
    usable = [i for i, t in enumerate(texts) if t]
    items: dict[int, EvalItem] = {
        i: EvalItem(rows[i].id, None, None, False, "no user message")
        for i in range(len(rows))
        if i not in usable
    }
    for start in range(0, len(usable), BATCH):
        chunk = usable[start : start + BATCH]
        try:
            states, _tokens = await vote.token_states([str(texts[i]) for i in chunk], timeout, True)
        except ProxyError as exc:
            raise EvaluationError(f"the encoder could not embed the eval rows: {exc}") from exc
        for i, payload in zip(chunk, _answers(index, version, chunk, texts, states), strict=True):
            if payload is None:
                items[i] = EvalItem(rows[i].id, None, None, False, "tokens differ")
                continue
            text = first_text(payload)
            agree = text is not None and agrees(text, rows[i].reference)
            items[i] = EvalItem(rows[i].id, text, score_response(SCORER, payload), agree)
    ordered = [items[i] for i in range(len(rows))]
    return EvalResult(version.name, version.version, SCORER, ordered)


def _answers(
    index: VoteIndex | SpanStudent, version: StudentVersion, chunk: Sequence[int],
    texts: Sequence[str | None], states: Sequence[np.ndarray],
) -> list[dict[str, Any] | None]:  # fmt: skip
    """The completions the version would serve for the chunk's rows (None: cannot answer)."""
    if isinstance(index, VoteIndex):
        return [completion(b, version.name, 0) for b in index.vote_many(mean_pool(states))]
    answers = [index.answer(str(texts[i]), s) for i, s in zip(chunk, states, strict=True)]
    return [span_completion(a, version.name, 0) if a else None for a in answers]
