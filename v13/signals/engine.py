"""Signal engine: one signal row per feature row (neutral included).

Order of work per row: StrategyMode regime -> thresholds of that regime (base until the regime
is established) -> direction from the fusion score -> guards -> confirm and signal_type:

* direction: |score| >= buy threshold; strong when >= strong threshold;
* guards (each adds its code to ``guard_reason``, any of them sets ``gating``): ``warmup``,
  ``gap``, ``stale_book`` (the book is unknown since a reset, or too old), ``no_book`` (never a
  book: a trades-only source), ``spread`` (spread_bps > cap), ``lag`` (lag_ms > cap),
  ``low_consistency`` (consistency below the floor), ``weak_signal`` (|score| below the floor);
* confirm = a direction and no guard; signal_type = strong_buy | buy | sell | strong_sell when
  confirmed, ``pending`` when a guard blocked a direction, ``neutral`` otherwise.

Deterministic on replay: it reads event time only (``emit_ts_ms`` is the one wall-clock field).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from v13.config import Config
from v13.contracts import FeatureRow, SignalRow
from v13.signals.mode import StrategyMode

__all__ = ["GUARD_CODES", "SignalEngine"]

GUARD_CODES = ("warmup", "gap", "stale_book", "no_book", "spread", "lag", "low_consistency", "weak_signal")


class SignalEngine:
    """Feature rows in, signal rows out; one instance per run (state per symbol)."""

    def __init__(self, cfg: Config, run_id: str, *, clock_ms: Callable[[], int] | None = None) -> None:
        self.cfg = cfg
        self.run_id = run_id
        self.mode = StrategyMode(cfg.strategy_mode)
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def on_feature(self, f: FeatureRow) -> SignalRow:
        sig = self.cfg.signal
        if f.gap:
            self.mode.reset(f.symbol)
        state = self.mode.update(f)
        thresholds = sig.thresholds
        if not state.established:
            buy, strong = thresholds.base
        elif state.regime == "active":
            buy, strong = thresholds.active
        else:
            buy, strong = thresholds.quiet
        score = f.fusion_score
        direction = 0 if abs(score) < buy else (1 if score > 0 else -1)
        reasons = self._guards(f)
        confirm = direction != 0 and not reasons
        if confirm:
            kind = "buy" if direction > 0 else "sell"
            signal_type = f"strong_{kind}" if abs(score) >= strong else kind
        else:
            signal_type = "pending" if direction != 0 else "neutral"
        return SignalRow(
            run_id=self.run_id,
            ts_ms=f.ts_ms,
            symbol=f.symbol,
            score=score,
            z_ofi=f.z_ofi,
            z_cvd=f.z_cvd,
            regime=state.regime,  # type: ignore[arg-type]
            div_type=f.div_type,
            confirm=confirm,
            gating=bool(reasons),
            signal_type=signal_type,  # type: ignore[arg-type]
            guard_reason=",".join(reasons) or None,
            mid=f.mid,
            best_bid=f.best_bid,
            best_ask=f.best_ask,
            spread_bps=f.spread_bps,
            emit_ts_ms=self._clock_ms(),
        )

    def _guards(self, f: FeatureRow) -> list[str]:
        g = self.cfg.signal.guards
        reasons = []
        if f.warmup:
            reasons.append("warmup")
        if f.gap:
            reasons.append("gap")
        if f.stale_book:
            reasons.append("stale_book")
        elif f.mid is None:
            reasons.append("no_book")
        if f.spread_bps is not None and f.spread_bps > g.spread_bps_max:
            reasons.append("spread")
        if f.lag_ms > g.lag_ms_max:
            reasons.append("lag")
        if f.consistency < g.consistency_min:
            reasons.append("low_consistency")
        if abs(f.fusion_score) < g.weak_score_min:
            reasons.append("weak_signal")
        return reasons
