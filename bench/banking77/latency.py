"""Old import path of `bench.harness.latency` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.latency import (
    IDLE_PROBES,
    PROBE_BODY,
    PROBE_HEADERS,
    PROBE_INDEX_BASE,
    BusyProbes,
    idle_probes,
    latency_summary,
)

__all__ = [
    "BusyProbes",
    "IDLE_PROBES",
    "PROBE_BODY",
    "PROBE_HEADERS",
    "PROBE_INDEX_BASE",
    "idle_probes",
    "latency_summary",
]
