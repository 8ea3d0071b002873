"""Server settings: where `distill serve` listens, how many processes it runs, how it stops."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServerSettings(BaseModel):
    """The listening address, the worker processes, the shutdown grace."""

    host: str = Field("127.0.0.1", description="Bind address of `distill serve`.")
    port: int = Field(8000, ge=0, le=65535, description="Port of `distill serve`.")
    server_url: str = Field(
        "http://127.0.0.1:8000", description="Where CLI commands find a running server."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Proxy processes `distill serve` runs on one port. Above 1 the log must "
        "be PostgreSQL (a DuckDB file has one writing process).",
    )
    shutdown_grace: float = Field(
        20.0, ge=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )
