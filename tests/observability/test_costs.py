"""Cost arithmetic against hand-computed cases (USD; prices per 1M tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.observability.costs import CostModel, estimate_prompt_tokens
from proxy.observability.observer import cost_model
from proxy.observability.prices import PriceBook
from proxy.settings import Settings, TokenPrice

# gpt-4o: $2.50 in / $10.00 out; student: $0.05 per 1M tokens (defaults).
STUDENT = {
    "student_prompt_tokens": 20,
    "student_completion_tokens": 5,
    "student_text": "Paris",
    "student_latency_ms": 10.0,
}
TEACHER = {
    "teacher_prompt_tokens": 22,
    "teacher_completion_tokens": 8,
    "teacher_text": "The capital is Paris.",
    "teacher_latency_ms": 50.0,
    "teacher_model": "gpt-4o",
}


def model(**overrides: Any) -> CostModel:
    return cost_model(Settings(**overrides))


def row(**fields: Any) -> dict[str, Any]:
    return {"requested_model": "gpt-4o", "request_json": {"messages": []}, **fields}


def test_student_served_costs_student_tokens_and_saves_teacher_price() -> None:
    costs = model().price(row(route="student", reason="confident", **STUDENT))
    assert costs.actual_usd == pytest.approx(25 * 0.05e-6)
    assert costs.counterfactual_usd == pytest.approx(20 * 2.5e-6 + 5 * 10e-6)  # 1e-4
    assert costs.savings_usd == pytest.approx(1e-4 - 1.25e-6)
    assert not costs.estimated


def test_fallback_pays_both_and_counterfactual_is_the_teacher_call() -> None:
    costs = model().price(row(route="teacher", reason="low_confidence", **STUDENT, **TEACHER))
    teacher = 22 * 2.5e-6 + 8 * 10e-6  # 1.35e-4
    assert costs.teacher_usd == pytest.approx(teacher)
    assert costs.actual_usd == pytest.approx(teacher + 1.25e-6)
    assert costs.counterfactual_usd == pytest.approx(teacher)
    assert costs.savings_usd == pytest.approx(-1.25e-6)


def test_shadow_call_is_real_spend_and_counterfactual_uses_served_length() -> None:
    costs = model().price(
        row(route="student", reason="confident", shadow=True, **STUDENT, **TEACHER)
    )
    assert costs.actual_usd == pytest.approx(1.25e-6 + 1.35e-4)
    # Teacher's prompt count, the served (student) answer's length.
    assert costs.counterfactual_usd == pytest.approx(22 * 2.5e-6 + 5 * 10e-6)


def test_broken_teacher_stream_without_usage_is_estimated_not_free() -> None:
    record = row(
        route="teacher",
        reason="forced",
        status_code=502,
        teacher_model="gpt-4o",
        teacher_text="abcdefgh",
        teacher_latency_ms=30.0,
        request_json={"messages": [{"role": "user", "content": "x" * 40}]},
    )
    costs = model().price(record)
    # prompt: 40 chars / 4 + 3 per message = 13 tokens; completion: 8 chars / 4 = 2 tokens.
    assert costs.teacher_usd == pytest.approx(13 * 2.5e-6 + 2 * 10e-6)
    assert costs.counterfactual_usd == pytest.approx(costs.teacher_usd)
    assert costs.estimated


def test_nothing_served_and_no_teacher_call_has_no_counterfactual() -> None:
    costs = model().price(row(route="none", status_code=503, **STUDENT))
    assert costs.actual_usd == pytest.approx(1.25e-6)
    assert costs.counterfactual_usd == 0.0


def test_failed_student_call_without_answer_costs_nothing() -> None:
    costs = model().price(row(route="teacher", reason="student_timeout", **TEACHER))
    assert costs.student_usd == 0.0
    assert costs.actual_usd == pytest.approx(1.35e-4)


def test_gpu_hour_pricing_charges_generated_tokens() -> None:
    # $3.60/h at 100 tokens/s: $1e-5 per generated token.
    m = model(student_gpu_hour_usd=3.6, student_tokens_per_second=100)
    costs = m.price(row(route="student", reason="confident", **STUDENT))
    assert costs.actual_usd == pytest.approx(5 * 1e-5)


def test_student_price_per_million_is_configurable() -> None:
    costs = model(student_price_per_1m=1.0).price(row(route="student", **STUDENT))
    assert costs.actual_usd == pytest.approx(25e-6)


def test_apply_writes_the_log_columns() -> None:
    record = row(route="student", **STUDENT)
    model().apply(record)
    assert record["cost_usd"] == pytest.approx(1.25e-6)
    assert record["counterfactual_cost_usd"] == pytest.approx(1e-4)


def test_counterfactual_model_falls_back_to_configured_teacher_then_requested() -> None:
    record = row(route="student", requested_model="my-alias", **STUDENT)
    configured = model(teacher_model="gpt-4o-mini").price(record)
    assert configured.counterfactual_usd == pytest.approx(20 * 0.15e-6 + 5 * 0.6e-6)
    unknown = model().price(record)  # unknown name: the default teacher price ($2.5/$10)
    assert unknown.counterfactual_usd == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", (2.5, 10.0)),
        ("gpt-4o-2024-08-06", (2.5, 10.0)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.6)),
        ("GPT-4.1-nano", (0.1, 0.4)),
        ("o3-mini", (1.1, 4.4)),
        ("gpt-3.5-turbo-0125", (0.5, 1.5)),
        ("llama-70b", (2.5, 10.0)),
        (None, (2.5, 10.0)),
    ],
)
def test_price_lookup(name: str | None, expected: tuple[float, float]) -> None:
    price = PriceBook.from_settings(Settings()).price(name)
    assert (price.input, price.output) == pytest.approx(expected)


def test_prices_overridable_from_toml_and_env(tmp_path: Path, monkeypatch: Any) -> None:
    config = tmp_path / "distill.toml"
    config.write_text(
        '[teacher_prices."gpt-4o"]\ninput = 5.0\noutput = 15.0\n'
        "[teacher_default_price]\ninput = 1.0\noutput = 2.0\n"
    )
    monkeypatch.setenv("DISTILL_CONFIG", str(config))
    book = PriceBook.from_settings(Settings())
    assert book.price("gpt-4o") == TokenPrice(input=5.0, output=15.0)
    assert book.price("gpt-4o-mini") == TokenPrice(input=0.15, output=0.6)  # defaults kept
    assert book.price("unknown") == TokenPrice(input=1.0, output=2.0)
    monkeypatch.delenv("DISTILL_CONFIG")
    monkeypatch.setenv("DISTILL_TEACHER_PRICES", '{"my-teacher": {"input": 3, "output": 4}}')
    assert PriceBook.from_settings(Settings()).price("my-teacher") == TokenPrice(input=3, output=4)


def test_prompt_estimate_reads_text_parts_and_json_text() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd" * 5}]}]}
    assert estimate_prompt_tokens(body) == 5 + 3
    assert estimate_prompt_tokens('{"messages": [{"role": "user", "content": "abcd"}]}') == 4
