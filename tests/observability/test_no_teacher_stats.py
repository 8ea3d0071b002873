"""Without a teacher, `distill stats`, the admin API and the dashboard data say so and count the
degraded answers, instead of a "fallback rate 0.0%" and "saved 89%" (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.cli import main
from tests.conftest import ProxyHarness
from tests.fakes import error_response
from tests.observability.test_cli import _use
from tests.observability.traffic import MODEL, QUESTION, drive, unsure_student
from tests.server_thread import free_port

ADMIN = "adm-no-teacher-key-SECRET"
BEARER = {"authorization": f"Bearer {ADMIN}"}
NO_TEACHER = {"teacher_url": "https://api.openai.com/v1", "teacher_api_key": None}


def _student_only_traffic(h: ProxyHarness) -> None:
    """2 unsure answers (served degraded), 1 confident one, 1 request nothing answered."""
    client = h.client()
    h.student.script += [unsure_student, unsure_student]
    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=QUESTION)
    h.student.script.append(lambda body: error_response(500, "student crashed"))
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=MODEL, messages=QUESTION)
    h.flush()


def _stats(h: ProxyHarness, path: str = "/admin/stats") -> dict[str, Any]:
    response = httpx.get(f"{h.url}{path}?since=1h", headers=BEARER)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_admin_api_says_no_teacher_and_counts_degraded(make_proxy: Callable[..., Any]) -> None:
    with make_proxy(admin_key=ADMIN, **NO_TEACHER) as h:
        _student_only_traffic(h)
        report = _stats(h)
        s = report["summary"]
        assert report["teacher_configured"] is False
        assert s["routes"] == {"student": 3, "none": 1}
        assert s["degraded"] == 2 and s["degraded_by"] == {"no-teacher": 2}
        assert s["no_teacher"] == 3 and s["teacher_calls"] == 0
        assert s["fallback_rate"] is None  # not 0.0: there was nothing to fall back to
        assert s["savings_usd"] is None and s["savings_pct"] is None
        assert s["cost_usd"] > 0  # the student's answers still cost what they cost
        dashboard = _stats(h, "/admin/dashboard/data")
        assert dashboard["teacher_configured"] is False
        assert dashboard["summary"]["degraded"] == 2
        assert dashboard["timeseries"] and all(
            b["fallback_rate"] is None for b in dashboard["timeseries"]
        )


def test_with_a_teacher_the_numbers_stay_and_degraded_is_counted(
    make_proxy: Callable[..., Any],
) -> None:
    with make_proxy(admin_key=ADMIN) as h:
        drive(h)
        h.student.script.append(unsure_student)
        retries = h.settings.teacher_retries
        h.teacher.script += [lambda body: error_response(503, "overloaded")] * (retries + 1)
        raw = h.client().chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)
        assert raw.headers["x-distill-degraded"] == "teacher-unavailable"
        h.flush()
        report = _stats(h)
        s = report["summary"]
        assert report["teacher_configured"] is True
        assert s["degraded"] == 1 and s["degraded_by"] == {"teacher-unavailable": 1}
        assert s["fallback_rate"] == pytest.approx(3 / 6)
        assert s["savings_usd"] is not None and s["savings_pct"] is not None


def _line(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if label in line)


def _check_text(out: str) -> None:
    assert "no teacher configured" in _line(out, "fallback rate")
    saved = _line(out, "saved")
    assert "no teacher configured" in saved and "$" not in saved and "%" not in saved
    assert "degraded answers" in out and "2 (50.0%): no-teacher 2" in out
    assert "route none (refused, or failed before any upstream answered)" in out
    assert "route student (the student's answer was served)" in out


def test_distill_stats_from_the_server_and_from_the_file(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with make_proxy(admin_key=ADMIN, **NO_TEACHER) as h:
        _student_only_traffic(h)
        _use(monkeypatch, h.url, tmp_path / "elsewhere.duckdb", key=ADMIN)
        assert main(["stats", "--since", "1h"]) == 0
        out = capsys.readouterr().out
        assert f"from server {h.url}" in out
        _check_text(out)
        db = h.settings.db
    # The server is stopped; the CLI's own environment has a teacher key, yet the log shows
    # that no teacher answered anything: the file is the truth.
    _use(monkeypatch, f"http://127.0.0.1:{free_port()}", db, key=ADMIN)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-shell-key")
    assert main(["stats", "--since", "all"]) == 0
    out = capsys.readouterr().out
    assert f"from file {db}" in out
    _check_text(out)
    assert main(["stats", "--since", "all", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["teacher_configured"] is False and report["summary"]["fallback_rate"] is None
