"""`POST /v1/feedback` against the real app (fake upstreams): who may send it, what is
stored, the latest feedback counting, persistence across restarts and in snapshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

from proxy.logstore.snapshot import export_snapshot
from tests.fakes import FakeUpstream, hang

KEYS = {"api_keys": "key-alice,key-bob", "admin_key": "key-admin"}
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def ask(h: Any, key: str, request_id: str, route: str = "teacher") -> None:
    h.client(api_key=key).chat.completions.create(
        model="m",
        messages=MESSAGES,
        extra_headers={"x-request-id": request_id, "x-distill-route": route},
    )


def feedback(h: Any, key: str | None, **body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{h.url}/v1/feedback", json=body, headers=headers)


def stored(h: Any) -> list[tuple[Any, ...]]:
    return h.app.state.writer.read(  # type: ignore[no-any-return]
        lambda c: c.execute(
            "SELECT request_id, rating, correction, note, source FROM feedback ORDER BY created_at"
        ).fetchall()
    )


def test_feedback_by_the_owning_key_is_stored_and_returned(
    make_proxy: Callable[..., Any],
) -> None:
    with make_proxy(**KEYS) as h:
        ask(h, "key-alice", "req-a1")
        resp = feedback(
            h, "key-alice", request_id="req-a1", rating="bad", correction="Paris", note="short"
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["object"] == "feedback" and body["id"].startswith("fb_")
        assert (body["request_id"], body["rating"], body["correction"], body["note"]) == (
            "req-a1", "bad", "Paris", "short",
        )  # fmt: skip
        assert isinstance(body["created_at"], int)
        assert stored(h) == [("req-a1", "bad", "Paris", "short", "api")]


def test_feedback_right_after_the_answer_finds_the_unflushed_row(
    make_proxy: Callable[..., Any],
) -> None:
    # The writer would only flush after 30 s: the endpoint must flush it itself.
    with make_proxy(log_flush_interval=30.0, **KEYS) as h:
        ask(h, "key-alice", "req-fresh")
        assert feedback(h, "key-alice", request_id="req-fresh", rating="good").status_code == 200


def test_feedback_while_the_row_waits_for_a_background_answer(
    make_proxy: Callable[..., Any],
) -> None:
    # Cold start: the teacher answers at once, the row is written once the (slow) student's
    # background answer is in too. Feedback sent in between must not be a 404.
    student = FakeUpstream(script=[hang(1.5)], default_text="Paris")
    with make_proxy(student=student, target_agreement=0.9, student_timeout=5, **KEYS) as h:
        ask(h, "key-alice", "req-slow", route="auto")
        assert h.app.state.pending.owner("req-slow") is not None  # not logged yet
        assert h.app.state.writer.stats.held == 1  # but journaled: a crash would not lose it
        assert feedback(h, "key-bob", request_id="req-slow", rating="bad").status_code == 404
        resp = feedback(h, "key-alice", request_id="req-slow", correction="Paris")
        assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 10
        while h.app.state.pending.owner("req-slow") and time.monotonic() < deadline:
            time.sleep(0.05)
        h.flush()
        assert len(h.app.state.pending) == 0 and h.app.state.writer.stats.held == 0
        row = next(r for r in h.rows() if r["id"] == "req-slow")
        assert row["student_text"] == "Paris" and row["teacher_text"]
        assert stored(h) == [("req-slow", None, "Paris", None, "api")]


def test_feedback_refused_for_another_client_key(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(**KEYS) as h:
        ask(h, "key-alice", "req-a2")
        resp = feedback(h, "key-bob", request_id="req-a2", rating="bad")
        assert resp.status_code == 404
        error = resp.json()["error"]
        assert error["type"] == "not_found_error" and error["code"] == "request_not_found"
        assert stored(h) == []
        # The admin key may rate anyone's request.
        assert feedback(h, "key-admin", request_id="req-a2", rating="good").status_code == 200
        assert [r[1] for r in stored(h)] == ["good"]


def test_unknown_id_is_an_openai_404(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(**KEYS) as h:
        resp = feedback(h, "key-admin", request_id="req-nope", rating="bad")
        assert resp.status_code == 404
        assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
        assert "req-nope" in resp.json()["error"]["message"]


def test_invalid_feedback_is_400_and_a_wrong_key_401(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(**KEYS) as h:
        ask(h, "key-alice", "req-a3")
        bad_rating = feedback(h, "key-alice", request_id="req-a3", rating="meh")
        assert bad_rating.status_code == 400
        assert bad_rating.json()["error"]["type"] == "invalid_request_error"
        assert feedback(h, "key-alice", request_id="req-a3").status_code == 400
        assert feedback(h, "key-alice", rating="bad").status_code == 400
        assert feedback(h, "wrong-key", request_id="req-a3", rating="bad").status_code == 401
        assert feedback(h, None, request_id="req-a3", rating="bad").status_code == 401
        assert stored(h) == []


def test_latest_feedback_counts_all_are_kept_and_survive_a_restart(
    make_proxy: Callable[..., Any], tmp_path: Path
) -> None:
    with make_proxy(**KEYS) as h:
        ask(h, "key-alice", "req-a4")
        ask(h, "key-alice", "req-a5")
        for body in (
            {"rating": "good"},
            {"rating": "bad", "correction": "Paris."},
            {"rating": "bad", "correction": "Paris"},
        ):
            assert feedback(h, "key-alice", request_id="req-a4", **body).status_code == 200
    # A new server on the same file: the feedback is still there and in a snapshot.
    with make_proxy(**KEYS) as h:
        assert len(stored(h)) == 3
        h.flush()
        snap = export_snapshot(h.app.state.writer, tmp_path / "snap.parquet")
    with duckdb.connect() as conn:
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT id, feedback_rating, feedback_correction, feedback_count "
                f"FROM read_parquet('{snap}')"
            ).fetchall()
        )
    assert rows == {"req-a4": ("bad", "Paris", 3), "req-a5": (None, None, None)}


def test_without_client_keys_anyone_may_send_feedback(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        ask(h, "unused", "req-open")
        assert feedback(h, None, request_id="req-open", rating="good").status_code == 200


def test_corrections_are_redacted_like_the_log(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(redact_pii=True, **KEYS) as h:
        ask(h, "key-alice", "req-pii")
        resp = feedback(
            h, "key-alice", request_id="req-pii", correction="mail me at jane.doe@example.com"
        )
        assert resp.status_code == 200
        assert "jane.doe@example.com" not in str(stored(h))


def test_a_retried_request_id_means_its_newest_attempt(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(**KEYS) as h:
        ask(h, "key-alice", "req-retry")
        ask(h, "key-alice", "req-retry")  # the client retried with its own id
        h.flush()
        resp = feedback(h, "key-alice", request_id="req-retry", correction="Paris")
        assert resp.status_code == 200
        assert resp.json()["request_id"] == "req-retry~2"
        # The attempt's own id works as well.
        assert feedback(h, "key-alice", request_id="req-retry~2", rating="good").status_code == 200
        assert [r[0] for r in stored(h)] == ["req-retry~2", "req-retry~2"]
