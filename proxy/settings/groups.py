"""The settings groups, one per concern, in the order `distill config` and the README show them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

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


@dataclass(frozen=True)
class SettingsGroup:
    """A concern's settings: the mixin `Settings` inherits them from, and its heading."""

    title: str
    model: type[BaseModel]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.model.model_fields)


GROUPS: tuple[SettingsGroup, ...] = (
    SettingsGroup("Student", StudentSettings),
    SettingsGroup("Embedded student (vLLM)", EmbeddedStudentSettings),
    SettingsGroup("Closed-set student (sentence encoder)", ClosedSetSettings),
    SettingsGroup("Teacher", TeacherSettings),
    SettingsGroup("Serving and routing", RoutingSettings),
    SettingsGroup("Calibration", CalibrationSettings),
    SettingsGroup("Clients and admin", ClientSettings),
    SettingsGroup("Pass-through (the rest of the OpenAI API)", PassthroughSettings),
    SettingsGroup("Server", ServerSettings),
    SettingsGroup("Storage and log store", LogStoreSettings),
    SettingsGroup("Limits", LimitSettings),
    SettingsGroup("Privacy", PrivacySettings),
    SettingsGroup("Costs and metrics (observability)", ObservabilitySettings),
    SettingsGroup("Training", TrainingSettings),
    SettingsGroup("Continuous loop", LoopSettings),
)
