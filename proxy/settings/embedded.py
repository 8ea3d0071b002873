"""Embedded student settings: the vLLM `distill serve` runs as a child process."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EmbeddedStudentSettings(BaseModel):
    """Used only when student_url is unset: `distill serve` then runs vLLM as a child process."""

    student_served_name: str | None = Field(
        None,
        description="Model name the embedded vLLM serves (default: the base model's directory "
        "name, e.g. SmolLM2-135M-Instruct).",
    )
    vllm_kvcache_gb: int = Field(
        2, ge=1, description="KV-cache size in GiB for the CPU build (VLLM_CPU_KVCACHE_SPACE)."
    )
    vllm_cpu_reserved_cores: int | None = Field(
        None,
        ge=0,
        description="Cores the CPU build keeps free of model compute for its API process "
        "(VLLM_CPU_NUM_OF_RESERVED_CPU). Unset: vLLM's choice (1), so on 2 cores the model "
        "decodes on one; 0: on all cores.",
    )
    vllm_max_model_len: int = Field(
        2048, ge=128, description="Context length of the embedded vLLM (--max-model-len)."
    )
    vllm_max_lora_rank: int = Field(
        16,
        ge=1,
        description="Largest LoRA rank vLLM accepts (--max-lora-rank); the trainer's "
        "LoRA rank must not exceed it.",
    )
    vllm_max_loras: int = Field(
        2, ge=1, description="LoRA adapters vLLM keeps loaded at once (--max-loras)."
    )
    vllm_dtype: str | None = Field(
        None,
        description="--dtype of the embedded vLLM. Unset: bfloat16 on a GPU or a CPU with native "
        "bf16 (AVX512-BF16/AMX), float32 on other CPUs (emulated bf16 ran at half the speed).",
    )
    vllm_extra_args: str = Field(
        "", description="Extra arguments appended to the vLLM command line (shell-quoted)."
    )
    vllm_startup_timeout: float = Field(
        900.0, gt=0, description="Seconds vLLM may take to become ready before it is restarted."
    )
    vllm_restart_backoff: float = Field(
        2.0,
        gt=0,
        description="Seconds before the first restart of a dead vLLM (doubles each time).",
    )
    vllm_restart_backoff_max: float = Field(
        120.0, gt=0, description="Longest wait between vLLM restarts."
    )
    vllm_stop_grace: float = Field(
        15.0, ge=0, description="Seconds vLLM gets to exit after SIGTERM before SIGKILL."
    )
