"""The Banking77 benchmark's driver: the harness's driver with the Banking77 task alone."""

from __future__ import annotations

from bench.harness import driver as _driver
from bench.harness.driver import DriverConfig, RequestRecord
from bench.tasks import banking77

__all__ = ["Driver", "DriverConfig", "RequestRecord"]


class Driver(_driver.Driver):
    """Sends Banking77 queries (the app prompt lists `labels`) to one base URL."""

    def __init__(self, cfg: DriverConfig, labels: list[str]) -> None:
        super().__init__(cfg, banking77.task(labels=labels))
        self.labels = labels
