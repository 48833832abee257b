"""The DoD's numbers, and how they scale for runs shorter than the reference (30 minutes).

Rule: count thresholds (JSONL shards, SQLite rows, orders) scale with the run's steady-state
time, ``max(0, minutes - 0.25) / (reference - 0.25)`` (15 s of start-up excluded), rounded up,
at least 1; at the reference length or longer the factor is 1, so nothing is weakened at 30
minutes. Limits (RSS, open files, dropped == 0, rotation per minute) never scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from v13.config import AcceptanceConfig

__all__ = ["STARTUP_MINUTES", "Thresholds"]

STARTUP_MINUTES = 0.25


@dataclass(frozen=True)
class Thresholds:
    minutes: float
    reference_minutes: float
    factor: float
    jsonl_shards_min: int
    sqlite_rows_min: int
    orders_min: int
    rss_mb_max: float
    open_files_max: int
    contract_sample: int

    @classmethod
    def for_run(cls, acc: AcceptanceConfig, minutes: float) -> Thresholds:
        ref = acc.reference_minutes
        factor = 1.0 if minutes >= ref else max(0.0, minutes - STARTUP_MINUTES) / (ref - STARTUP_MINUTES)

        def scaled(n: int) -> int:
            return max(1, math.ceil(n * factor - 1e-9))

        return cls(
            minutes=minutes,
            reference_minutes=ref,
            factor=factor,
            jsonl_shards_min=scaled(acc.jsonl_shards_min),
            sqlite_rows_min=scaled(acc.sqlite_rows_min),
            orders_min=scaled(acc.orders_min),
            rss_mb_max=acc.rss_mb_max,
            open_files_max=acc.open_files_max,
            contract_sample=acc.contract_sample,
        )

    def describe(self) -> str:
        scale = (
            "absolute DoD numbers"
            if self.factor >= 1
            else f"counts scaled by {self.factor:.4f} = ({self.minutes:g} - {STARTUP_MINUTES}) / "
            f"({self.reference_minutes:g} - {STARTUP_MINUTES})"
        )
        return (
            f"{self.minutes:g}-minute runs, {scale}: JSONL shards >= {self.jsonl_shards_min}, "
            f"SQLite rows >= {self.sqlite_rows_min}, orders >= {self.orders_min} (both sides); "
            f"RSS < {self.rss_mb_max:g} MB, open files < {self.open_files_max}, dropped == 0, "
            "rotation >= 1/min"
        )
