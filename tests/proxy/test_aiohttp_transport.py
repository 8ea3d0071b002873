"""The default transport (aiohttp under httpx) against a real loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.client import Upstream, make_http_client
from tests.fakes import completion
from tests.server_thread import free_port, running


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict) -> JSONResponse:  # type: ignore[type-arg]
        if body.get("mode") == "slow":
            await asyncio.sleep(3)
        if body.get("mode") == "stream":

            async def gen() -> AsyncIterator[bytes]:
                for i in range(3):
                    yield f"data: {i}\n\n".encode()

            return StreamingResponse(gen(), media_type="text/event-stream")  # type: ignore[return-value]
        return JSONResponse({**completion("hi"), "echo": body})

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running(_app()) as url:
        yield url


def test_json_round_trip_timeout_and_stream(server: str) -> None:
    async def scenario() -> None:
        client = make_http_client(5.0)
        try:
            await _checks(Upstream("student", f"{server}/v1", "sk-x", client))
        finally:
            await client.aclose()

    async def _checks(upstream: Upstream) -> None:
        result = await upstream.chat({"mode": "ok", "n": 1}, timeout=5)
        assert result.payload["echo"] == {"mode": "ok", "n": 1}
        with pytest.raises(UpstreamTimeout):
            await upstream.chat({"mode": "slow"}, timeout=0.3)
        async with upstream.open_stream({"mode": "stream"}, timeout=5) as response:
            data = b"".join([chunk async for chunk in response.aiter_raw()])
        assert data == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"

    asyncio.run(scenario())


def test_connection_refused_is_an_upstream_error() -> None:
    async def scenario() -> None:
        client = make_http_client(2.0)
        upstream = Upstream("teacher", f"http://127.0.0.1:{free_port()}/v1", None, client)
        with pytest.raises(UpstreamError) as info:
            await upstream.chat({}, timeout=2)
        assert "unreachable" in info.value.message
        await client.aclose()

    asyncio.run(scenario())
