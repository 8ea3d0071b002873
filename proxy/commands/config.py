"""`distill config`: the effective settings (secrets masked), or the settings reference
as a markdown table (`--markdown`, used to keep the README's table complete)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from proxy.logstore.backend import redact_url
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands


def env_names(name: str, info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return [str(c) for c in choices]
    return [f"DISTILL_{name.upper()}"]


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "(computed)"
    value = info.default
    if value is None:
        return "unset"
    if isinstance(value, dict):
        return "(table, see docs)" if value else "{}"
    return f"`{value}`"


def markdown_table() -> str:
    lines = ["| setting (env) | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        env = " / ".join(f"`{e}`" for e in env_names(name, info))
        description = (info.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {env} | {_default(info)} | {description} |")
    return "\n".join(lines)


def effective(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "***" if value.get_secret_value() else ""
        elif name == "api_keys" and value:
            value = f"*** ({len(settings.client_keys)} keys)"
        elif name in ("db", "redis_url") and isinstance(value, str):
            value = redact_url(value)  # a database URL may carry its password
        out[name] = value
    return out


def _config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    for name, value in effective(settings).items():
        print(f"{name} = {value!r}")
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add("config", "show the effective settings (secrets masked)", _config)
    p.add_argument("--markdown", action="store_true", help="print the settings reference table")
