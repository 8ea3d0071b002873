"""`distill stats --by label|tag` and GET /admin/breakdown on traffic through the real app:
per group the student's share, agreement, gold accuracy, and labels it never serves."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.cli import main
from proxy.observability.breakdown import FREE_TEXT, _label
from tests.fakes import FakeUpstream, completion, json_response
from tests.server_thread import free_port

ADMIN = "adm-breakdown-SECRET-3"


@dataclass
class LabelUpstream(FakeUpstream):
    """Answers the label named in the question; a `student` gets exchange_rate wrong."""

    student: bool = False

    def answer(self, body: dict[str, Any]) -> httpx.Response:
        label = str(body["messages"][-1]["content"]).split()[-1]
        wrong = self.student and label == "exchange_rate"
        text = "card_arrival" if wrong else label
        logprob = -5.0 if wrong else -0.05
        payload = completion(text, logprob=logprob, with_logprobs=bool(body.get("logprobs")))
        return json_response(200, payload)


def _ask(h: Any, i: int, label: str, tag: str) -> str:
    raw = h.client().chat.completions.with_raw_response.create(
        model="m",
        messages=[{"role": "user", "content": f"query {i} about {label}"}],
        extra_headers={"x-distill-tag": tag},
    )
    return str(raw.headers["x-request-id"])


def test_breakdown_by_label_and_tag(
    make_proxy: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with make_proxy(
        student=LabelUpstream(student=True), teacher=LabelUpstream(), admin_key=ADMIN
    ) as h:
        served = [_ask(h, i, "card_arrival", "cards") for i in range(4)]
        fallback = [_ask(h, 10 + i, "exchange_rate", "fx") for i in range(3)]
        for request_id, body in (
            (served[0], {"rating": "good"}),
            (fallback[0], {"correction": "exchange_rate"}),
        ):
            resp = httpx.post(
                f"{h.url}/v1/feedback",
                json={"request_id": request_id, **body},
                headers={"authorization": f"Bearer {ADMIN}"},
            )
            assert resp.status_code == 200, resp.text
        h.flush()
        api = httpx.get(
            f"{h.url}/admin/breakdown",
            params={"by": "label", "since": "all"},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert api.status_code == 200, api.text
        groups = {g["name"]: g for g in api.json()["groups"]}
        cards, fx = groups["card_arrival"], groups["exchange_rate"]
        assert (cards["requests"], cards["student_share"]) == (4, 1.0)
        assert (cards["gold_accuracy"], cards["gold_n"]) == (1.0, 1)
        assert (fx["requests"], fx["student_share"], fx["agreement"]) == (3, 0.0, 0.0)
        assert (fx["gold_accuracy"], fx["teacher_gold_accuracy"]) == (0.0, 1.0)
        assert api.json()["never_served"] == ["exchange_rate"]
        bad = httpx.get(
            f"{h.url}/admin/breakdown",
            params={"by": "color"},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert bad.status_code == 400

        monkeypatch.delenv("DISTILL_CONFIG", raising=False)
        monkeypatch.setenv("DISTILL_SERVER_URL", h.url)
        monkeypatch.setenv("DISTILL_ADMIN_KEY", ADMIN)
        monkeypatch.setenv("DISTILL_DB", str(tmp_path / "elsewhere.duckdb"))
        assert main(["stats", "--by", "tag", "--since", "all", "--json"]) == 0
        tags = {g["name"]: g for g in json.loads(capsys.readouterr().out)["groups"]}
        assert tags["cards"]["student_share"] == 1.0 and tags["fx"]["student_share"] == 0.0
        db = h.settings.db
    # The server is gone: the same table from the file.
    monkeypatch.setenv("DISTILL_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DISTILL_DB", str(db))
    assert main(["stats", "--by", "label", "--since", "all"]) == 0
    out = capsys.readouterr().out
    assert f"from file {db}" in out and "where the student is weak, by label" in out
    assert "never served by the student (1): exchange_rate" in out
    # `distill stats` shows the gold accuracies next to the rest.
    assert main(["stats", "--since", "all"]) == 0
    out = capsys.readouterr().out
    assert "feedback: 2 gold rows, 0 rated bad" in out
    assert "accuracy on gold rows: student 0.500 [" in out and "(n=2), teacher 1.000" in out


def test_json_answers_are_no_labels() -> None:
    """A short JSON answer (`{"city": "Paris"}` is two words) is scored field by field, not
    by exact match, so by label it is free text, not a label of its own."""
    assert _label('{"city": "Paris"}', None) == FREE_TEXT
    assert _label("[]", None) == FREE_TEXT
    assert _label("card_arrival", None) == "card_arrival"
