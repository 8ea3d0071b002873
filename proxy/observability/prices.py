"""Price lookup: what a teacher model and the student charge per token.

The built-in table holds public list prices (USD per 1M tokens, standard tier)
of common OpenAI models; `Settings.teacher_prices` overrides or extends it.
A dated model name (``gpt-4o-2024-08-06``) takes the price of the longest
table entry it starts with, so ``gpt-4o-mini-2024-07-18`` is priced as
``gpt-4o-mini``, not ``gpt-4o``.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.settings import Settings, TokenPrice

# (input, output) USD per 1M tokens. List prices change: override them in config.
DEFAULT_TEACHER_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}

_PER_TOKEN = 1e-6


@dataclass(frozen=True)
class StudentPricing:
    """Student cost per prompt and per completion token, in USD."""

    per_prompt_token: float
    per_completion_token: float

    @classmethod
    def from_settings(cls, settings: Settings) -> StudentPricing:
        if settings.student_gpu_hour_usd is not None:
            # Throughput is measured in generated tokens per second with prompt processing
            # inside the measured time, so only completion tokens carry the GPU cost.
            per_token = settings.student_gpu_hour_usd / 3600.0 / settings.student_tokens_per_second
            return cls(0.0, per_token)
        per_token = settings.student_price_per_1m * _PER_TOKEN
        return cls(per_token, per_token)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.per_prompt_token + completion_tokens * self.per_completion_token


class PriceBook:
    """Teacher prices by model name, with a default for unknown models."""

    def __init__(self, table: dict[str, TokenPrice], default: TokenPrice) -> None:
        self._table = dict(table)
        self._default = default
        # Longest names first: the first prefix match is the most specific one.
        self._prefixes = sorted(self._table, key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceBook:
        table = {
            name: TokenPrice(input=i, output=o) for name, (i, o) in DEFAULT_TEACHER_PRICES.items()
        }
        table.update(settings.teacher_prices)
        return cls(table, settings.teacher_default_price)

    def price(self, model: str | None) -> TokenPrice:
        if not model:
            return self._default
        name = model.strip().lower()
        exact = self._table.get(model) or self._table.get(name)
        if exact is not None:
            return exact
        for prefix in self._prefixes:
            if name.startswith(prefix.lower() + "-"):
                return self._table[prefix]
        return self._default

    def cost(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price(model)
        return (prompt_tokens * price.input + completion_tokens * price.output) * _PER_TOKEN
