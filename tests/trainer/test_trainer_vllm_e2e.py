"""End-to-end tier: a real trainer run on the real default student (SmolLM2-135M), evaluated
through a real vLLM (CPU build) with the candidate hot-loaded as a LoRA: the adapter loads and
changes vLLM's answers; the choice constraint keeps answers inside a closed set.

    flock /tmp/heavy.lock pytest -m e2e tests/trainer/test_trainer_vllm_e2e.py

About 4 minutes on 2 cores (vLLM start ~1 min, training ~1 min, evaluation).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.settings import Settings
from proxy.student.command import (
    build_command,
    child_env_overrides,
    detect_device,
    vllm_distribution,
)
from proxy.student.model import StudentModelError, resolve_base_model
from tests.paths import E2E_DATA
from tests.trainer.trainer_rows import build_row, write_snapshot
from trainer.backends import OpenAIBackend
from trainer.confidence import sequence_prob
from trainer.config import TrainConfig

pytestmark = pytest.mark.e2e

# E2E_DATA (tests/paths.py) is shared with tests/e2e (model cache).
SERVED = "smollm2-base"
ANSWER = "Pineapple Protocol 7"
STARTUP_TIMEOUT_S = 900.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        return Path(resolve_base_model(Settings(data_dir=E2E_DATA)))
    except StudentModelError as exc:
        pytest.fail(f"default model conversion failed: {exc}")


@pytest.fixture(scope="module")
def vllm_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if vllm_distribution() is None:
        pytest.skip("vLLM is not importable")
    settings = Settings(data_dir=E2E_DATA)
    port = _free_port()
    cmd = build_command(settings, model=str(model_dir), served_name=SERVED, port=port)
    env = {**os.environ, **child_env_overrides(settings, detect_device())}
    log = (tmp_path_factory.mktemp("vllm") / "vllm.log").open("wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"vLLM exited with {proc.returncode}; see {log.name}"
            try:
                if httpx.get(f"{url}/models", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vLLM not ready after {STARTUP_TIMEOUT_S} s; see {log.name}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _ask(url: str, model: str, question: str) -> str:
    resp = httpx.post(
        f"{url}/chat/completions",
        trust_env=False,
        timeout=300,
        json={
            "model": model,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": 16,
            "temperature": 0,
        },
    )
    resp.raise_for_status()
    return str(resp.json()["choices"][0]["message"]["content"])


def test_candidate_is_evaluated_through_vllm_and_changes_answers(
    vllm_url: str, model_dir: Path, tmp_path: Path
) -> None:
    from trainer.compare import EvalServer
    from trainer.run import run_distillation

    rows = [
        build_row(i, question=f"Give me the code for item {i}.", answer=ANSWER) for i in range(40)
    ]
    snapshot = write_snapshot(tmp_path / "snapshot.parquet", rows)
    cfg = TrainConfig(
        min_rows=10, min_eval_rows=2, eval_fraction=0.2, epochs=3.0, lr=1e-3, closed_set_max=0
    )
    report = run_distillation(
        snapshot,
        tmp_path / "run",
        cfg,
        model_dir,
        eval_server=EvalServer(vllm_url, SERVED),
        run_id="e2e",
    )
    candidate, base = report["evaluation"]["candidate"], report["evaluation"]["base"]
    assert candidate["backend"].startswith("openai:") and "candidate-e2e" in candidate["backend"]
    assert base["agreement"] == 0.0
    assert candidate["agreement"] >= 0.8, candidate["examples"]
    # The throwaway name was unloaded again; the base still answers as before.
    models = httpx.get(f"{vllm_url}/models", trust_env=False).json()["data"]
    assert [m["id"] for m in models] == [SERVED]
    assert ANSWER not in _ask(vllm_url, SERVED, "Give me the code for item 3.")
    # Loaded under a new name, the saved adapter answers like the teacher in vLLM.
    load = httpx.post(
        f"{vllm_url}/load_lora_adapter",
        trust_env=False,
        timeout=300,
        json={"lora_name": "promoted-e2e", "lora_path": str(tmp_path / "run" / "adapter")},
    )
    assert load.status_code == 200, load.text
    assert _ask(vllm_url, "promoted-e2e", "Give me the code for item 777.") == ANSWER


def test_closed_set_constrains_vllm_answers(vllm_url: str) -> None:
    labels = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
    backend = OpenAIBackend(vllm_url, SERVED)
    try:
        out: list[Any] = backend.generate(
            [
                [{"role": "user", "content": "My card has not come yet, where is it?"}],
                [{"role": "user", "content": "Tell me a long story about dragons."}],
            ],
            16,
            5,
            labels,
        )
    finally:
        backend.close()
    assert all(g.text in labels for g in out), [g.text for g in out]
    for g in out:  # confidence of a closed-set answer: the probability of the chosen label
        assert g.logprobs and 0 < sequence_prob(g.logprobs) <= 1
