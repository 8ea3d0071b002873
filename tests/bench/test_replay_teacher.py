"""The replay teacher: accuracy, plausible mistakes, OpenAI-shaped answers and errors."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from bench.banking77.data import Example, build_messages, load_categories, load_examples
from bench.banking77.replay_teacher import ReplayTeacher, TeacherConfig, create_app
from bench.banking77.tokens import CACHE_DIR, SMOLLM2_JSON, SimpleTokenizer, load_tokenizer
from bench.harness.label_oracle import ReplayOracle
from tests.server_thread import running

KEY = "sk-replay-test"


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return load_examples()


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return load_categories()


@pytest.fixture(scope="module")
def oracle(examples: list[Example], labels: list[str]) -> ReplayOracle:
    return ReplayOracle(examples, labels, accuracy=0.92, seed=0)


@pytest.fixture()
def teacher(oracle: ReplayOracle) -> ReplayTeacher:
    cfg = TeacherConfig(latency_ms=0.0, api_key=KEY, price_in=1.0, price_out=2.0)
    return ReplayTeacher(cfg, oracle, SimpleTokenizer())


@pytest.fixture()
async def http(teacher: ReplayTeacher) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(teacher))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://teacher", headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client


def _body(text: str, labels: list[str], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": build_messages(text, labels), **extra}


def test_accuracy_close_to_configured(oracle: ReplayOracle, examples: list[Example]) -> None:
    decisions = [oracle.decide(ex.text) for ex in examples]
    acc = sum(d.correct for d in decisions) / len(decisions)
    assert abs(acc - 0.92) < 0.01
    assert all(d.gold == ex.label for d, ex in zip(decisions, examples, strict=True))


def test_accuracy_follows_the_setting(examples: list[Example], labels: list[str]) -> None:
    low = ReplayOracle(examples[:2000], labels, accuracy=0.5, seed=3)
    acc = sum(low.decide(ex.text).correct for ex in examples[:2000]) / 2000
    assert abs(acc - 0.5) < 0.04


def test_mistakes_are_plausible_confusions(oracle: ReplayOracle, examples: list[Example]) -> None:
    wrong = [d for d in (oracle.decide(ex.text) for ex in examples) if not d.correct]
    assert len(wrong) > 500
    for d in wrong:
        assert d.gold is not None and d.label != d.gold
        assert d.label in oracle.labels
        assert d.label in {other for other, _ in oracle.neighbours[d.gold]}


def test_decisions_are_deterministic(examples: list[Example], labels: list[str]) -> None:
    a = ReplayOracle(examples, labels, accuracy=0.92, seed=0)
    b = ReplayOracle(examples, labels, accuracy=0.92, seed=0)
    assert [a.decide(e.text) for e in examples[:300]] == [b.decide(e.text) for e in examples[:300]]


def test_unknown_query_gets_a_label(oracle: ReplayOracle) -> None:
    d = oracle.decide("my physical card still has not arrived in the post, when will it come")
    assert d.gold is None and d.label in oracle.labels


@pytest.mark.anyio
async def test_non_stream_answer_with_logprobs(
    http: httpx.AsyncClient, labels: list[str], examples: list[Example]
) -> None:
    r = await http.post(
        "/v1/chat/completions",
        json=_body(examples[0].text, labels, logprobs=True, top_logprobs=5),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    content = choice["message"]["content"]
    assert content in labels
    assert choice["finish_reason"] == "stop"
    tokens = choice["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == content
    for t in tokens:
        top = t["top_logprobs"]
        assert len(top) == 5
        assert top[0]["token"] == t["token"] and top[0]["logprob"] == t["logprob"]
        assert [x["logprob"] for x in top] == sorted((x["logprob"] for x in top), reverse=True)
        assert len({x["token"] for x in top}) == 5
        assert all(x["logprob"] <= 0 for x in top)
        assert sum(math.exp(x["logprob"]) for x in top) <= 1.0 + 1e-9
        assert t["bytes"] == list(t["token"].encode())
    usage = body["usage"]
    assert usage["completion_tokens"] == len(tokens)
    assert usage["prompt_tokens"] > 400  # the 77-label system prompt
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.anyio
async def test_no_logprobs_unless_asked(http: httpx.AsyncClient, labels: list[str]) -> None:
    r = await http.post("/v1/chat/completions", json=_body("I lost my card", labels))
    assert r.status_code == 200
    assert r.json()["choices"][0]["logprobs"] is None


@pytest.mark.anyio
async def test_torn_teacher_gives_the_gold_label_mass(
    http: httpx.AsyncClient, labels: list[str], oracle: ReplayOracle, examples: list[Example]
) -> None:
    found = 0
    for ex in examples[:400]:
        d = oracle.decide(ex.text)
        chosen, gold = SimpleTokenizer().split(d.label), SimpleTokenizer().split(ex.label)
        if d.correct or chosen[0] == gold[0]:
            continue
        r = await http.post(
            "/v1/chat/completions", json=_body(ex.text, labels, logprobs=True, top_logprobs=3)
        )
        first = r.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        assert first[1]["token"] == gold[0]  # the missed label is the runner-up
        assert first[0]["logprob"] > math.log(0.49)
        found += 1
    assert found >= 3


@pytest.mark.anyio
async def test_stream_format_and_usage(
    http: httpx.AsyncClient, labels: list[str], examples: list[Example]
) -> None:
    body = _body(
        examples[5].text,
        labels,
        logprobs=True,
        top_logprobs=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    r = await http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"
    chunks = [orjson.loads(f[6:]) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    plain = await http.post("/v1/chat/completions", json=_body(examples[5].text, labels))
    assert text == plain.json()["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    with_lp = [c for c in chunks if c["choices"] and c["choices"][0]["logprobs"]]
    assert len(with_lp) == chunks[-1]["usage"]["completion_tokens"]


@pytest.mark.anyio
async def test_n_choices(http: httpx.AsyncClient, labels: list[str]) -> None:
    r = await http.post("/v1/chat/completions", json=_body("I lost my card", labels, n=3))
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert all(c["message"]["content"] in labels for c in body["choices"])


@pytest.mark.anyio
async def test_max_tokens_truncates(http: httpx.AsyncClient, labels: list[str]) -> None:
    r = await http.post("/v1/chat/completions", json=_body("I lost my card", labels, max_tokens=1))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"n": 0}, "n"),
    ],
)
async def test_invalid_parameters_are_400(
    http: httpx.AsyncClient, labels: list[str], extra: dict[str, Any], param: str
) -> None:
    r = await http.post("/v1/chat/completions", json=_body("I lost my card", labels, **extra))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"]


@pytest.mark.anyio
async def test_malformed_and_unauthorised(http: httpx.AsyncClient, labels: list[str]) -> None:
    r = await http.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    r = await http.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 400
    r = await http.post(
        "/v1/chat/completions", json=_body("x", labels), headers={"Authorization": "Bearer no"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.anyio
async def test_stats_count_spend(http: httpx.AsyncClient, labels: list[str]) -> None:
    r = await http.post("/v1/chat/completions", json=_body("I lost my card", labels))
    usage = r.json()["usage"]
    stats = (await http.get("/stats")).json()
    assert stats["requests"] == 1
    expected = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert stats["cost_usd"] == pytest.approx(expected)


@pytest.fixture()
def live_teacher(teacher: ReplayTeacher) -> Iterator[str]:
    with running(create_app(teacher)) as url:
        yield url


def test_official_sdk_over_loopback(
    live_teacher: str, labels: list[str], examples: list[Example]
) -> None:
    client = openai.OpenAI(base_url=f"{live_teacher}/v1", api_key=KEY, max_retries=0)
    try:
        done = client.chat.completions.create(
            model="gpt-test",
            messages=build_messages(examples[1].text, labels),  # type: ignore[arg-type]
            logprobs=True,
            top_logprobs=20,
        )
        assert done.choices[0].message.content in labels
        assert done.choices[0].logprobs is not None
        assert len(done.choices[0].logprobs.content[0].top_logprobs) == 20  # type: ignore[index]
        stream = client.chat.completions.create(
            model="gpt-test",
            messages=build_messages(examples[1].text, labels),  # type: ignore[arg-type]
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == done.choices[0].message.content
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="gpt-test",
                messages=build_messages("x", labels),  # type: ignore[arg-type]
                logprobs=True,
                top_logprobs=25,
            )
        assert err.value.status_code == 400
    finally:
        client.close()


def test_smollm2_tokens_spell_the_labels(labels: list[str]) -> None:
    if not (CACHE_DIR / SMOLLM2_JSON).is_file():
        pytest.skip("SmolLM2 tokenizer not extracted yet (first replay-teacher start does it)")
    tok = load_tokenizer("smollm2")
    assert tok.name == "smollm2"
    for label in labels:
        pieces = tok.split(label)
        assert "".join(pieces) == label
        assert len(pieces) == tok.count(label)
