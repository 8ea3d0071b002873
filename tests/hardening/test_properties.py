"""Property tests: the request models and the SSE parser/accumulator under arbitrary input."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from proxy.protocol import ChatCompletionRequest
from proxy.serving.sse import ChunkAccumulator, SSEParser, completion_to_chunks, encode

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "model",
    "messages",
    "stream",
    "n",
    "max_tokens",
    "temperature",
    "top_p",
    "logprobs",
    "top_logprobs",
    "stop",
    "stream_options",
    "tools",
    "metadata",
    "store",
]


@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8))
@FAST
def test_request_model_accepts_or_raises_validation_error_only(body: dict[str, Any]) -> None:
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        assert exc.errors()  # a located, reportable error


messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
            "content": st.text(max_size=50) | st.none(),
        }
    ),
    min_size=1,
    max_size=4,
)
valid_requests = st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=20), "messages": messages},
    optional={
        "n": st.integers(1, 128),
        "max_tokens": st.integers(1, 1_000_000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "stream": st.booleans(),
        "top_logprobs": st.integers(0, 20),
        "stop": st.text(max_size=5) | st.lists(st.text()),
        "x_unknown": json_values,
    },
)


@given(valid_requests)
@FAST
def test_valid_requests_validate_and_keep_unknown_fields(body: dict[str, Any]) -> None:
    model = ChatCompletionRequest.model_validate(body)
    if "x_unknown" in body:
        assert model.model_extra == {"x_unknown": body["x_unknown"]}


texts = st.text(max_size=60)
completions = st.builds(
    lambda contents, usage: {
        "id": "c1",
        "created": 1,
        "model": "m",
        "object": "chat.completion",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": c},
                "finish_reason": "stop" if i % 2 == 0 else "length",
                "logprobs": None,
            }
            for i, c in enumerate(contents)
        ],
        "usage": {"prompt_tokens": usage, "completion_tokens": usage, "total_tokens": 2 * usage},
    },
    st.lists(texts.filter(bool), min_size=1, max_size=3),
    st.integers(0, 10_000),
)


def _wire(payload: dict[str, Any], crlf: bool, comments: bool) -> tuple[bytes, list[str]]:
    chunks = list(completion_to_chunks(payload, include_usage=True, keep_logprobs=False))
    data = [orjson.dumps(c).decode() for c in chunks] + ["[DONE]"]
    parts = []
    for chunk in chunks:
        event = encode(chunk)
        if comments:
            event = b": keep-alive\n" + event
        parts.append(event.replace(b"\n", b"\r\n") if crlf else event)
    parts.append(b"data: [DONE]\r\n\r\n" if crlf else b"data: [DONE]\n\n")
    return b"".join(parts), data


@given(completions, st.lists(st.integers(0, 10_000), max_size=30), st.booleans(), st.booleans())
@FAST
def test_any_byte_split_of_a_stream_parses_to_the_same_events(
    payload: dict[str, Any], cuts: list[int], crlf: bool, comments: bool
) -> None:
    wire, expected = _wire(payload, crlf, comments)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    parser = SSEParser()
    events: list[str] = []
    start = 0
    for point in [*points, len(wire)]:
        events += parser.feed(wire[start:point])
        start = point
    events += parser.close()
    assert events == expected


@given(completions)
@FAST
def test_accumulator_rebuilds_the_completion_from_its_chunks(payload: dict[str, Any]) -> None:
    acc = ChunkAccumulator()
    for chunk in completion_to_chunks(payload, include_usage=True, keep_logprobs=False):
        acc.add(orjson.loads(orjson.dumps(chunk)))
    result = acc.result()
    assert result["usage"] == payload["usage"] and acc.saw_finish
    for got, want in zip(result["choices"], payload["choices"], strict=True):
        assert got["message"]["content"] == want["message"]["content"]
        assert got["finish_reason"] == want["finish_reason"]


@given(st.lists(st.binary(max_size=200), max_size=20))
@FAST
def test_garbage_bytes_never_break_the_parser(pieces: list[bytes]) -> None:
    parser = SSEParser()
    for piece in pieces:
        assert all(isinstance(e, str) for e in parser.feed(piece))
    parser.close()


@given(
    st.dictionaries(
        st.sampled_from(["choices", "usage", "id", "model"]) | st.text(max_size=5),
        json_values,
        max_size=5,
    )
)
@FAST
def test_garbage_chunks_never_break_the_accumulator(chunk: dict[str, Any]) -> None:
    acc = ChunkAccumulator()
    acc.add(chunk)
    acc.add({"choices": [{"index": 0, "delta": chunk, "logprobs": chunk, "finish_reason": None}]})
    assert isinstance(acc.result()["choices"], list)


def test_hostile_indexes_neither_allocate_nor_mix_types() -> None:
    acc = ChunkAccumulator()
    acc.add({"choices": [{"index": 10**12, "delta": {"content": "x"}}]})
    acc.add({"choices": [{"index": "0", "delta": {"content": "y"}}]})
    acc.add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 10**12}, 5]}}]})
    acc.add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": 7}]}}]})
    choices = acc.result()["choices"]
    assert len(choices) == 1 and len(choices[0]["message"]["tool_calls"]) == 1
