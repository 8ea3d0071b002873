"""Scores candidate, incumbent and base on the eval split, each served the way the proxy
serves it. Without a server every model runs in-process (`HFBackend`); with a running vLLM
(`EvalServer`) the candidate adapter is hot-loaded under a throwaway name, evaluated through
the OpenAI API like the others, and unloaded again."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from trainer.backends import BackendError, GenerationBackend, HFBackend, OpenAIBackend
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection
from trainer.evaluate import ServedAs, evaluate_model, max_new_tokens_for
from trainer.task import PromptPrefix

log = logging.getLogger("trainer.compare")

ADAPTER_METADATA = "distill_adapter.json"


@dataclass(frozen=True)
class EvalServer:
    """A running OpenAI-compatible student server (vLLM with runtime LoRA loading)."""

    url: str  # ends in /v1
    base_model: str
    incumbent_model: str | None = None


def write_adapter_metadata(
    adapter_dir: Path, run_id: str, base_model: str, selection: DatasetSelection
) -> dict[str, Any]:
    """What the proxy needs to serve this adapter: the closed set and the pruned prompt."""
    prefix = (
        selection.prompt_prefix
        if selection.prompt_prefix and selection.prompt_prefix.pruned
        else None
    )
    meta = {
        "run_id": run_id,
        "base_model": base_model,
        "closed_set": selection.closed_set,
        "prompt_prefix": prefix.to_dict() if prefix else None,
    }
    (adapter_dir / ADAPTER_METADATA).write_text(json.dumps(meta, indent=2))
    return meta


def served_as_of(adapter_dir: Path | None) -> ServedAs:
    """How an existing adapter is served, from its metadata (absent: plain)."""
    path = adapter_dir / ADAPTER_METADATA if adapter_dir else None
    if path is None or not path.is_file():
        return ServedAs()
    meta = json.loads(path.read_text())
    prefix = meta.get("prompt_prefix")
    return ServedAs(
        prompt_prefix=PromptPrefix(prefix["text"], prefix["sha256"], prefix["share"], True)
        if prefix
        else None,
        closed_set=meta.get("closed_set"),
    )


def compare_models(
    selection: DatasetSelection,
    cfg: TrainConfig,
    base_model: str,
    candidate: Path,
    incumbent: Path | None,
    server: EvalServer | None,
    run_id: str,
) -> dict[str, Any]:
    """{"candidate": summary, "incumbent": summary | None, "base": summary, ...}."""
    rows = selection.eval
    max_new = max_new_tokens_for([r.completion for r in rows], cfg.eval_max_new_tokens)
    targets: dict[str, tuple[Path | None, ServedAs]] = {
        "candidate": (candidate, served_as_of(candidate)),
        "incumbent": (incumbent, served_as_of(incumbent)),
        "base": (None, ServedAs()),
    }
    if incumbent is None or not cfg.eval_incumbent:
        del targets["incumbent"]
    results: dict[str, Any] = {"eval_rows": len(rows), "max_new_tokens": max_new, "incumbent": None}
    for role, (adapter, served) in targets.items():
        scored = rows[: cfg.eval_base_max_rows] if role == "base" else rows
        if not scored:
            results[role] = None
            continue
        with _backend(role, base_model, adapter, server, run_id) as backend:
            log.info("evaluating %s (%s) on %d rows", role, backend.description, len(scored))
            results[role] = evaluate_model(backend, scored, served, max_new, cfg.eval_top_logprobs)
        log.info("%s agreement: %s", role, results[role]["agreement"])
    return results


@contextmanager
def _backend(
    role: str, base_model: str, adapter: Path | None, server: EvalServer | None, run_id: str
) -> Iterator[GenerationBackend]:
    with ExitStack() as stack:
        backend: GenerationBackend
        if server is None:
            backend = HFBackend(base_model, adapter)
        elif role == "base":
            backend = OpenAIBackend(server.url, server.base_model)
        elif role == "incumbent" and server.incumbent_model:
            backend = OpenAIBackend(server.url, server.incumbent_model)
        else:  # the candidate (or an incumbent served under no known name): load it
            name = stack.enter_context(_loaded_adapter(server, f"{role}-{run_id}", adapter))
            backend = OpenAIBackend(server.url, name)
        stack.callback(backend.close)
        yield backend


@contextmanager
def _loaded_adapter(server: EvalServer, name: str, path: Path | None) -> Iterator[str]:
    if path is None:
        raise BackendError(f"no adapter to load as {name}")
    with httpx.Client(timeout=300.0) as client:
        resp = client.post(
            f"{server.url}/load_lora_adapter",
            json={"lora_name": name, "lora_path": str(path.resolve())},
        )
        if resp.status_code != 200:
            raise BackendError(
                f"loading {name} into {server.url} failed: HTTP "
                f"{resp.status_code}: {resp.text[:300]}"
            )
        try:
            yield name
        finally:
            try:
                client.post(f"{server.url}/unload_lora_adapter", json={"lora_name": name})
            except httpx.HTTPError as exc:  # the eval result stands; only cleanup failed
                log.warning("unloading %s failed: %s", name, exc)
