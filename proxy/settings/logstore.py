"""Storage and log store settings: the data directory, the log database, the write path
(queue, batches, journal, spill) and, with PostgreSQL, the leader election."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

DB_FILE_NAME = "distill.duckdb"


class LogStoreSettings(BaseModel):
    """Where the working files and the log live, and how rows reach the log."""

    data_dir: Path = Field(
        Path("data"),
        description="The one directory of working files: the DuckDB log (unless DISTILL_DB "
        "says otherwise), the converted default model (models/), runs and adapters (runs/), "
        "snapshots, the spill journal (spill/) and vLLM logs (logs/); `make test` keeps its "
        "artifacts in the checkout's data/test-artifacts/.",
    )
    db: Path | str = Field(
        Path("data") / DB_FILE_NAME,
        description=f"DuckDB file (the server owns it). Default: data_dir/{DB_FILE_NAME}. "
        "A postgresql:// URL instead: one log shared by several replicas (`--workers N`, "
        "several machines); the migrations run once under a lock, one replica leads the "
        "training loop.",
    )
    log_durable: bool = Field(
        True,
        description="Append each log row to the local journal before the response goes "
        "out, so a SIGKILLed replica loses no acknowledged row (replayed on restart). On by "
        "default: it costs about 25 us per request (bench/overhead: within the noise).",
    )
    log_fsync: bool = Field(
        False,
        description="Also force every journal append to the disk (fsync) before the response "
        "goes out, so a machine that loses power, not only a killed process, loses no "
        "acknowledged row. Off by default: bench/overhead measures what it costs.",
    )
    leader_poll_interval: float = Field(
        2.0,
        gt=0,
        le=60,
        description="With PostgreSQL: seconds between a follower's tries to take the "
        "leadership (the scheduler) and its re-reads of the active student version.",
    )
    log_queue_size: int = Field(
        10_000, ge=10, description="Rows buffered in memory before back-pressure/spill."
    )
    log_flush_interval: float = Field(
        0.5, gt=0, description="Seconds between batched writes (bounds loss on SIGKILL)."
    )
    log_batch_size: int = Field(
        1_000,
        ge=1,
        description="Rows per INSERT; a full batch is written without waiting "
        "for the flush interval.",
    )
    spill_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Bound of the on-disk spill journal (data_dir/spill) that keeps log rows "
        "while DuckDB cannot take them; rows past it are dropped and counted.",
    )

    @model_validator(mode="before")
    @classmethod
    def _db_in_data_dir(cls, data: Any) -> Any:
        """Without an explicit `db` the log lives in the data directory, wherever that is."""
        if isinstance(data, dict) and data.get("db") is None and data.get("data_dir") is not None:
            data = {**data, "db": Path(str(data["data_dir"])) / DB_FILE_NAME}
        return data

    @field_validator("db", mode="before")
    @classmethod
    def _db_path_or_url(cls, v: Any) -> Any:
        """A postgresql:// URL stays text (a Path would fold its //); anything else is a file."""
        if isinstance(v, str) and v.startswith(("postgresql://", "postgres://")):
            return v
        return Path(v) if isinstance(v, str) else v

    @property
    def db_is_postgres(self) -> bool:
        return isinstance(self.db, str)
