"""The request log: DuckDB schema and migrations, the batched writer with its spill
journal, Parquet snapshots for the trainer, and read queries for stats."""

from proxy.logstore.hashing import key_hash, prompt_hash
from proxy.logstore.schema import REQUEST_COLUMNS, migrate
from proxy.logstore.snapshot import export_snapshot, open_readonly
from proxy.logstore.writer import LogStoreUnavailable, LogWriter, LogWriterStats

__all__ = [
    "REQUEST_COLUMNS",
    "LogStoreUnavailable",
    "LogWriter",
    "LogWriterStats",
    "export_snapshot",
    "key_hash",
    "migrate",
    "open_readonly",
    "prompt_hash",
]
