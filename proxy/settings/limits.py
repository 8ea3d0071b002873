"""Limit settings: requests, tokens and spend per client (proxy/limits), and the shared
state that counts them across processes.

`KeyLimits` lives here, not in proxy/limits, so that the settings import nothing from the
packages they configure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KeyLimits(BaseModel):
    """One key's override. A field left out inherits the default; an explicit JSON
    ``null`` lifts that limit for this key."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(None, ge=0, description="Requests per minute.")
    tpm: int | None = Field(None, ge=0, description="Tokens per minute.")
    usd_per_day: float | None = Field(None, ge=0, description="Spend per UTC day.")
    usd_per_month: float | None = Field(None, ge=0, description="Spend per UTC month.")


class LimitSettings(BaseModel):
    """The default limits, the per-key overrides, where the counters live."""

    limit_rpm: int | None = Field(
        None, ge=0, description="Requests per minute per client key (unset: unlimited)."
    )
    limit_tpm: int | None = Field(
        None,
        ge=0,
        description="Tokens per minute per client key: estimated on arrival as prompt "
        "characters / 4 + max_tokens (x n), corrected by the upstream's usage afterwards.",
    )
    limit_usd_per_day: float | None = Field(
        None, ge=0, description="Spend budget per client key per UTC day (uses cost_usd)."
    )
    limit_usd_per_month: float | None = Field(
        None, ge=0, description="Spend budget per client key per UTC month (uses cost_usd)."
    )
    key_limits: dict[str, KeyLimits] = Field(
        default_factory=dict,
        description="Per-key overrides of the four limits, keyed by the key's sha256 hex digest "
        "(`printf %s KEY | sha256sum`; no plain keys in config) or `ip:ADDR` without keys. "
        "TOML: `[key_limits.<digest>]` with rpm/tpm/usd_per_day/usd_per_month; env: JSON "
        '`{"<digest>": {"rpm": 600}}`; JSON null lifts a default.',
    )
    limit_assumed_completion_tokens: int = Field(
        256,
        ge=1,
        description="Completion tokens the tokens-per-minute estimate assumes when a request "
        "sets no max_tokens.",
    )
    limit_without_keys: Literal["ip", "off"] = Field(
        "ip",
        description='Without DISTILL_API_KEYS: "ip" applies the default limits per client '
        'address, "off" disables limits.',
    )
    redis_url: str | None = Field(
        None,
        description="redis:// URL of the shared rate-limit and budget state. Unset: the "
        "PostgreSQL log holds it when DISTILL_DB is one, else each process counts alone.",
    )
