"""Risk levels, ordered so that policies can say "at least high"."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RiskLevel"]


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: RiskLevel) -> bool:
        return self.rank >= other.rank

    def raised_to(self, other: RiskLevel) -> RiskLevel:
        return self if self.rank >= other.rank else other


_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2, RiskLevel.CRITICAL: 3}
