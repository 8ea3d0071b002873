"""Client libraries an app adopts the proxy with, pointed at the real app: LangChain
(`with_structured_output`, `OpenAIEmbeddings`, the Responses API), instructor in JSON
mode, litellm as a client library and simonw's `llm` CLI; each call's log row checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.dropin.fake_teacher import DIMENSIONS

# litellm would fetch its model price map from the internet on import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# litellm's own TypedDicts make pydantic warn when it first builds their schema.
pytestmark = pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning")

CITY_JSON = '{"name": "Paris", "country": "France"}'
PARIS = {"name": "Paris", "country": "France"}


class City(BaseModel):
    name: str
    country: str


def routes(h: Any, endpoint: str) -> list[tuple[str, str]]:
    return [(r["route"], r["reason"]) for r in h.rows(f"endpoint = '{endpoint}'")]


def test_langchain_structured_output_embeddings_and_responses(dropin: Any) -> None:
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    with dropin(student_text=CITY_JSON) as h:
        common = {"base_url": f"{h.url}/v1", "api_key": "unused", "max_retries": 0}
        chat = ChatOpenAI(model="gpt-4o-mini", **common)
        city = chat.with_structured_output(City).invoke("What is the capital of France?")
        assert city == City(**PARIS)
        embeddings = OpenAIEmbeddings(
            model="text-embedding-3-small", check_embedding_ctx_length=False, **common
        )
        vectors = embeddings.embed_documents(["a", "b"])
        assert [len(v) for v in vectors] == [DIMENSIONS, DIMENSIONS]
        assert len(embeddings.embed_query("a")) == DIMENSIONS
        responses = ChatOpenAI(model="gpt-4o-mini", use_responses_api=True, **common)
        assert responses.invoke("Capital of France?").text == CITY_JSON
        streamed = "".join(c.text for c in responses.stream("Capital of France?"))
        assert streamed == CITY_JSON
        assert routes(h, "/v1/chat/completions") == [("student", "confident")]
        assert routes(h, "/v1/embeddings") == [("passthrough", "not_distilled")] * 2
        assert routes(h, "/v1/responses") == [("student", "confident")] * 2
        assert "structured_outputs" in h.student.requests[0]


def test_langchain_structured_output_falls_back_when_the_json_is_invalid(dropin: Any) -> None:
    from langchain_openai import ChatOpenAI

    with dropin(student_text="It is Paris.", teacher_text=CITY_JSON) as h:
        chat = ChatOpenAI(
            model="gpt-4o-mini", base_url=f"{h.url}/v1", api_key="unused", max_retries=0
        )
        assert chat.with_structured_output(City).invoke("Capital of France?") == City(**PARIS)
        assert routes(h, "/v1/chat/completions") == [("teacher", "invalid_structured_output")]


@pytest.mark.parametrize("mode", ["JSON", "JSON_SCHEMA", "MD_JSON"])
def test_instructor_json_modes(dropin: Any, mode: str) -> None:
    import instructor
    import openai

    with dropin(student_text=CITY_JSON) as h:
        raw = openai.OpenAI(base_url=f"{h.url}/v1", api_key="unused", max_retries=0)
        client = instructor.from_openai(raw, mode=instructor.Mode[mode])
        city = client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=City,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_retries=0,
        )
        assert city.model_dump() == PARIS
        constraint = h.student.requests[-1].get("structured_outputs")
        if mode == "JSON":  # response_format json_object: any JSON object
            assert constraint == {"json": {"type": "object"}}
        elif mode == "JSON_SCHEMA":  # response_format json_schema: the model's schema
            assert constraint is not None and set(constraint["json"]["properties"]) == set(PARIS)
        else:  # markdown JSON asks for no response_format: plain text, scored as such
            assert constraint is None
        assert routes(h, "/v1/chat/completions") == [("student", "confident")]


def test_litellm_as_a_client(dropin: Any) -> None:
    import litellm

    with dropin(student_text="Paris") as h:
        common = {"api_base": f"{h.url}/v1", "api_key": "unused", "num_retries": 0}
        answer = litellm.completion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Capital of France?"}],
            **common,
        )
        assert answer.choices[0].message.content == "Paris"
        chunks = litellm.completion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream=True,
            **common,
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Paris"
        vectors = litellm.embedding(model="openai/text-embedding-3-small", input=["a"], **common)
        assert len(vectors.data[0]["embedding"]) == DIMENSIONS
        assert routes(h, "/v1/chat/completions") == [("student", "confident")] * 2
        assert routes(h, "/v1/embeddings") == [("passthrough", "not_distilled")]


def _llm(user_path: Path, *args: str) -> str:
    llm = Path(sys.executable).with_name("llm")
    # No plugins: the test needs none, and must not depend on what else a venv has
    # (`llm` with its plugins loaded: tests/student/test_llm_cli.py).
    env = {**os.environ, "LLM_USER_PATH": str(user_path), "LLM_LOAD_PLUGINS": ""}
    done = subprocess.run(
        [str(llm), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_llm_cli_plain_and_schema(dropin: Any, tmp_path: Path) -> None:
    with dropin(student_text=CITY_JSON) as h:
        user_path = tmp_path / "llm"
        user_path.mkdir()
        (user_path / "extra-openai-models.yaml").write_text(
            "- model_id: distill\n"
            "  model_name: gpt-4o-mini\n"
            f"  api_base: {h.url}/v1\n"
            "  api_key_name: distill\n"
            "  supports_schema: true\n"
        )
        (user_path / "keys.json").write_text(json.dumps({"distill": "unused"}))
        assert _llm(user_path, "-m", "distill", "Capital of France?").strip() == CITY_JSON
        out = _llm(user_path, "-m", "distill", "--schema", "name, country", "Capital?")
        assert json.loads(out) == PARIS
        rows = h.rows("endpoint = '/v1/chat/completions'")
        assert [(r["route"], r["stream"]) for r in rows] == [("student", True)] * 2
        schema = h.student.requests[-1]["structured_outputs"]["json"]
        assert set(schema["properties"]) == {"name", "country"}


def test_rate_limit_refusals_are_rows(dropin: Any) -> None:
    # litellm honours Retry-After (a minute here) and retries, so the SDK shows the 429.
    import openai

    with dropin(limit_rpm=1) as h:
        client = h.client()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as info:
            client.embeddings.create(model="e", input="x")
        assert info.value.response.headers["retry-after"]
        assert info.value.response.headers["x-request-id"]
        refused = h.rows("status_code = 429")
        assert [(r["route"], r["endpoint"], r["error_code"]) for r in refused] == [
            ("none", "/v1/embeddings", "rate_limit_exceeded")
        ]
