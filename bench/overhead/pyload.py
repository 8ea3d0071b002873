"""Fallback load generator (when `wrk` is not installed): aiohttp, keep-alive, fixed duration.

    python -m bench.overhead.pyload --url URL --body-file F --concurrency 16 --duration 5

Prints one JSON line: requests, duration_s, errors, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q / 100))]


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status >= 400:
                    errors.append(response.status)
                    continue
        except (aiohttp.ClientError, TimeoutError):
            errors.append(0)
            continue
        latencies.append((time.perf_counter() - start) * 1000)


async def run(url: str, body: bytes, key: str, concurrency: int, duration: float) -> dict:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    errors: list[int] = []
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        start = time.perf_counter()
        deadline = start + duration
        await asyncio.gather(
            *(_worker(session, url, body, deadline, latencies, errors) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "duration_s": elapsed,
        "errors": len(errors),
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", type=Path, required=True)
    p.add_argument("--key", default="sk-bench")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=5.0)
    args = p.parse_args(argv)
    result = asyncio.run(
        run(args.url, args.body_file.read_bytes(), args.key, args.concurrency, args.duration)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
