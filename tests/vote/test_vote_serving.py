"""The vote student through the real app (official openai SDK), with a fake encoder:
the label served as a chat completion with the vote share as its confidence, streaming,
the fallback when the share is low or the encoder fails, and the log row."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from proxy.serving.student_state import StudentVersion
from tests.fakes import FakeUpstream, error_response, json_response
from trainer.vote import VoteIndex

LABELS = ("card_arrival", "refund")
# No shadow samples: the tests count every teacher request.
VOTE_SETTINGS: dict[str, Any] = {
    "encoder_url": "http://encoder.test/v1",
    "target_agreement": 0.8,
    "shadow_rate": 0.0,
    # These tests set a version's threshold by hand: no recalibration (from no pairs) may
    # close it mid-test on a slow machine.
    "calibration_interval": 3600.0,
}
VECTORS = {
    "where is my card": [1.0, 0.0],
    "my card has not come": [0.95, 0.05],
    "i want my money back": [0.0, 1.0],
    "refund please": [0.05, 0.95],
    "card or refund": [0.7, 0.7],
}


class FakeEncoderAndStudent(FakeUpstream):
    """The student's fake vLLM that also answers /pooling (the encoder's vLLM, token
    pooler): one token state per text, so its mean is the text's vector."""

    def __init__(self) -> None:
        super().__init__(default_text="generated answer", logprob=-3.0)
        self.embedded: list[list[str]] = []
        self.encoder_down = False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/pooling":
            if self.encoder_down:
                return error_response(500, "encoder broke")
            texts = httpx.Response(200, content=request.content).json()["input"]
            self.embedded.append(texts)
            data = [
                {"index": i, "object": "pooling", "data": [VECTORS[t]]} for i, t in enumerate(texts)
            ]
            return json_response(200, {"data": data, "usage": {"prompt_tokens": 7}})
        return await super().handle(request)


def _vote_version(h: Any, tmp_path: Path, threshold: float) -> StudentVersion:
    train = ["where is my card", "my card has not come", "i want my money back", "refund please"]
    vectors = np.array([VECTORS[t] for t in train], dtype=np.float32)
    answers = ["card_arrival", "card_arrival", "refund", "refund"]
    VoteIndex.fit(vectors, answers, LABELS, k=2, power=1.0, encoder="minilm").save(tmp_path / "ix")
    version = StudentVersion(
        name="vote-r1", version="r1", threshold=threshold, scorer="sequence_prob",
        closed_set=LABELS, kind="vote",
    )  # fmt: skip
    h.app.state.vote.load(version.name, tmp_path / "ix")
    h.app.state.active.update(version)
    deadline = time.monotonic() + 5
    while not h.app.state.vote.available() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert h.app.state.vote.available()
    return version


def _ask(h: Any, text: str, **kwargs: Any) -> Any:
    return h.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Label it."}, {"role": "user", "content": text}],
        **kwargs,
    )


def test_a_confident_vote_serves_the_label(make_proxy: Any, tmp_path: Path) -> None:
    student = FakeEncoderAndStudent()
    with make_proxy(student=student, **VOTE_SETTINGS) as h:
        _vote_version(h, tmp_path, threshold=0.9)
        raw = _ask(h, "where is my card", logprobs=True, top_logprobs=2)
        answer = raw.parse()
        assert raw.headers["x-distill-route"] == "student"
        assert raw.headers["x-distill-reason"] == "confident"
        assert float(raw.headers["x-distill-confidence"]) == pytest.approx(1.0)
        assert answer.choices[0].message.content == "card_arrival"
        assert answer.choices[0].finish_reason == "stop" and answer.model == "gpt-4o-mini"
        assert answer.choices[0].logprobs.content[0].token == "card_arrival"
        assert answer.usage.prompt_tokens == 7
        assert student.embedded == [["where is my card"]]  # the user message only
        assert student.requests == [] and h.teacher.requests == []  # no decode, no teacher
        row = h.rows(at_least=1)[0]
        assert row["route"] == "student" and row["student_text"] == "card_arrival"
        assert row["scorer"] == "sequence_prob" and row["confidence"] == pytest.approx(1.0)
        assert row["student_version"] == "r1" and row["student_model"] == "vote-r1"


def test_a_streamed_vote_answer_is_the_same_label(make_proxy: Any, tmp_path: Path) -> None:
    student = FakeEncoderAndStudent()
    with make_proxy(
        student=student, encoder_url="http://encoder.test/v1", target_agreement=0.8
    ) as h:
        _vote_version(h, tmp_path, threshold=0.9)
        client: openai.OpenAI = h.client()
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "refund please"}],
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "refund"


def test_a_split_vote_falls_back_to_the_teacher(make_proxy: Any, tmp_path: Path) -> None:
    student = FakeEncoderAndStudent()
    with make_proxy(
        student=student, encoder_url="http://encoder.test/v1", target_agreement=0.8
    ) as h:
        _vote_version(h, tmp_path, threshold=0.9)
        raw = _ask(h, "card or refund")
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "low_confidence"
        assert float(raw.headers["x-distill-confidence"]) == pytest.approx(0.5, abs=0.05)
        row = h.rows(at_least=1)[0]
        assert row["student_text"] in LABELS and row["teacher_text"] == "The capital is Paris."


def test_an_encoder_failure_falls_back_and_is_logged(make_proxy: Any, tmp_path: Path) -> None:
    student = FakeEncoderAndStudent()
    with make_proxy(
        student=student, encoder_url="http://encoder.test/v1", target_agreement=0.8
    ) as h:
        _vote_version(h, tmp_path, threshold=0.5)
        student.encoder_down = True
        raw = _ask(h, "where is my card")
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "student_error"
        row = h.rows(at_least=1)[0]
        assert row["reason"] == "student_error" and "encoder answered 500" in row["error"]


def test_a_vote_label_that_is_not_the_requested_json_goes_to_the_teacher(
    make_proxy: Any, tmp_path: Path
) -> None:
    """Served only when it validates: the vote's label is checked against the request's
    `response_format` like a generated answer, however confident the vote."""
    student = FakeEncoderAndStudent()
    schema = {"type": "object", "properties": {"intent": {"type": "string"}}}
    with make_proxy(student=student, **VOTE_SETTINGS) as h:
        _vote_version(h, tmp_path, threshold=0.5)
        raw = _ask(
            h,
            "where is my card",
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "invalid_structured_output"
        row = h.rows(at_least=1)[0]
        assert (row["student_text"], row["reason"]) == ("card_arrival", "invalid_structured_output")
