"""Observability settings: the prices behind the cost metrics, and who may read /metrics and
the dashboard (proxy/observability)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TokenPrice(BaseModel):
    """A model's price in USD per 1M tokens (costs and metrics)."""

    input: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output: float = Field(ge=0, description="USD per 1M completion tokens.")


class ObservabilitySettings(BaseModel):
    """Costs and metrics."""

    teacher_prices: dict[str, TokenPrice] = Field(
        default_factory=dict,
        description="Teacher prices per model, USD per 1M tokens, merged over the built-in "
        "table (docs/metrics.md); a name also matches its dated variants. TOML: "
        '`[teacher_prices."gpt-4o"]` with `input`/`output`; env: JSON '
        '`{"gpt-4o": {"input": 2.5, "output": 10}}`.',
    )
    teacher_default_price: TokenPrice = Field(
        default_factory=lambda: TokenPrice(input=2.5, output=10.0),
        description="Teacher price for models missing from the table (USD per 1M tokens; "
        'env: JSON `{"input": 2.5, "output": 10}`).',
    )
    student_price_per_1m: float = Field(
        0.05,
        ge=0,
        description="Student cost in USD per 1M tokens (prompt + completion); used unless "
        "student_gpu_hour_usd is set.",
    )
    student_gpu_hour_usd: float | None = Field(
        None,
        ge=0,
        description="Student cost as a GPU-hour price; a generated token then costs "
        "student_gpu_hour_usd / 3600 / student_tokens_per_second.",
    )
    student_tokens_per_second: float = Field(
        500.0,
        gt=0,
        description="Measured generated tokens per second of the student server at your usual "
        "concurrency (with student_gpu_hour_usd).",
    )
    metrics_public: bool = Field(
        True, description="Serve /metrics without auth (for scrapers); false: admin key needed."
    )
    dashboard_session_hours: float = Field(
        12.0, gt=0, description="Lifetime of a /dashboard login cookie."
    )
