"""The settings contract: per field its env names, default, type and bounds, as plain JSON.

`tests/settings/contract.json` is this contract as it was before the settings were split by
concern; `test_contract.py` holds the live `Settings` to it, so a renamed, re-aliased,
re-defaulted or re-bounded field fails. A deliberate change regenerates the file:
`.venv/bin/python -m tests.settings.contract --write`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from proxy.settings import Settings

SNAPSHOT = Path(__file__).with_name("contract.json")
ENV_PREFIX = "DISTILL_"
# The model_config keys that decide how the environment and the TOML file are read.
CONFIG_KEYS = ("env_prefix", "extra", "populate_by_name", "validate_default", "case_sensitive")


def env_names(name: str, info: FieldInfo) -> list[str]:
    """The environment variables pydantic-settings reads for a field: its alias choices, if
    it has any, replace the prefixed name."""
    choices = getattr(info.validation_alias, "choices", None)
    if choices:
        return [str(c) for c in choices]
    if isinstance(info.validation_alias, str):
        return [info.validation_alias]
    return [f"{ENV_PREFIX}{name.upper()}"]


def type_name(annotation: Any) -> str:
    """The annotation without module paths (a model moving to another module is no change)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", str(annotation))


def field_contract(name: str, info: FieldInfo) -> dict[str, Any]:
    return {
        "env": env_names(name, info),
        "default": to_jsonable_python(info.get_default(call_default_factory=True)),
        "type": type_name(info.annotation),
        "constraints": sorted(repr(m) for m in info.metadata),
    }


def contract() -> dict[str, Any]:
    return {
        "config": {key: Settings.model_config.get(key) for key in CONFIG_KEYS},
        "fields": {
            name: field_contract(name, info) for name, info in sorted(Settings.model_fields.items())
        },
    }


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print(json.dumps(contract(), indent=1))
        return 0
    SNAPSHOT.write_text(json.dumps(contract(), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
