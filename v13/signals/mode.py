"""StrategyMode: decides the regime (active | quiet) of each symbol from its activity.

In ``auto`` mode an activity score in [0, 1] (the mean of trade rate, quote rate, realised vol
and traded volume, each against a reference and capped at 1) switches the regime with
hysteresis: above ``enter_active_score`` for ``min_dwell_s`` of event time -> active; below
``exit_active_score`` for ``min_dwell_s`` -> quiet. Until a symbol has ``min_dwell_s`` of
history its regime is not established and the base thresholds apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from v13.config import ModeKind, StrategyModeConfig
from v13.contracts import FeatureRow

__all__ = ["ModeState", "StrategyMode"]


@dataclass
class ModeState:
    regime: str = "quiet"
    established: bool = False
    first_ts: int | None = None
    pending_since: int | None = None  # event time the score first crossed toward a switch


class StrategyMode:
    """Per-symbol regimes; :meth:`update` is called once per feature row, in ts order."""

    def __init__(self, cfg: StrategyModeConfig) -> None:
        self.cfg = cfg
        self._states: dict[str, ModeState] = {}

    def activity(self, f: FeatureRow) -> float:
        c = self.cfg
        parts = (
            f.trade_rate / c.trade_rate_ref,
            f.quote_rate / c.quote_rate_ref,
            f.realized_vol_bps / c.vol_bps_ref,
            f.volume_usd / c.volume_usd_ref,
        )
        return sum(min(1.0, max(0.0, p)) for p in parts) / len(parts)

    def reset(self, symbol: str) -> None:
        self._states.pop(symbol, None)

    def update(self, f: FeatureRow) -> ModeState:
        """The symbol's regime after this feature row."""
        st = self._states.setdefault(f.symbol, ModeState())
        c = self.cfg
        if c.mode is not ModeKind.AUTO:
            st.regime = c.mode.value
            st.established = True
            return st
        if st.first_ts is None:
            st.first_ts = f.ts_ms
        dwell_ms = c.min_dwell_s * 1000
        score = self.activity(f)
        wants_switch = score > c.enter_active_score if st.regime == "quiet" else score < c.exit_active_score
        if not wants_switch:
            st.pending_since = None
        elif st.pending_since is None:
            st.pending_since = f.ts_ms
        if st.pending_since is not None and f.ts_ms - st.pending_since >= dwell_ms:
            st.regime = "active" if st.regime == "quiet" else "quiet"
            st.pending_since = None
        if not st.established and f.ts_ms - st.first_ts >= dwell_ms:
            st.established = True
        return st
