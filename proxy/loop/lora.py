"""vLLM's runtime LoRA API on every student replica.

``POST {root}/v1/load_lora_adapter {"lora_name", "lora_path"}`` registers an adapter under a
name clients then use as ``model``; ``POST {root}/v1/unload_lora_adapter {"lora_name"}``
forgets it. The server needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` and ``--enable-lora``
(the embedded supervisor sets both). A new version is always loaded under a NEW name:
reloading a name in place is reported upstream to reuse stale prefix-cache blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

log = logging.getLogger("distill.loop")

LOAD_TIMEOUT_S = 300.0  # vLLM reads and validates the adapter (seconds on the CPU)


class LoraError(RuntimeError):
    """An adapter could not be loaded on a replica; the message names the replica."""


def root_of(url: str) -> str:
    """The server root of an OpenAI base URL (``http://h:p/v1`` -> ``http://h:p``)."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def _message(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message"))[:300]
    return str(body)[:300]


class LoraAdmin:
    """Loads and unloads adapters on all replicas; `urls` returns their OpenAI base URLs."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: Callable[[], list[str]],
        timeout: float = LOAD_TIMEOUT_S,
    ) -> None:
        self._http = http
        self._urls = urls
        self._timeout = timeout

    def replicas(self) -> list[str]:
        return list(self._urls())

    async def load(self, name: str, path: Path) -> None:
        """Loads on every replica; raises `LoraError` on the first failure."""
        urls = self.replicas()
        if not urls:
            raise LoraError("no student replica to load the adapter into")
        for url in urls:
            await self.load_on(url, name, path)

    async def load_on(self, url: str, name: str, path: Path) -> bool:
        """True when loaded now, False when the replica already had it."""
        payload = {"lora_name": name, "lora_path": str(path.resolve())}
        try:
            resp = await self._http.post(
                f"{root_of(url)}/v1/load_lora_adapter", json=payload, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise LoraError(f"{url}: {type(exc).__name__} while loading {name}") from exc
        if resp.status_code == 200:
            log.info("loaded LoRA adapter %s from %s on %s", name, path, url)
            return True
        message = _message(resp)
        if resp.status_code == 400 and "already been loaded" in message:
            return False  # a retry after a lost response, or restored twice: same name and path
        raise LoraError(f"{url} refused adapter {name} (HTTP {resp.status_code}): {message}")

    async def unload(self, name: str) -> None:
        """Best effort on every replica (a restarted vLLM has nothing to unload)."""
        for url in self.replicas():
            try:
                resp = await self._http.post(
                    f"{root_of(url)}/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60.0
                )
            except httpx.HTTPError as exc:
                log.warning("could not unload %s on %s: %s", name, url, type(exc).__name__)
                continue
            if resp.status_code not in (200, 404):
                log.warning(
                    "unloading %s on %s: HTTP %d %s", name, url, resp.status_code, _message(resp)
                )
