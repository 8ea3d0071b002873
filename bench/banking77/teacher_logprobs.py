"""Old import path of `bench.harness.logprobs` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.logprobs import (
    GENERIC_FILLERS,
    filler_pool,
    label_logprobs,
)

__all__ = ["GENERIC_FILLERS", "filler_pool", "label_logprobs"]
