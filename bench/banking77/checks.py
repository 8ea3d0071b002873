"""Old import path of `bench.harness.checks` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.checks import (
    machinery_problems,
)

__all__ = ["machinery_problems"]
