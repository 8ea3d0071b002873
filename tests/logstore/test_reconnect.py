"""`Reconnect`: the log database's retry backoff (1 s doubling to 30 s) and its /readyz text."""

from __future__ import annotations

from proxy.logstore.reconnect import Reconnect


def test_backoff_doubles_to_thirty_seconds_and_resets_on_success() -> None:
    now = [100.0]
    retry = Reconnect("postgresql://db", clock=lambda: now[0])
    assert retry.due() and not retry.down and retry.describe() == "reachable"
    waits = []
    for _ in range(7):
        retry.failed(ConnectionError("refused"))
        waits.append(retry.retry_in())
        assert not retry.due()
        now[0] += retry.retry_in()
        assert retry.due()
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert retry.attempts == 7 and retry.last_error == "ConnectionError: refused"
    assert retry.describe() == "unreachable, retrying in 1 s; rows go to the spill journal"
    retry.succeeded()
    assert retry.due() and not retry.down and retry.describe() == "reachable"
    retry.failed(OSError("again"))
    assert retry.retry_in() == 1  # a new outage starts at the first delay
