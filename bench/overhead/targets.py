"""The three targets of the overhead benchmark: the fake upstream, this proxy, LiteLLM.

LiteLLM lives in its own venv (bench/overhead/.venv-litellm, created on first use) so
its dependencies never touch the project's; it runs with no database and one worker.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common.console import say
from bench.common.procs import Child, child_env, free_port, start, wait_http
from bench.overhead.fake_upstream import MODEL

HERE = Path(__file__).resolve().parent
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_SPEC = "litellm[proxy]"
FAKE_KEY = "sk-fake-upstream"


@dataclass(slots=True)
class Target:
    """A server under load: its chat URL, the client key it wants, the process behind it."""

    name: str
    chat_url: str
    child: Child | None
    key: str = "sk-unused"


def start_fake_upstream(logs: Path) -> Target:
    port = free_port()
    argv = [sys.executable, "-m", "bench.overhead.fake_upstream", "--port", str(port)]
    child = start("fake-upstream", argv, logs / "fake_upstream.log", env=child_env({}))
    root = f"http://127.0.0.1:{port}"
    wait_http(f"{root}/v1/models", child, 30)
    return Target("direct", f"{root}/v1/chat/completions", child)


def client_key() -> str:
    """A fresh strong client key (both proxies run with auth on, as deployed)."""
    return f"sk-{secrets.token_hex(32)}"


def proxy_env(upstream_v1: str, work: Path, admin_key: str, key: str) -> dict[str, str]:
    """This proxy with logging on, student and teacher = the fake upstream, never falling back."""
    return {
        "DISTILL_API_KEYS": key,
        "DISTILL_STUDENT_URL": upstream_v1,
        "DISTILL_STUDENT_MODEL": MODEL,
        "DISTILL_TEACHER_URL": upstream_v1,
        "DISTILL_TEACHER_MODEL": MODEL,
        "DISTILL_TEACHER_API_KEY": FAKE_KEY,
        "DISTILL_CONFIDENCE_SCORER": "mean_logprob",
        "DISTILL_CONFIDENCE_THRESHOLD": "-1000",
        "DISTILL_SHADOW_RATE": "0",
        "DISTILL_DB": str(work / "overhead.duckdb"),
        "DISTILL_DATA_DIR": str(work / "data"),
        "DISTILL_ADMIN_KEY": admin_key,
    }


def start_proxy(
    upstream_v1: str,
    work: Path,
    admin_key: str,
    name: str = "distill",
    extra_env: dict[str, str] | None = None,
) -> Target:
    """This proxy; `extra_env` for a variant (DISTILL_DB=postgresql://..., DISTILL_WORKERS)."""
    from bench.banking77.stack import distill_command

    port, key = free_port(), client_key()
    argv = [*distill_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    own = work / name
    env = child_env({**proxy_env(upstream_v1, own, admin_key, key), **(extra_env or {})})
    child = start(name, argv, work / "logs" / f"{name}.log", env=env)
    root = f"http://127.0.0.1:{port}"
    wait_http(f"{root}/readyz", child, 120)
    return Target(name, f"{root}/v1/chat/completions", child, key)


def check_student_route(target: Target, body: bytes) -> str | None:
    """The proxy's route header for one request (must be `student` for a fair comparison)."""
    response = httpx.post(
        target.chat_url,
        content=body,
        timeout=30,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {target.key}"},
        trust_env=False,
    )
    response.raise_for_status()
    return response.headers.get("x-distill-route")


def litellm_binary(venv: Path = LITELLM_VENV) -> Path:
    """The `litellm` CLI of the bench's own venv, installing it on first use (minutes)."""
    binary = venv / "bin" / "litellm"
    if binary.exists():
        return binary
    say(f"installing {LITELLM_SPEC} into {venv} (first run only)")
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", LITELLM_SPEC], check=True
    )
    return binary


def litellm_config(upstream_v1: str, path: Path) -> Path:
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream_v1}\n"
        f"      api_key: {FAKE_KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
    )
    return path


def start_litellm(upstream_v1: str, work: Path) -> Target:
    binary = litellm_binary()
    config = litellm_config(upstream_v1, work / "litellm.yaml")
    port, key = free_port(), client_key()
    argv = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]  # fmt: skip
    # A master key (auth on, like ours), no database, no cost-map download, quiet logs.
    overrides = {
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    env = child_env(overrides, drop_prefixes=("DISTILL_", "DATABASE_URL", "LITELLM_"))
    child = start("litellm", argv, work / "logs" / "litellm.log", env=env)
    root = f"http://127.0.0.1:{port}"
    wait_http(f"{root}/health/liveliness", child, 180)
    return Target("litellm", f"{root}/v1/chat/completions", child, key)
