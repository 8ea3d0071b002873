"""Where the replay oracle used to live: it is the harness's closed-label-set oracle now."""

from __future__ import annotations

from bench.harness.label_oracle import Decision, ReplayOracle

__all__ = ["Decision", "ReplayOracle"]
