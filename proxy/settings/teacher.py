"""Teacher settings: the upstream OpenAI-compatible API that answers what the student cannot."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator

DEFAULT_TEACHER_URL = "https://api.openai.com/v1"


class TeacherSettings(BaseModel):
    """Where the teacher is, its key, and how patiently it is asked."""

    teacher_url: str = Field(DEFAULT_TEACHER_URL, description="Teacher base URL.")
    teacher_model: str | None = Field(
        None, description="Teacher model (default: the model the client asked for)."
    )
    teacher_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DISTILL_TEACHER_API_KEY", "OPENAI_API_KEY"),
        description="Teacher API key (falls back to OPENAI_API_KEY).",
    )
    teacher_timeout: float = Field(60.0, gt=0, description="Seconds for one teacher attempt.")
    teacher_deadline: float = Field(
        120.0, gt=0, description="Total seconds for the teacher including retries."
    )
    teacher_retries: int = Field(3, ge=0, description="Retries on 429/5xx/connection errors.")
    teacher_backoff: float = Field(0.5, ge=0, description="First retry backoff in seconds.")
    teacher_top_logprobs: int = Field(
        5, ge=0, le=20, description="Ask the teacher for top-k logprobs (0: never) for soft labels."
    )

    @field_validator("teacher_url")
    @classmethod
    def _strip_teacher_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if isinstance(v, str) else v

    @property
    def teacher_configured(self) -> bool:
        """A teacher is usable with a key, or at a non-default URL (self-hosted, no key)."""
        return self.teacher_api_key is not None or self.teacher_url != DEFAULT_TEACHER_URL
