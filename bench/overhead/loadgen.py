"""Load generation for the overhead benchmark: `wrk` (C, preferred) or an aiohttp fallback.

Both run in their own process, send the same POST body over keep-alive connections
for a fixed duration, and report one `LoadResult`. wrk keeps the load generator's CPU
use small, which matters on a 2-core machine shared with the servers under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WRK_MARK = "WRKJSON "

LUA_TEMPLATE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.body = [==[%(body)s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_s":%%.6f,"errors":%%d,"p50_ms":%%.4f,"p99_ms":%%.4f}\\n',
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Outcome of one timed load run."""

    requests: int
    duration_s: float
    errors: int
    p50_ms: float
    p99_ms: float
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": self.rps}


class LoadError(RuntimeError):
    """The load generator failed or printed nothing usable."""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, body: bytes, key: str, concurrency: int, duration: float) -> LoadResult:
    """One wrk run (one thread: the servers need the other core more than wrk does)."""
    script = LUA_TEMPLATE % {"key": key, "body": body.decode(), "mark": WRK_MARK}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        lua = Path(fh.name)
    try:
        argv = [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    finally:
        lua.unlink(missing_ok=True)
    for line in done.stdout.splitlines():
        if line.startswith(WRK_MARK):
            return LoadResult(**json.loads(line[len(WRK_MARK) :]), tool="wrk")
    raise LoadError(f"wrk printed no result (rc {done.returncode}): {done.stderr[-500:]}")


def run_python(url: str, body: bytes, key: str, concurrency: int, duration: float) -> LoadResult:
    """The aiohttp generator (`bench.overhead.pyload`) in a child process."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as fh:
        fh.write(body)
        body_file = Path(fh.name)
    try:
        argv = [
            sys.executable,
            "-m",
            "bench.overhead.pyload",
            "--url",
            url,
            "--body-file",
            str(body_file),
            "--key",
            key,
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    finally:
        body_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise LoadError(f"pyload failed (rc {done.returncode}): {done.stderr[-500:]}")
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]), tool="aiohttp")


def run_load(
    url: str, body: bytes, key: str, concurrency: int, duration: float, tool: str = "auto"
) -> LoadResult:
    """wrk when installed (or asked for), else the aiohttp generator."""
    if tool == "wrk" or (tool == "auto" and have_wrk()):
        return run_wrk(url, body, key, concurrency, duration)
    return run_python(url, body, key, concurrency, duration)
