"""Log rows held back until their background work ends (a cold-start student answer, a
shadow call): the complete row is submitted only once both answers are in, seconds after
the client got its response. So that a crash in between loses no acknowledged row, the
row is journaled as it is when its response goes out (`RowJournal`: the log sink, which
scrubs it first; see `proxy.logstore.held`) and released once its complete form is
submitted. Feedback on such a request (``POST /v1/feedback``) finds its owner here
instead of getting a 404 for a row that is not written yet."""

from __future__ import annotations

from typing import Any, Protocol

Owner = tuple[str, str | None]
"""(the row id, the key hash that made the request), as `proxy.logstore.feedback.resolve`."""


class RowJournal(Protocol):
    def hold(self, record: dict[str, Any]) -> Any:
        """Journals the row as it is now; returns a token for `release` (None: not kept)."""

    def release(self, token: Any) -> None:
        """The row's complete form was submitted: its held copy may go."""


class PendingRows:
    """Request ids of held-back rows. Used from the event loop only."""

    def __init__(self, journal: RowJournal | None = None) -> None:
        self._owners: dict[str, Owner] = {}
        self._journal = journal

    @staticmethod
    def _ids(record: dict[str, Any]) -> set[str]:
        return {str(v) for v in (record.get("id"), record.get("request_id")) if v is not None}

    def hold(self, record: dict[str, Any]) -> Any:
        """The row's response went out; returns the token to pass to `release`."""
        owner = (str(record["id"]), record.get("client_key_hash"))
        for request_id in self._ids(record):
            self._owners[request_id] = owner
        return self._journal.hold(record) if self._journal is not None else None

    def release(self, record: dict[str, Any], token: Any = None) -> None:
        """The row went to the writer: from now on the log answers for it."""
        for request_id in self._ids(record):
            self._owners.pop(request_id, None)
        if self._journal is not None:
            self._journal.release(token)

    def owner(self, request_id: str) -> Owner | None:
        return self._owners.get(request_id)

    def __len__(self) -> int:
        return len(self._owners)
