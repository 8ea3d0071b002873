"""``POST /v1/feedback`` on the server: who may rate a request, and the write.

A feedback is accepted with the client key that made the request or with the admin key.
Another client key gets the same 404 as an unknown id: request ids can be chosen by
clients (``x-request-id``), so a distinct answer would tell one client which ids another
one used. Corrections and notes pass the same secret scrubbing and PII redaction as the
request log, so a snapshot never holds text the log would not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.auth import KeyRing, bearer
from proxy.errors import NotFound, ServiceUnavailable
from proxy.logstore import feedback as store
from proxy.logstore.sink import FAILURES
from proxy.privacy.sink import redactor_from_settings, scrubber_from_settings
from proxy.protocol import FeedbackRequest
from proxy.serving.pending import PendingRows

if TYPE_CHECKING:
    from proxy.settings import Settings

TextGuard = Callable[[str], str]


@dataclass(frozen=True)
class Caller:
    key_hash: str | None  # None when the server has no client keys
    admin: bool


class FeedbackService:
    def __init__(
        self, writer: Any, keys: KeyRing, pending: PendingRows, guards: tuple[TextGuard, ...] = ()
    ) -> None:
        self._writer = writer
        self._keys = keys
        self._pending = pending
        self._guards = guards

    def caller(self, authorization: str | None) -> Caller:
        """Who is asking (401 for a missing or wrong key, before the body is read)."""
        return Caller(self._keys.client(authorization), self._keys.is_admin(bearer(authorization)))

    async def submit(
        self, body: FeedbackRequest, caller: Caller, source: str = "api"
    ) -> store.Feedback:
        """Stores one feedback; raises the proxy's errors (404, 503)."""
        key_hash, admin = caller.key_hash, caller.admin
        found = await self._resolve(body.request_id)
        if found is None or (not admin and found[1] != key_hash):
            raise NotFound(
                f"No request {body.request_id!r} for this API key.", code="request_not_found"
            )
        feedback = store.new_feedback(
            found[0],
            body.rating,
            self._guard(body.correction),
            self._guard(body.note),
            source=source,
            client_key_hash=key_hash,
        )
        try:
            await asyncio.wrap_future(self._writer.execute(store.INSERT_SQL, feedback.params()))
        except FAILURES as exc:
            raise ServiceUnavailable(f"the log database is unavailable: {exc}") from None
        return feedback

    async def _resolve(self, request_id: str) -> tuple[str, str | None] | None:
        """(the row the feedback is about, its key hash), None for an unknown id."""
        held = self._pending.owner(request_id)
        if held is not None:  # answered, its row waits for a background answer
            return held
        try:
            found = await asyncio.to_thread(self._writer.read, _resolver(request_id))
            if found is None:
                # Feedback can arrive right after the answer, before the batched writer
                # wrote its row: flush once and look again.
                await asyncio.to_thread(self._writer.flush)
                found = await asyncio.to_thread(self._writer.read, _resolver(request_id))
        except FAILURES as exc:
            raise ServiceUnavailable(f"the log database is unavailable: {exc}") from None
        return found

    def _guard(self, text: str | None) -> str | None:
        return guarded(self._guards, text)


def _resolver(request_id: str) -> Callable[[Any], tuple[str, str | None] | None]:
    return lambda cur: store.resolve(cur, request_id)


def text_guards(settings: Settings) -> tuple[TextGuard, ...]:
    """Secret scrubbing (always), then PII redaction (when on): what the log applies."""
    guards: list[TextGuard] = []
    scrubber = scrubber_from_settings(settings)
    if scrubber.active:
        guards.append(scrubber.scrub)
    redactor = redactor_from_settings(settings)
    if redactor is not None:
        guards.append(redactor.redact)
    return tuple(guards)


def guarded(guards: tuple[TextGuard, ...], text: str | None) -> str | None:
    if text is None:
        return None
    for guard in guards:
        text = guard(text)
    return text


def build_feedback(
    settings: Settings, writer: Any, keys: KeyRing, pending: PendingRows
) -> FeedbackService:
    return FeedbackService(writer, keys, pending, text_guards(settings))
