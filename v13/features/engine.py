"""Feature engine: trade and book rows in event-time order -> one feature row per symbol per interval.

Per event the work is O(1) (OFI over a fixed number of levels, counters); per interval it is
O(lookback) for the divergence check. Time is event time throughout, so a replay of the same
rows gives the same features.

Example::

    engine = FeatureEngine(cfg.features)
    for row in rows:                      # TradeRow / BookRow, per symbol in ts order
        for feature in engine.on_row(row): ...
    for feature in engine.finish(): ...   # closes the open intervals
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from v13.config import FeaturesConfig
from v13.contracts import BookRow, DivType, FeatureRow, TradeRow
from v13.features.ofi import multi_level_ofi
from v13.features.rolling import RollingStats, RollingSum

__all__ = ["FeatureEngine"]


@dataclass
class _Interval:
    """Accumulators of the open interval."""

    end_ms: int
    ofi: float = 0.0
    depth_sum: float = 0.0
    books: int = 0
    cvd_delta: float = 0.0
    trades: int = 0
    volume_usd: float = 0.0
    last_lag_ms: float = 0.0


@dataclass
class _Symbol:
    """Per-symbol state that lives across intervals; cleared by a data gap."""

    cfg: FeaturesConfig
    interval: _Interval | None = None
    last_ts: int | None = None
    last_update_id: int | None = None
    last_trade_id: int | None = None
    prev_bids: list[tuple[float, float]] | None = None
    prev_asks: list[tuple[float, float]] | None = None
    best_bid: float | None = None
    best_ask: float | None = None
    prev_mid: float | None = None
    cvd: float = 0.0
    gap_pending: bool = False
    ofi_stats: RollingStats = field(init=False)
    cvd_stats: RollingStats = field(init=False)
    vol_stats: RollingStats = field(init=False)
    trades_60s: RollingSum = field(init=False)
    history: deque[tuple[float, float, float]] = field(init=False)  # (mid, z_ofi, z_cvd)

    def __post_init__(self) -> None:
        c = self.cfg
        self.ofi_stats = RollingStats(c.z_window)
        self.cvd_stats = RollingStats(c.z_window)
        self.vol_stats = RollingStats(c.vol_window)
        self.trades_60s = RollingSum(max(1, round(c.trade_rate_window_s * 1000 / c.interval_ms)))
        self.history = deque(maxlen=c.divergence_lookback)

    def reset(self) -> None:
        """A gap: nothing is summed through the hole."""
        self.prev_bids = self.prev_asks = None
        self.prev_mid = None
        # cvd restarts; trades already counted in the open interval stay counted in both
        self.cvd = self.interval.cvd_delta if self.interval is not None else 0.0
        for stats in (self.ofi_stats, self.cvd_stats, self.vol_stats, self.trades_60s):
            stats.clear()
        self.history.clear()
        self.gap_pending = True


class FeatureEngine:
    """Computes :class:`FeatureRow` s from raw rows of any number of symbols."""

    def __init__(self, cfg: FeaturesConfig) -> None:
        self.cfg = cfg
        self.weights = list(cfg.ofi_weights[: cfg.ofi_levels])
        self._symbols: dict[str, _Symbol] = {}
        self.late_rows = 0

    def on_row(self, row: TradeRow | BookRow) -> list[FeatureRow]:
        """Feed one row; returns the feature rows of intervals this row closed (0 or 1)."""
        st = self._symbols.get(row.symbol)
        if st is None:
            st = self._symbols[row.symbol] = _Symbol(self.cfg)
        out: list[FeatureRow] = []
        ts = row.ts_ms
        if st.interval is not None and ts >= st.interval.end_ms:
            out.append(self._close(row.symbol, st))
        if st.last_ts is not None and ts - st.last_ts > self.cfg.gap_ms:
            st.reset()
        if st.last_ts is not None and ts < st.last_ts:
            self.late_rows += 1  # out of order: counted, folded into the open interval
            ts = st.last_ts
        st.last_ts = ts
        if st.interval is None:
            iv = self.cfg.interval_ms
            st.interval = _Interval(end_ms=ts - ts % iv + iv)
        if isinstance(row, BookRow):
            self._on_book(st, row)
        else:
            self._on_trade(st, row)
        st.interval.last_lag_ms = float(row.recv_ts_ms - row.ts_ms)
        return out

    def advance(self, now_ms: int) -> list[FeatureRow]:
        """Close every open interval that ended at or before ``now_ms`` (live pacing)."""
        return [
            self._close(sym, st)
            for sym, st in self._symbols.items()
            if st.interval is not None and st.interval.end_ms <= now_ms
        ]

    def finish(self) -> list[FeatureRow]:
        """Close every open interval (end of input)."""
        return [self._close(sym, st) for sym, st in self._symbols.items() if st.interval is not None]

    # -- per event ---------------------------------------------------------------------------
    def _on_book(self, st: _Symbol, row: BookRow) -> None:
        assert st.interval is not None
        if st.last_update_id is not None and row.prev_update_id != st.last_update_id:
            st.reset()  # the venue says updates were missed: no OFI across the hole
        st.last_update_id = row.update_id
        n = min(len(self.weights), len(row.bids), len(row.asks))
        if st.prev_bids is not None and st.prev_asks is not None:
            st.interval.ofi += multi_level_ofi(st.prev_bids, st.prev_asks, row.bids, row.asks, self.weights)
        depth = 0.0
        for m in range(n):
            depth += row.bids[m][1] + row.asks[m][1]
        st.interval.depth_sum += depth / (2 * n) if n else 0.0
        st.interval.books += 1
        st.prev_bids, st.prev_asks = row.bids, row.asks
        st.best_bid, st.best_ask = row.bids[0][0], row.asks[0][0]

    def _on_trade(self, st: _Symbol, row: TradeRow) -> None:
        assert st.interval is not None
        if st.last_trade_id is not None and row.trade_id != st.last_trade_id + 1:
            st.reset()  # trade ids jumped: trades were missed, CVD would be wrong
        st.last_trade_id = row.trade_id
        signed = row.qty if row.side == "buy" else -row.qty
        st.cvd += signed
        st.interval.cvd_delta += signed
        st.interval.trades += 1
        st.interval.volume_usd += row.price * row.qty

    # -- per interval ------------------------------------------------------------------------
    def _close(self, symbol: str, st: _Symbol) -> FeatureRow:
        c = self.cfg
        iv = st.interval
        assert iv is not None
        st.interval = None
        mean_depth = iv.depth_sum / iv.books if iv.books else 0.0
        ofi = iv.ofi / mean_depth if mean_depth > 0 else 0.0
        warmup = len(st.ofi_stats) < c.z_warmup
        z_ofi = 0.0 if warmup else st.ofi_stats.zscore(ofi, c.sigma_floor_ofi, c.z_clip)
        z_cvd = 0.0 if warmup else st.cvd_stats.zscore(iv.cvd_delta, c.sigma_floor_cvd, c.z_clip)
        st.ofi_stats.push(ofi)
        st.cvd_stats.push(iv.cvd_delta)

        bid, ask = st.best_bid, st.best_ask
        mid = (bid + ask) / 2 if bid is not None and ask is not None else None
        spread_bps = (ask - bid) / mid * 1e4 if mid and bid is not None and ask is not None else None
        ret = (mid / st.prev_mid - 1.0) * 1e4 if mid and st.prev_mid else 0.0
        if mid is not None:
            if st.prev_mid is not None:
                st.vol_stats.push(ret)
            st.prev_mid = mid

        st.trades_60s.push(iv.trades)
        covered_s = len(st.trades_60s) * c.interval_ms / 1000
        score = c.fusion_w_ofi * z_ofi + c.fusion_w_cvd * z_cvd
        gap = st.gap_pending
        st.gap_pending = False
        div = self._divergence(st, mid, z_ofi, z_cvd)
        return FeatureRow(
            ts_ms=iv.end_ms,
            symbol=symbol,
            mid=mid,
            best_bid=bid,
            best_ask=ask,
            spread_bps=spread_bps,
            ofi=ofi,
            z_ofi=z_ofi,
            cvd=st.cvd,
            cvd_delta=iv.cvd_delta,
            z_cvd=z_cvd,
            fusion_score=score,
            consistency=_consistency(z_ofi, z_cvd),
            div_type=div,
            trade_count=iv.trades,
            trade_rate=st.trades_60s.total * 60 / covered_s if covered_s else 0.0,
            quote_rate=iv.books * 1000 / c.interval_ms,
            realized_vol_bps=st.vol_stats.std(),
            volume_usd=iv.volume_usd,
            return_1s=ret,
            lag_ms=iv.last_lag_ms,
            warmup=warmup,
            gap=gap,
        )

    def _divergence(self, st: _Symbol, mid: float | None, z_ofi: float, z_cvd: float) -> DivType | None:
        """Conflict first; else a new price high (low) on a lower flow high (higher low)."""
        c = self.cfg
        div: DivType | None = None
        if abs(z_ofi) >= c.conflict_z and abs(z_cvd) >= c.conflict_z and z_ofi * z_cvd < 0:
            div = "ofi_cvd_conflict"
        elif mid is not None and len(st.history) == st.history.maxlen:
            hi = max(st.history, key=lambda h: h[0])
            lo = min(st.history, key=lambda h: h[0])
            if mid > hi[0] and hi[2] > 0 and (z_cvd < hi[2] or z_ofi < hi[1]):
                div = "bear_div"
            elif mid < lo[0] and lo[2] < 0 and (z_cvd > lo[2] or z_ofi > lo[1]):
                div = "bull_div"
        if mid is not None:
            st.history.append((mid, z_ofi, z_cvd))
        return div


def _consistency(z_ofi: float, z_cvd: float) -> float:
    a, b = abs(z_ofi), abs(z_cvd)
    if z_ofi * z_cvd <= 0 or max(a, b) == 0:
        return 0.0
    return min(a, b) / max(a, b)
