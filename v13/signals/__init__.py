"""The signal engine: StrategyMode, guards, thresholds -> signal rows."""

from v13.signals.engine import GUARD_CODES, SignalEngine
from v13.signals.mode import StrategyMode

__all__ = ["GUARD_CODES", "SignalEngine", "StrategyMode"]
