"""Old import path of `bench.harness.replay_format` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.replay_format import (
    Choice,
    Completion,
    error_body,
    full_response,
    stream_chunks,
)

__all__ = ["Choice", "Completion", "error_body", "full_response", "stream_chunks"]
