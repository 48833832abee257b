"""Reconnect policy: exponential backoff with jitter, reset after a stable connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``next_delay()`` grows initial · 2^n up to ``maximum``, ±``jitter``; ``connected_for(s)``
    with ``s >= stable_after_s`` starts over from ``initial``."""

    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 0.2
    stable_after_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * 2.0**self.attempts)
        self.attempts += 1
        return max(0.0, base * (1 + self.rng.uniform(-self.jitter, self.jitter)))

    def connected_for(self, seconds: float) -> None:
        if seconds >= self.stable_after_s:
            self.attempts = 0
