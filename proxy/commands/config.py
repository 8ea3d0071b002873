"""`distill config`: the effective settings (secrets masked) under a heading per group, or the
settings reference as markdown tables, one per group (`--markdown`, used to keep the README's
tables complete)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from proxy.logstore.backend import redact_url
from proxy.settings import GROUPS, Settings

if TYPE_CHECKING:
    from proxy.cli import Subcommands


TABLE_HEAD = ("| setting (env) | default | meaning |", "|---|---|---|")


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


def _row(name: str) -> str:
    info = Settings.model_fields[name]
    env = " / ".join(f"`{e}`" for e in env_names(name, info))
    description = (info.description or "").replace("|", "\\|").replace("\n", " ")
    return f"| {env} | {_default(info)} | {description} |"


def markdown_table() -> str:
    """The settings reference: a `###` heading and a table per group."""
    sections = []
    for group in GROUPS:
        rows = [_row(name) for name in group.field_names]
        sections.append("\n".join([f"### {group.title}", "", *TABLE_HEAD, *rows]))
    return "\n\n".join(sections)


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
    shown = effective(settings)
    blocks = [
        "\n".join([f"# {group.title}"] + [f"{n} = {shown[n]!r}" for n in group.field_names])
        for group in GROUPS
    ]
    print("\n\n".join(blocks))
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add("config", "show the effective settings by group (secrets masked)", _config)
    p.add_argument("--markdown", action="store_true", help="print the settings reference tables")
