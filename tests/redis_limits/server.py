"""A throwaway `redis-server` on a free loopback port, without persistence.

The binary is Debian's `redis-server` package (``/usr/bin/redis-server`` or PATH). It is
started with ``--save "" --appendonly no``: a restart starts empty, as a cache would.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.common.pgcluster import free_port


def find_binary() -> str | None:
    if Path("/usr/bin/redis-server").is_file():
        return "/usr/bin/redis-server"
    return shutil.which("redis-server")


def skip_reason() -> str | None:
    """Why the Redis tier cannot run here (None: it can)."""
    if find_binary() is None:
        return "redis-server not found: apt-get install redis-server (scripts/install.sh does)"
    return None


class RedisServer:
    """One `redis-server` process; `stop()` and `start()` keep its port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="distill-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        log = (self.dir / "redis.log").open("ab")
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log_tail()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def log_tail(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    binary = find_binary()
    if binary is None:
        raise RuntimeError(skip_reason())
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
