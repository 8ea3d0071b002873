"""Helpers for the fast supervisor tests: settings with quick backoff, the fake server command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from student_helpers import FAKE_SERVER

from proxy.settings import Settings


@pytest.fixture
def fast_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        vllm_restart_backoff=0.05,
        vllm_restart_backoff_max=0.2,
        vllm_stop_grace=2.0,
        vllm_startup_timeout=60.0,  # a deadline for a busy machine, never reached when well
        student_served_name="fake-student",
    )


@pytest.fixture
def fake_command() -> Callable[..., list[str]]:
    def build(*extra: str) -> list[str]:
        return [
            sys.executable, str(FAKE_SERVER),
            "--port", "{port}", "--served-model-name", "{served_name}", *extra,
        ]  # fmt: skip

    return build
