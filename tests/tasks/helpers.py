"""Shared bits of the task tests: prompts and bodies."""

from __future__ import annotations

from typing import Any

from tests.observability.traffic import MODEL

SYSTEM_A = "You are support agent {n}. Classify the customer's intent."
SYSTEM_B = "Extract the city from the message."


def messages(system: str, number: int = 7, user: str = "my card is lost") -> list[Any]:
    return [
        {"role": "system", "content": system.replace("{n}", str(number))},
        {"role": "user", "content": user},
    ]


def chat_body(system: str, number: int = 7) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages(system, number)}
