"""What the CPU can do, read from /proc/cpuinfo. Pure Python (no torch), shared by the
trainer (bf16 autocast) and the proxy (the embedded vLLM's dtype)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls in hardware. Without them bf16 is emulated and
    slower than fp32 (measured here on an AVX2-only CPU: vLLM answered a 77-label closed-set
    request in 2.6 s in bf16 against 1.3 s in fp32; training autocast ~1.4x faster with it)."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
