"""Old import path of `bench.harness.admin` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.admin import (
    TERMINAL,
    AdminClient,
    AdminError,
    RunInfo,
)

__all__ = ["AdminClient", "AdminError", "RunInfo", "TERMINAL"]
