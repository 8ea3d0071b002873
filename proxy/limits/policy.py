"""What limits apply to whom: defaults for every client plus per-key overrides.

A client is identified by the sha256 hex digest of its key (the same digest that is
logged as ``client_key_hash``), or by ``ip:<address>`` when the server runs without
keys. Overrides are keyed the same way, so plain keys never appear in config files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# KeyLimits is the field type of settings.key_limits, so it lives with the settings (which
# import nothing from proxy.limits); proxy.limits re-exports it.
from proxy.settings.limits import KeyLimits

LIMIT_FIELDS = ("rpm", "tpm", "usd_per_day", "usd_per_month")


@dataclass(frozen=True)
class Limits:
    """The limits in force for one client; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    usd_per_day: float | None = None
    usd_per_month: float | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMIT_FIELDS)


def normalise_identity(key: str) -> str:
    """Override keys may be written ``sha256:<hex>`` or in upper case; ``ip:`` stays as is."""
    key = key.strip()
    if key.lower().startswith("sha256:"):
        key = key[len("sha256:") :]
    return key if key.startswith("ip:") else key.lower()


class LimitPolicy:
    """Resolves the limits of a client identity (digest or ``ip:ADDR``)."""

    def __init__(
        self,
        defaults: Limits,
        overrides: Mapping[str, KeyLimits] | None = None,
        assumed_completion_tokens: int = 256,
    ) -> None:
        self.defaults = defaults
        self.assumed_completion_tokens = assumed_completion_tokens
        self._resolved: dict[str, Limits] = {}
        for key, override in (overrides or {}).items():
            values = {name: getattr(defaults, name) for name in LIMIT_FIELDS}
            values.update({name: getattr(override, name) for name in override.model_fields_set})
            self._resolved[normalise_identity(key)] = Limits(**values)

    @property
    def enabled(self) -> bool:
        return self.defaults.any or any(limits.any for limits in self._resolved.values())

    def for_identity(self, identity: str) -> Limits:
        return self._resolved.get(identity, self.defaults)


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return 0


def _input_chars(value: Any) -> int:
    """Text of a Responses `input`, an embeddings `input` or a legacy `prompt`."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list):
        return 0
    return sum(
        len(item) if isinstance(item, str) else _text_chars(item.get("content"))
        for item in value
        if isinstance(item, str | dict)
    )


def estimate_tokens(body: Mapping[str, Any], assumed_completion_tokens: int) -> int:
    """A cheap upper-ish estimate before the answer exists: prompt characters / 4 plus
    the completion budget (max_completion_tokens or max_tokens, times n)."""
    messages = body.get("messages") or []
    chars = sum(_text_chars(m.get("content")) for m in messages if isinstance(m, dict))
    chars += sum(_input_chars(body.get(key)) for key in ("input", "prompt", "instructions"))
    budget = (
        body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    )
    completion = budget if isinstance(budget, int) and budget > 0 else assumed_completion_tokens
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    return max(1, chars // 4) + completion * choices


def actual_tokens(record: Mapping[str, Any]) -> int | None:
    """Tokens the served answer really used (the upstream's usage), None when unknown."""
    route = record.get("route")
    failed = (record.get("status_code") or 200) >= 400
    if route not in ("student", "teacher", "passthrough"):
        return 0 if route == "none" or failed else None
    side = "teacher" if route == "passthrough" else route  # relayed: the teacher's usage
    prompt = record.get(f"{side}_prompt_tokens")
    completion = record.get(f"{side}_completion_tokens")
    if prompt is None and completion is None:
        # Nothing reported: a failed request served nothing; else keep the estimate.
        return 0 if failed else None
    return int(prompt or 0) + int(completion or 0)
