"""`Settings`, composed of the group mixins, and where its values come from."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from proxy.settings.calibration import CalibrationSettings
from proxy.settings.clients import ClientSettings
from proxy.settings.embedded import EmbeddedStudentSettings
from proxy.settings.encoder import ClosedSetSettings
from proxy.settings.limits import LimitSettings
from proxy.settings.logstore import LogStoreSettings
from proxy.settings.loop import LoopSettings
from proxy.settings.observability import ObservabilitySettings
from proxy.settings.passthrough import PassthroughSettings
from proxy.settings.privacy import PrivacySettings
from proxy.settings.routing import RoutingSettings
from proxy.settings.server import ServerSettings
from proxy.settings.student import StudentSettings
from proxy.settings.teacher import TeacherSettings
from proxy.settings.training import TrainingSettings


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file given to `load_settings` (--config) or named by DISTILL_CONFIG."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            raw = tomllib.loads(path.read_text())
            self._data = raw.get("distill", raw)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


# Pydantic collects the fields along the reversed MRO, so the mixins are listed last group
# first: Settings.model_fields then runs in the order of proxy.settings.groups.GROUPS.
class Settings(
    LoopSettings,
    TrainingSettings,
    ObservabilitySettings,
    PrivacySettings,
    LimitSettings,
    LogStoreSettings,
    ServerSettings,
    PassthroughSettings,
    ClientSettings,
    CalibrationSettings,
    RoutingSettings,
    TeacherSettings,
    ClosedSetSettings,
    EmbeddedStudentSettings,
    StudentSettings,
    BaseSettings,
):
    """All settings of the server, the trainer loop and the CLI."""

    config_file: ClassVar[Path | None] = None
    """TOML file of this Settings class (set by `load_settings`)."""

    model_config = SettingsConfigDict(
        env_prefix="DISTILL_", extra="ignore", populate_by_name=True, validate_default=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = getattr(settings_cls, "config_file", None) or os.environ.get("DISTILL_CONFIG")
        toml = _TomlSource(settings_cls, Path(str(path)) if path else None)
        return (init_settings, env_settings, toml)


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Builds Settings from env + optional TOML file + explicit overrides."""
    if config is None:
        return Settings(**overrides)
    # A subclass carries the path, so no module-level state is needed between the
    # CLI and the settings sources.
    bound = type("Settings", (Settings,), {"config_file": Path(config)})
    return bound(**overrides)
