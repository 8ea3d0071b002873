"""Per-task rows on a real PostgreSQL: the `task` column (migration 4) written for served,
excluded and refused requests, and `GET /admin/tasks` (its SQL translated) over them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from proxy.tasks.identity import derive_task
from tests.observability.traffic import MODEL
from tests.tasks.helpers import SYSTEM_A, SYSTEM_B, chat_body, messages

pytestmark = pytest.mark.postgres

ADMIN = "admin-key-PG-tasks"


def test_task_rows_and_admin_tasks_on_postgres(make_proxy: Callable[..., Any], pg_url: str) -> None:
    tables = {"private": {"match": ["prefix:Extract the city"], "exclude": True}}
    with make_proxy(db=pg_url, admin_key=ADMIN, tasks=tables) as h:
        client = h.client()
        for number in (1, 2, 3):  # one derived task: only the number differs
            client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A, number))
        client.chat.completions.create(
            model=MODEL, messages=messages(SYSTEM_A), metadata={"distill_task": "named"}
        )
        excluded = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages(SYSTEM_B)
        )
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model=MODEL, messages=messages(SYSTEM_A), extra_headers={"x-distill-task": "a b"}
            )
        h.flush()
        auth = {"authorization": f"Bearer {ADMIN}"}
        report = httpx.get(f"{h.url}/admin/tasks", params={"since": "1h"}, headers=auth).json()
        rows = h.rows()
    derived = derive_task(chat_body(SYSTEM_A))
    assert excluded.headers["x-distill-reason"] == "task_excluded"
    assert [(r["task"], r["route"], r["status_code"]) for r in rows] == [
        (derived, "student", 200),
        (derived, "student", 200),
        (derived, "student", 200),
        ("named", "student", 200),
        ("private", "teacher", 200),
        (derived, "none", 400),
    ]
    tasks = {t["task"]: t for t in report["tasks"]}
    assert [t["task"] for t in report["tasks"]] == [derived, "named", "private"]
    assert (tasks[derived]["requests"], tasks[derived]["answered"]) == (4, 3)
    assert tasks[derived]["student_share"] == 1.0
    assert tasks["private"]["excluded"] and tasks["private"]["teacher_calls"] == 1
    assert tasks["private"]["serving"]["status"] == "excluded"
