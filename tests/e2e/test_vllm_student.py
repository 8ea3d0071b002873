"""The real vLLM student, directly (no proxy): chat with logprobs, streaming, runtime LoRA
loading, supervision of a crashed vLLM, and the numbers of the closing note."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from vllm_session import RealVLLM

pytestmark = pytest.mark.e2e

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]

STORY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Tell me a long story about a dragon."}
]


def _client(vllm: RealVLLM) -> OpenAI:
    return OpenAI(base_url=vllm.base_url, api_key="unused", timeout=300, max_retries=0)


def _root(vllm: RealVLLM) -> str:
    return vllm.base_url.removesuffix("/v1")


def test_chat_completion_with_logprobs(real_vllm: RealVLLM) -> None:
    resp = _client(real_vllm).chat.completions.create(
        model=real_vllm.model_name, messages=QUESTION, max_tokens=32, temperature=0,
        logprobs=True, top_logprobs=3,
    )  # fmt: skip
    choice = resp.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.logprobs is not None and choice.logprobs.content
    for tok in choice.logprobs.content:
        assert tok.logprob <= 0.0
        assert len(tok.top_logprobs) == 3
    assert resp.usage is not None and resp.usage.completion_tokens == len(choice.logprobs.content)


def test_streaming_chat(real_vllm: RealVLLM) -> None:
    stream = _client(real_vllm).chat.completions.create(
        model=real_vllm.model_name, messages=QUESTION, max_tokens=32, temperature=0, stream=True
    )
    pieces, finish = [], None
    for chunk in stream:
        assert isinstance(chunk, ChatCompletionChunk)
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "Paris" in "".join(pieces) and len(pieces) > 2
    assert finish in ("stop", "length")


def test_lora_load_endpoint_is_enabled(real_vllm: RealVLLM) -> None:
    resp = httpx.post(
        f"{_root(real_vllm)}/v1/load_lora_adapter",
        json={"lora_name": "missing-adapter", "lora_path": "/nonexistent/adapter"},
        timeout=60, trust_env=False,
    )  # fmt: skip
    assert 400 <= resp.status_code < 500
    # vLLM answers a bad path with its own error envelope (status 404 in some versions);
    # a missing route would be FastAPI's {"detail": "Not Found"}.
    body = resp.json()
    assert "detail" not in body and "missing-adapter" in body["error"]["message"]


@pytest.fixture(scope="module")
def blank_adapter(real_vllm: RealVLLM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained rank-8 LoRA adapter for the default model (built in a subprocess: torch)."""
    out = tmp_path_factory.mktemp("adapter")
    script = textwrap.dedent(
        """
        import sys
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM
        base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                         task_type="CAUSAL_LM")
        get_peft_model(base, cfg).save_pretrained(sys.argv[2])
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, str(real_vllm.model_dir), str(out)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    return out


def test_lora_adapter_hot_loads_and_serves(real_vllm: RealVLLM, blank_adapter: Path) -> None:
    name = f"e2e-adapter-{int(time.time())}"
    root = _root(real_vllm)
    load = httpx.post(
        f"{root}/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(blank_adapter)},
        timeout=120, trust_env=False,
    )  # fmt: skip
    assert load.status_code == 200, load.text
    try:
        models = [m.id for m in _client(real_vllm).models.list()]
        assert name in models and real_vllm.model_name in models
        resp = _client(real_vllm).chat.completions.create(
            model=name, messages=QUESTION, max_tokens=16, temperature=0
        )
        assert resp.model == name and "Paris" in (resp.choices[0].message.content or "")
    finally:
        httpx.post(
            f"{root}/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60, trust_env=False
        )


def test_single_stream_throughput(real_vllm: RealVLLM, record_numbers: Any) -> None:
    started = time.monotonic()
    resp = _client(real_vllm).chat.completions.create(
        model=real_vllm.model_name,
        messages=STORY,
        max_tokens=128, temperature=0, extra_body={"ignore_eos": True},
    )  # fmt: skip
    took = time.monotonic() - started
    assert resp.usage is not None and resp.usage.completion_tokens == 128
    tokens_per_s = 128 / took
    record_numbers({"vllm_direct_tokens_per_s": tokens_per_s, "vllm_direct_128_tokens_s": took})
    print(
        f"\n[e2e] vLLM cold start {real_vllm.cold_start_s:.1f} s, first request "
        f"{real_vllm.first_request_s:.1f} s, one stream {tokens_per_s:.1f} tokens/s (direct)"
    )
    assert tokens_per_s > 1.0


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (vLLM's engine core runs as a child of the API server)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_crashed_vllm_is_restarted_by_the_supervisor(
    real_vllm: RealVLLM, record_numbers: Any
) -> None:
    """Runs last in this module: it costs a second cold start."""
    sup = real_vllm.supervisor
    before = sup.restarts
    pid = sup.pid
    assert pid is not None
    helpers = _children(pid)
    assert helpers, "expected vLLM's engine-core helper process"
    started = time.monotonic()
    real_vllm.kill()
    deadline = time.monotonic() + 30
    while sup.ready and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sup.ready
    assert real_vllm.wait_ready(), f"not back: {sup.reason}"
    record_numbers({"vllm_restart_after_kill_s": time.monotonic() - started})
    assert sup.restarts == before + 1 and sup.pid not in (None, pid)
    assert all(_gone(h) for h in helpers), "the killed vLLM's helpers were orphaned"
    assert real_vllm.base_url == sup.url
    real_vllm.warm_up()  # leave it as fast as we found it
