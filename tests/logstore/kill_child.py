"""Child process for the SIGKILL durability test: submits rows until it is killed.

Prints "<rows submitted so far> <unix time of that burst>" after every burst so the
parent knows when each row was submitted.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from proxy.logstore.writer import LogWriter

BURST = 50


def main(db: str, spill: str, interval: float, durable: bool = False) -> None:
    writer = LogWriter(
        db,
        spill,
        flush_interval=interval,
        batch_size=1_000_000,
        queue_size=1_000_000,
        durable=durable,
    ).start()
    print("ready", flush=True)
    submitted = 0
    while True:
        now = time.time()
        created = datetime.fromtimestamp(now, UTC)
        for _ in range(BURST):
            writer.submit(
                {
                    "id": f"k{submitted:08d}",
                    "created_at": created,
                    "route": "student",
                    "request_json": {"messages": [{"role": "user", "content": "x" * 200}]},
                    "status_code": 200,
                }
            )
            submitted += 1
        print(submitted, now, flush=True)
        time.sleep(0.01)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:] == ["durable"])
