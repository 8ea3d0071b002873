"""Agreement metrics, calibration/coverage tables, the evaluation loop on a fake backend and
the OpenAI backend against a mock transport (fault paths: 400 fallback, 5xx)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainer.agreement import agreement, exact_match, normalize_answer, token_f1
from trainer.backends import BackendError, Generation, OpenAIBackend
from trainer.compare import ADAPTER_METADATA, served_as_of
from trainer.dataset import TrainRow
from trainer.evaluate import (
    ServedAs,
    calibration_bins,
    coverage_table,
    evaluate_model,
    max_new_tokens_for,
)
from trainer.task import PromptPrefix, sha256_text

SYSTEM = "You label banking queries. " * 20


def row(i: int, reference: str, system: str | None = SYSTEM) -> TrainRow:
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"query {i}"}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return TrainRow(
        id=f"r{i}",
        prompt_hash=f"h{i}",
        created_at=None,
        messages=tuple(messages),
        completion=reference,
        teacher_logprobs=None,
        shadow=False,
    )


def content(*logprobs: float) -> list[dict[str, Any]]:
    return [
        {"token": f"t{k}", "logprob": lp, "top_logprobs": [{"token": f"t{k}", "logprob": lp}]}
        for k, lp in enumerate(logprobs)
    ]


class FakeBackend:
    description = "fake"

    def __init__(self, answers: list[Generation]) -> None:
        self.answers = answers
        self.seen: list[list[dict[str, Any]]] = []
        self.closed_set: list[str] | None = None

    def generate(
        self,
        conversations: Sequence[list[dict[str, Any]]],
        max_new_tokens: int,
        top_logprobs: int,
        closed_set: list[str] | None,
    ) -> list[Generation]:
        self.seen = [list(c) for c in conversations]
        self.closed_set = closed_set
        return self.answers[: len(conversations)]

    def close(self) -> None:
        pass


def test_normalisation_and_metrics() -> None:
    assert normalize_answer("  The Card_Arrival! ") == "card arrival"
    assert exact_match("card arrival", "card_arrival") == 1.0
    assert exact_match("verify_identity", "verify_my_identity") == 0.0
    assert token_f1("paris is the capital of france", "the capital of france is paris") == 1.0
    assert 0 < token_f1("paris is big", "paris is the capital") < 1
    assert agreement("Paris", "paris.") == (1.0, "exact_match")
    long_ref = "one two three four five six seven eight nine"
    score, metric = agreement("one two three", long_ref)
    assert metric == "token_f1" and math.isclose(score, 2 * (1 * 3 / 9) / (1 + 3 / 9))


def test_calibration_bins_rise_with_confidence() -> None:
    pairs = [(-2.0 + k * 0.1, 1.0 if k >= 10 else 0.0) for k in range(20)]
    bins = calibration_bins(pairs)
    assert len(bins) == 4 and sum(b["n"] for b in bins) == 20
    assert [b["agreement"] for b in bins] == [0.0, 0.0, 1.0, 1.0]
    assert bins[0]["confidence_max"] < bins[-1]["confidence_min"]


def test_coverage_table_trades_coverage_for_agreement() -> None:
    pairs = [(k / 10, 1.0 if k >= 5 else 0.0) for k in range(10)]
    table = {round(r["target_coverage"], 1): r for r in coverage_table(pairs)}
    assert table[1.0]["coverage"] == 1.0 and table[1.0]["agreement"] == 0.5
    assert table[0.5]["threshold"] == 0.5 and table[0.5]["agreement"] == 1.0
    assert table[0.1]["n"] == 1


def test_evaluate_model_serves_like_the_proxy() -> None:
    rows = [row(1, "card_arrival"), row(2, "lost_or_stolen_card"), row(3, "card_arrival")]
    prefix = PromptPrefix(SYSTEM, sha256_text(SYSTEM), 1.0, pruned=True)
    backend = FakeBackend(
        [
            Generation("card_arrival", content(-0.1, -0.2)),
            Generation("card_arrival", content(-2.0)),
            Generation("", []),
        ]
    )
    labels = ["card_arrival", "lost_or_stolen_card"]
    summary = evaluate_model(backend, rows, ServedAs(prefix, labels), 16, 5)
    assert all(c[0]["role"] == "user" for c in backend.seen)  # pruned prompt stripped
    assert backend.closed_set == labels
    assert summary["n"] == 3 and math.isclose(summary["agreement"], 1 / 3)
    assert summary["metric"] == "exact_match" and summary["primary_scorer"] == "sequence_prob"
    assert summary["prompt_pruned"] and summary["closed_set"]
    first = summary["examples"][0]
    assert math.isclose(first["confidence"]["sequence_prob"], math.exp(-0.3))
    assert summary["examples"][2]["confidence"]["mean_logprob"] is None  # empty: unscorable
    json.dumps(summary, allow_nan=False)  # the report is strict JSON


def test_evaluate_model_plain_base_keeps_the_full_prompt() -> None:
    backend = FakeBackend([Generation("x", content(-1.0))])
    evaluate_model(backend, [row(1, "y")], ServedAs(), 16, 5)
    assert backend.seen[0][0]["content"] == SYSTEM and backend.closed_set is None


def test_max_new_tokens_follows_references() -> None:
    assert max_new_tokens_for(["card_arrival"], 256) == 22
    assert max_new_tokens_for(["x" * 2000], 256) == 256


def test_served_as_reads_adapter_metadata(tmp_path: Path) -> None:
    assert served_as_of(None) == ServedAs()
    assert served_as_of(tmp_path) == ServedAs()
    meta = {
        "closed_set": ["a", "b"],
        "prompt_prefix": {"text": SYSTEM, "sha256": "s", "share": 1.0, "pruned": True},
    }
    (tmp_path / ADAPTER_METADATA).write_text(json.dumps(meta))
    served = served_as_of(tmp_path)
    assert served.closed_set == ["a", "b"]
    assert served.prompt_prefix is not None and served.prompt_prefix.text == SYSTEM


def _completion(text: str, logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "choices": [
            {
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": {"content": logprobs},
            }
        ]
    }


def test_openai_backend_request_and_choice_fallback() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "structured_outputs" in body:  # an old vLLM: only guided_choice
            return httpx.Response(400, json={"error": {"message": "unknown field"}})
        return httpx.Response(200, json=_completion("yes", content(-0.05)))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    backend = OpenAIBackend("http://vllm/v1/", "student", concurrency=1, client=client)
    out = backend.generate([[{"role": "user", "content": "q"}]] * 2, 8, 3, ["yes", "no"])
    assert [g.text for g in out] == ["yes", "yes"]
    assert out[0].logprobs[0]["logprob"] == -0.05
    first, retry, second = bodies
    assert first["structured_outputs"] == {"choice": ["yes", "no"]}
    assert first["logprobs"] is True and first["top_logprobs"] == 3
    assert first["temperature"] == 0.0 and first["max_tokens"] == 8
    assert retry["guided_choice"] == ["yes", "no"] and "structured_outputs" not in retry
    assert "structured_outputs" not in second  # remembered: no second 400


def test_openai_backend_errors_are_backend_errors() -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(503, text="overloaded"))
    )
    backend = OpenAIBackend("http://vllm/v1", "student", client=client)
    with pytest.raises(BackendError, match="503"):
        backend.generate([[{"role": "user", "content": "q"}]], 8, 0, None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = OpenAIBackend(
        "http://vllm/v1", "s", client=httpx.Client(transport=httpx.MockTransport(refuse))
    )
    with pytest.raises(BackendError, match="ConnectError"):
        down.generate([[{"role": "user", "content": "q"}]], 8, 0, None)
