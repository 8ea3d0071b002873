"""Log rows held back until their background work ends (a cold-start student answer, a
shadow call): the row is written only once both answers are in, seconds after the client
got its response. Feedback on such a request (``POST /v1/feedback``) finds its owner here
instead of getting a 404 for a row that is not written yet."""

from __future__ import annotations

from typing import Any

Owner = tuple[str, str | None]
"""(the row id, the key hash that made the request), as `proxy.feedback.store.resolve`."""


class PendingRows:
    """Request ids of held-back rows. Used from the event loop only."""

    def __init__(self) -> None:
        self._owners: dict[str, Owner] = {}

    @staticmethod
    def _ids(record: dict[str, Any]) -> set[str]:
        return {str(v) for v in (record.get("id"), record.get("request_id")) if v is not None}

    def hold(self, record: dict[str, Any]) -> None:
        owner = (str(record["id"]), record.get("client_key_hash"))
        for request_id in self._ids(record):
            self._owners[request_id] = owner

    def release(self, record: dict[str, Any]) -> None:
        """The row went to the writer: from now on the log answers for it."""
        for request_id in self._ids(record):
            self._owners.pop(request_id, None)

    def owner(self, request_id: str) -> Owner | None:
        return self._owners.get(request_id)

    def __len__(self) -> int:
        return len(self._owners)
