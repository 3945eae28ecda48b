"""Per-model prices, so every LLM call's cost is estimated before (reserved in the budget
through the interceptor) and committed from the real usage after.

Prices are integer micro-dollars per million tokens. A model not in the table is charged at
the most expensive known rate: an unknown model must not make spending unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._types import Usage

__all__ = ["Pricing", "price_for", "MODEL_PRICES"]


@dataclass(frozen=True)
class Pricing:
    """Micro-dollars per million tokens."""

    input_per_million: int = 3_000_000
    output_per_million: int = 15_000_000

    def cost(self, usage: Usage) -> int:
        return (
            usage.input_tokens * self.input_per_million
            + usage.output_tokens * self.output_per_million
        ) // 1_000_000


# Longest prefix wins, so "claude-sonnet-4-5-20250929" matches "claude-sonnet-4".
MODEL_PRICES: dict[str, Pricing] = {
    "claude-opus-4": Pricing(15_000_000, 75_000_000),
    "claude-opus-4-5": Pricing(5_000_000, 25_000_000),
    "claude-sonnet-4": Pricing(3_000_000, 15_000_000),
    "claude-3-7-sonnet": Pricing(3_000_000, 15_000_000),
    "claude-haiku-4": Pricing(1_000_000, 5_000_000),
    "claude-3-5-haiku": Pricing(800_000, 4_000_000),
    "gpt-4o-mini": Pricing(150_000, 600_000),
    "gpt-4o": Pricing(2_500_000, 10_000_000),
    "gpt-4.1-mini": Pricing(400_000, 1_600_000),
    "gpt-4.1-nano": Pricing(100_000, 400_000),
    "gpt-4.1": Pricing(2_000_000, 8_000_000),
    "gpt-5-mini": Pricing(250_000, 2_000_000),
    "gpt-5-nano": Pricing(50_000, 400_000),
    "gpt-5": Pricing(1_250_000, 10_000_000),
    "o3": Pricing(2_000_000, 8_000_000),
    "o4-mini": Pricing(1_100_000, 4_400_000),
}

_MOST_EXPENSIVE = max(MODEL_PRICES.values(), key=lambda p: p.output_per_million)


def price_for(model: str, overrides: dict[str, Pricing] | None = None) -> Pricing:
    """The price of ``model``: an exact or longest-prefix match in ``overrides`` then the
    built-in table; unknown models get the most expensive known price."""
    for table in (overrides or {}, MODEL_PRICES):
        matches = [prefix for prefix in table if model.startswith(prefix)]
        if matches:
            return table[max(matches, key=len)]
    return _MOST_EXPENSIVE
