"""The one place that reads configuration: `DISTILL_*` environment variables and a TOML file.

Precedence (highest first): explicit keyword arguments, environment variables,
the TOML file (``--config`` / ``DISTILL_CONFIG``), the defaults.
TOML keys are the setting names without the prefix, lower case
(``student_url = "http://..."``); a ``[distill]`` table is accepted too.

`Settings` is one flat class (``settings.student_url``, ``DISTILL_STUDENT_URL``) composed of
one mixin per concern, each in its own module with its fields, validators and helpers;
`GROUPS` lists them in the order `distill config` and the README show them.
"""

from __future__ import annotations

from proxy.settings.groups import GROUPS, SettingsGroup
from proxy.settings.limits import KeyLimits
from proxy.settings.logstore import DB_FILE_NAME
from proxy.settings.model import Settings, load_settings
from proxy.settings.observability import TokenPrice
from proxy.settings.passthrough import PASSTHROUGH_ENDPOINTS
from proxy.settings.routing import DEFAULT_SHADOW_RATE, VOTE_SHADOW_RATE, ScorerName
from proxy.settings.student import (
    CPU_STUDENT_BACKGROUND_MAX,
    CPU_STUDENT_MAX_TOKENS,
    GPU_STUDENT_BACKGROUND_MAX,
)
from proxy.settings.teacher import DEFAULT_TEACHER_URL

__all__ = [
    "CPU_STUDENT_BACKGROUND_MAX",
    "CPU_STUDENT_MAX_TOKENS",
    "DB_FILE_NAME",
    "DEFAULT_SHADOW_RATE",
    "DEFAULT_TEACHER_URL",
    "GPU_STUDENT_BACKGROUND_MAX",
    "GROUPS",
    "KeyLimits",
    "PASSTHROUGH_ENDPOINTS",
    "ScorerName",
    "Settings",
    "SettingsGroup",
    "TokenPrice",
    "VOTE_SHADOW_RATE",
    "load_settings",
]
