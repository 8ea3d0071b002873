"""Privacy settings: PII redaction before rows are logged, and retention of logged bodies
(proxy/privacy)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PrivacySettings(BaseModel):
    """What is redacted from the log, and how long bodies are kept."""

    redact_pii: bool = Field(
        False,
        description="Redact PII (see redact_kinds) from log rows before they are written, so "
        "neither the DB nor training snapshots hold it. Answers to clients are unchanged.",
    )
    redact_kinds: str = Field(
        "email,phone,card,iban",
        description="Built-in detectors used with redact_pii (comma-separated: email, phone, "
        "card (Luhn-checked), iban (mod-97-checked)).",
    )
    redact_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="Extra regexes for redact_pii, name -> Python regex; matches become "
        '`<NAME>`. Env: JSON `{"ticket": "TICKET-\\\\d+"}`.',
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="Erase request bodies and answers (request_json, texts, responses, "
        "logprobs, error) older than this many days, keeping the aggregates. Unset: keep.",
    )
    retention_interval: float = Field(3600.0, gt=0, description="Seconds between retention passes.")
