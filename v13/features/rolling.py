"""O(1) rolling statistics for the hot path (no pandas)."""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RollingStats", "RollingSum"]


class RollingStats:
    """Mean and population std of the last ``window`` values, updated in O(1)."""

    __slots__ = ("_sum", "_sumsq", "_values")

    def __init__(self, window: int) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._sumsq = 0.0

    def __len__(self) -> int:
        return len(self._values)

    def push(self, x: float) -> None:
        if len(self._values) == self._values.maxlen:
            old = self._values[0]
            self._sum -= old
            self._sumsq -= old * old
        self._values.append(x)
        self._sum += x
        self._sumsq += x * x

    def mean(self) -> float:
        n = len(self._values)
        return self._sum / n if n else 0.0

    def std(self) -> float:
        n = len(self._values)
        if n < 2:
            return 0.0
        mean = self._sum / n
        return math.sqrt(max(0.0, self._sumsq / n - mean * mean))

    def zscore(self, x: float, floor: float, clip: float) -> float:
        """z of ``x`` against the values so far (``x`` itself excluded), σ floored, clipped."""
        z = (x - self.mean()) / max(self.std(), floor)
        return max(-clip, min(clip, z))

    def clear(self) -> None:
        self._values.clear()
        self._sum = 0.0
        self._sumsq = 0.0


class RollingSum:
    """Sum of the last ``window`` values."""

    __slots__ = ("_sum", "_values")

    def __init__(self, window: int) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self._sum = 0.0

    def __len__(self) -> int:
        return len(self._values)

    def push(self, x: float) -> None:
        if len(self._values) == self._values.maxlen:
            self._sum -= self._values[0]
        self._values.append(x)
        self._sum += x

    @property
    def total(self) -> float:
        return self._sum

    def clear(self) -> None:
        self._values.clear()
        self._sum = 0.0
