"""The proxy's admin API as the benchmark uses it: runs (list, trigger, wait) and stats."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

# Status words of a re-distillation run that mean "no longer running". Any other
# status (queued, running, training, evaluating, promoting, ...) is still in flight.
TERMINAL = frozenset(
    {
        "succeeded",
        "success",
        "completed",
        "done",
        "promoted",
        "rejected",
        "failed",
        "error",
        "cancelled",
        "canceled",
        "skipped",
        "aborted",
        "crashed",
        "interrupted",
    }
)
RUN_LIST_KEYS = ("runs", "data", "items")


class AdminError(RuntimeError):
    """The admin API answered something unexpected."""


@dataclass(slots=True)
class RunInfo:
    """The fields of a run the benchmark relies on; the full JSON stays in `raw`."""

    id: str
    status: str
    raw: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.status.lower() in TERMINAL


def _as_runs(body: Any) -> list[RunInfo]:
    items = body
    if isinstance(body, dict):
        items = next((body[k] for k in RUN_LIST_KEYS if isinstance(body.get(k), list)), None)
    if not isinstance(items, list):
        raise AdminError(f"GET /admin/runs returned {str(body)[:200]}")
    runs = []
    for item in items:
        if isinstance(item, dict):
            run_id = item.get("id", item.get("run_id"))
            runs.append(RunInfo(str(run_id), str(item.get("status", "unknown")), item))
    return runs


class AdminClient:
    """Async client for /admin/* and /readyz of one proxy."""

    def __init__(self, root_url: str, admin_key: str, timeout: float = 120.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=root_url.rstrip("/"),
            timeout=timeout,
            trust_env=False,
            headers={"Authorization": f"Bearer {admin_key}"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def runs(self) -> list[RunInfo]:
        # Polled during training, when a 2-core machine can stall the server for a while:
        # a slow answer is retried, not fatal.
        for attempt in range(5):
            try:
                response = await self._http.get("/admin/runs")
                break
            except httpx.TimeoutException:
                if attempt == 4:
                    raise
        response.raise_for_status()
        return _as_runs(response.json())

    async def trigger(self) -> RunInfo | None:
        """POST /admin/runs; the created run (or, on 409, the one already going)."""
        response = await self._http.post("/admin/runs", json={})
        if response.status_code == 409:
            running = response.json().get("error", {}).get("run_id")
            if running:
                return RunInfo(str(running), "running", {})
        if response.status_code >= 400:
            raise AdminError(f"POST /admin/runs: {response.status_code} {response.text[:300]}")
        body = response.json() if response.content else {}
        if isinstance(body, dict) and isinstance(body.get("run"), dict):
            body = body["run"]
        if isinstance(body, dict) and ("id" in body or "run_id" in body):
            return _as_runs([body])[0]
        return None

    async def stats(self, since: str = "all") -> dict[str, Any]:
        response = await self._http.get("/admin/stats", params={"since": since})
        if response.status_code != 200:
            return {"error": f"{response.status_code} {response.text[:200]}"}
        body = response.json()
        return body if isinstance(body, dict) else {"value": body}

    async def calibration(self) -> dict[str, Any] | None:
        """GET /admin/calibration: the threshold and evidence per student version."""
        try:
            response = await self._http.get("/admin/calibration")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body = response.json()
        return body if isinstance(body, dict) else None

    async def tasks(self) -> Any:
        """GET /admin/tasks (the proxy's tasks with their versions and thresholds), or None
        where the proxy has no such endpoint or it failed."""
        try:
            response = await self._http.get("/admin/tasks")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        response = await self._http.get("/readyz")
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:200]}
        return response.status_code, body if isinstance(body, dict) else {"value": body}

    async def wait_new_run(self, known: set[str], timeout: float) -> RunInfo | None:
        """The first new run that really started, or None after `timeout` seconds.

        A trigger that arrives while a run is going is listed as ``skipped``: not a round.
        """
        deadline = time.monotonic() + timeout
        while True:
            for run in await self.runs():
                if run.id in known:
                    continue
                if run.status.lower() == "skipped":
                    known.add(run.id)
                    continue
                return run
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(2.0)

    async def wait_finished(self, run_id: str, timeout: float, poll: float = 5.0) -> RunInfo:
        """Polls until the run reaches a terminal status; raises AdminError on timeout."""
        deadline = time.monotonic() + timeout
        last: RunInfo | None = None
        while time.monotonic() < deadline:
            last = next((r for r in await self.runs() if r.id == run_id), last)
            if last is not None and last.finished:
                return last
            await asyncio.sleep(poll)
        status = last.status if last else "never listed"
        raise AdminError(f"run {run_id} not finished after {timeout:.0f}s (status {status})")
