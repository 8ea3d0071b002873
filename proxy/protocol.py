"""Pydantic models of the OpenAI chat API surface the proxy validates.

Models use ``extra="allow"``: fields the proxy does not know pass through to the
upstream untouched. Validation only rejects what the OpenAI API itself rejects
(wrong types, unknown roles, out-of-range numbers), so clients get a clear 400
from the proxy instead of an opaque upstream error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]

# Far above any real model's context; rejects absurd values before they reach vLLM.
MAX_TOKENS_LIMIT = 1_000_000
MAX_N = 128


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=MAX_N)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    stop: str | list[str] | None = None
    seed: int | None = None
    store: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``: what the proxy checks; everything else passes through."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any] | None = None
    instructions: str | list[Any] | None = None
    stream: bool | None = False
    max_output_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] | None = None
    text: dict[str, Any] | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "distill"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback`` (also one line of `distill feedback import`)."""

    model_config = ConfigDict(extra="allow")

    request_id: str = Field(min_length=1, max_length=128)
    rating: Literal["good", "bad"] | None = None
    correction: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackRequest:
        if self.rating is None and self.correction is None and self.note is None:
            raise ValueError("send at least one of rating, correction, note")
        if self.correction is not None and not self.correction.strip():
            raise ValueError("correction must not be empty (send null for none)")
        return self
