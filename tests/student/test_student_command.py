"""The vLLM command line, its environment and the build/device detection."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from proxy.settings import Settings
from proxy.student import command
from proxy.student.command import build_command, child_env_overrides, detect_device
from proxy.student.process import last_log_line


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_command_uses_python_module_and_settings() -> None:
    s = Settings(
        vllm_max_lora_rank=32, vllm_max_loras=3, vllm_max_model_len=4096, vllm_dtype="bfloat16"
    )
    cmd = build_command(s, model="/m/dir", served_name="stu", port=12345, python="/venv/python")
    assert cmd[:3] == ["/venv/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(cmd, "--model") == "/m/dir"
    assert _flag(cmd, "--served-model-name") == "stu"
    assert (_flag(cmd, "--host"), _flag(cmd, "--port")) == ("127.0.0.1", "12345")
    assert "--enable-lora" in cmd
    assert (_flag(cmd, "--max-lora-rank"), _flag(cmd, "--max-loras")) == ("32", "3")
    assert (_flag(cmd, "--dtype"), _flag(cmd, "--max-model-len")) == ("bfloat16", "4096")
    assert "--disable-uvicorn-access-log" in cmd


def test_a_per_task_loop_keeps_every_tasks_adapters_in_memory() -> None:
    cmd = build_command(Settings(vllm_max_loras=3), model="/m", served_name="s", port=1)
    assert _flag(cmd, "--max-loras") == "3"  # one batch, as configured
    assert int(_flag(cmd, "--max-cpu-loras")) >= 2 * command.TASK_ADAPTERS
    one = build_command(Settings(loop_scope="all"), model="/m", served_name="s", port=1)
    assert "--max-cpu-loras" not in one


def test_dtype_follows_the_hardware_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import proxy.student.command as command

    monkeypatch.setattr(command, "cpu_has_native_bf16", lambda: False)
    assert command.vllm_dtype(Settings(), "cpu") == "float32"  # emulated bf16 is slower
    assert command.vllm_dtype(Settings(), "cuda") == "bfloat16"
    monkeypatch.setattr(command, "cpu_has_native_bf16", lambda: True)
    assert command.vllm_dtype(Settings(), "cpu") == "bfloat16"
    assert command.vllm_dtype(Settings(vllm_dtype="float16"), "cpu") == "float16"


def test_extra_args_are_shell_split_and_appended() -> None:
    s = Settings(vllm_extra_args="--enforce-eager --chat-template '/a b/t.jinja'")
    cmd = build_command(s, model="m", served_name="n", port=1)
    assert cmd[-3:] == ["--enforce-eager", "--chat-template", "/a b/t.jinja"]


def test_env_allows_runtime_lora_and_sizes_cpu_kv_cache() -> None:
    s = Settings(vllm_kvcache_gb=3)
    assert child_env_overrides(s, "cpu") == {
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": "3",
    }
    assert child_env_overrides(s, "cuda") == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def test_reserved_cores_reach_the_cpu_build_only_when_set() -> None:
    s = Settings(vllm_cpu_reserved_cores=0)
    assert child_env_overrides(s, "cpu")["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in child_env_overrides(s, "cuda")
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in child_env_overrides(Settings(), "cpu")


def test_vllm_cpu_build_means_cpu_even_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "_gpu_present", lambda: True)
    assert detect_device("vllm-cpu") == "cpu"


def test_gpu_build_uses_cuda_only_when_a_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.11.0")
    monkeypatch.setattr(command, "_gpu_present", lambda: True)
    assert detect_device("vllm") == "cuda"
    monkeypatch.setattr(command, "_gpu_present", lambda: False)
    assert detect_device("vllm") == "cpu"


def test_installed_build_is_detected_here() -> None:
    # This machine installs the CPU build (scripts/install.sh); no GPU is present.
    assert command.vllm_distribution() == "vllm-cpu"
    assert detect_device() == "cpu"


def test_last_log_line_handles_progress_bars_and_colours(tmp_path: Path) -> None:
    log = tmp_path / "v.log"
    log.write_bytes(b"INFO first\n\x1b[32mINFO\x1b[0m loading\rLoading 50%\rLoading 100%\n\n")
    assert last_log_line(log) == "Loading 100%"
    assert last_log_line(tmp_path / "missing.log") == ""
