"""Feature engine: trade and book rows -> one feature row per symbol per interval of event time.

**Intervals.** A row belongs to the interval of its exchange event time (``ts_ms``). Each symbol
has a *watermark*: the latest event time seen on each of its routes (trades, books), the
smallest of those, minus ``features.allowed_lateness_ms``; an interval closes once the watermark
has passed its end. A route that has sent nothing for ``route_idle_ms`` while the symbol's other
route kept flowing (sparse trades, a book connection down) no longer holds the watermark back.
When nothing arrives at all (a quiet symbol, or a stalled connection that will burst), intervals
close by the clock alone, once the event time projected from the last row is
``allowed_lateness_ms + quiet_grace_ms`` past their end.

The clock is the receive time of the symbol's rows (``recv_ts_ms``) and the ticks given to
:meth:`FeatureEngine.advance`; intervals are closed only when the clock moves on, before the rows
of the new time are used, so rows received in the same millisecond never depend on their order.
A row whose interval has already closed is *late*: it is counted (``late_rows``) in the first
interval still open and its trade or book counted there. Because only receive times and event
times decide, a replay of the same rows in the same order gives the same feature rows, whatever
the wall clock did.

**Book.** A book row with ``reset`` (reconnect, resync) makes the book unknown; so does a book
older than ``features.gap_ms`` at an interval's end: the row's book fields are then null and
``stale_book`` true, until a fresh book arrives.

**Statistics** reset after a data gap (event time jumping by more than ``gap_ms``), a trade id
that does not follow the previous one, or a book reset; the interval that contains it says
``gap``.

Per event the work is O(1) (OFI over a fixed number of levels, counters); per interval it is
O(lookback) for the divergence check.

Example::

    engine = FeatureEngine(cfg.features)
    for row in rows:                      # TradeRow / BookRow, per symbol in arrival order
        for feature in engine.on_row(row): ...
    engine.advance(now_ms)                # a clock tick: closes what is due
    for feature in engine.finish(): ...   # closes the open intervals
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from v13.config import FeaturesConfig
from v13.contracts import BookRow, DivType, FeatureRow, TradeRow
from v13.features.ofi import ofi_and_depth
from v13.features.rolling import RollingStats, RollingSum

__all__ = ["FeatureEngine"]

Level = tuple[float, float]
_NONE = -(1 << 62)  # "not seen yet" of the integer fields that the hot path compares on every row
_by_mid = operator.itemgetter(0)  # of a history entry (mid, z_ofi, z_cvd)


@dataclass(slots=True)
class _Interval:
    """Accumulators of one open interval."""

    start_ms: int
    end_ms: int
    ofi: float = 0.0
    depth_sum: float = 0.0
    books: int = 0
    cvd_delta: float = 0.0
    trades: int = 0
    volume_usd: float = 0.0
    max_lag_ms: int = _NONE
    late_rows: int = 0
    book: BookRow | None = None  # the last book row counted here (None: the book carries over)
    reset: bool = False  # the statistics reset inside this interval


@dataclass(slots=True)
class _Symbol:
    """Per-symbol state that lives across intervals."""

    cfg: FeaturesConfig
    open: dict[int, _Interval] = field(default_factory=dict)  # by end_ms
    first_end: int | None = None  # min(open), or None when none is open
    current: _Interval | None = None  # the open interval the last on-time row went to
    closed_end: int | None = None
    clock: int = -1  # latest receive time or tick
    last_recv: int = -1
    resumed_at: int = -1  # receive time of the first row after everything was silent
    e_max: int | None = None  # latest event time seen
    # per route (books, trades): the latest event time seen and the receive time of its last row
    book_event: int = _NONE
    book_recv: int = 0
    trade_event: int = _NONE
    trade_recv: int = 0
    last_trade_id: int = _NONE
    prev_bids: Sequence[Level] = ()  # the last book's levels (none: no OFI from the next book)
    prev_asks: Sequence[Level] = ()
    book: BookRow | None = None  # the last book row as of the last closed interval's end
    prev_mid: float | None = None
    cvd: float = 0.0
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

    def clear_statistics(self) -> None:
        """A gap: nothing is summed through the hole."""
        self.prev_mid = None
        self.cvd = 0.0
        for stats in (self.ofi_stats, self.cvd_stats, self.vol_stats, self.trades_60s):
            stats.clear()
        self.history.clear()


class FeatureEngine:
    """Computes :class:`FeatureRow` s from raw rows of any number of symbols."""

    def __init__(self, cfg: FeaturesConfig) -> None:
        self.cfg = cfg
        self.weights = list(cfg.ofi_weights[: cfg.ofi_levels])
        self._symbols: dict[str, _Symbol] = {}
        self.late_rows = 0
        self._step = cfg.interval_ms
        self._gap_ms = cfg.gap_ms
        self._route_idle_ms = cfg.route_idle_ms
        self._lateness_ms = cfg.allowed_lateness_ms
        self._quiet_grace_ms = cfg.quiet_grace_ms
        # at most the end of every open interval (None: none open); intervals closed by the
        # clock may leave it lower than needed, which only costs a pass that closes nothing
        self._earliest_end: int | None = None

    def on_row(self, row: TradeRow | BookRow) -> list[FeatureRow]:
        """Feed one row; returns the feature rows of the intervals that closed before it."""
        symbol = row.symbol
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _Symbol(self.cfg)
        ts = row.ts_ms
        recv = row.recv_ts_ms
        e_max = st.e_max
        out = self._tick(symbol, st, recv) if recv > st.clock else []
        # the interval of the row: most rows go where the symbol's previous row went
        iv = st.current
        if iv is None or not iv.start_ms <= ts < iv.end_ms:
            iv = self._interval_of(st, ts)
        lag = recv - ts
        if lag > iv.max_lag_ms:
            iv.max_lag_ms = lag
        if e_max is None:
            st.e_max = ts
        elif ts > e_max:
            if ts - e_max > self._gap_ms:
                iv.reset = True
            st.e_max = ts
        if recv - st.last_recv > self._route_idle_ms:
            st.resumed_at = recv
        if recv > st.last_recv:
            st.last_recv = recv
        if isinstance(row, TradeRow):
            trade_id = row.trade_id
            if trade_id != st.last_trade_id + 1 and st.last_trade_id != _NONE:
                iv.reset = True  # trade ids jumped: trades were missed, CVD would be wrong
            st.last_trade_id = trade_id
            qty = row.qty
            iv.cvd_delta += qty if row.side == "buy" else -qty
            iv.trades += 1
            iv.volume_usd += row.price * qty
            if ts > st.trade_event:
                st.trade_event = ts
            st.trade_recv = recv
            return out
        iv.book = row
        if ts > st.book_event:
            st.book_event = ts
        st.book_recv = recv
        if row.reset:
            st.prev_bids = st.prev_asks = ()
            iv.reset = True
            return out
        bids, asks = row.bids, row.asks
        ofi, depth = ofi_and_depth(st.prev_bids, st.prev_asks, bids, asks, self.weights)
        iv.ofi += ofi
        iv.depth_sum += depth
        iv.books += 1
        st.prev_bids, st.prev_asks = bids, asks
        return out

    def advance(self, now_ms: int) -> list[FeatureRow]:
        """A clock tick (live): every row received up to ``now_ms`` has been given; closes what
        is due. A replay without ticks closes the same intervals at the next row."""
        out: list[FeatureRow] = []
        for symbol, st in self._symbols.items():
            out += self._tick(symbol, st, now_ms)
        return out

    def source_watermark(self, event_ms: int) -> list[FeatureRow]:
        """The source guarantees that no row with an event time before ``event_ms`` is still to
        come (the simulator, at each step's end): close every interval that ends by then. A
        replay without it closes the same intervals, with the same rows, a little later."""
        if self._earliest_end is None or event_ms < self._earliest_end:
            return []  # most calls, at a watermark every simulator step: no pass over the symbols
        out = [
            self._close(sym, st, end)
            for sym, st in self._symbols.items()
            for end in sorted(st.open)
            if end <= event_ms
        ]
        ends = (st.first_end for st in self._symbols.values() if st.first_end is not None)
        self._earliest_end = min(ends, default=None)
        return out

    def finish(self) -> list[FeatureRow]:
        """Close every open interval (end of input)."""
        return [self._close(sym, st, end) for sym, st in self._symbols.items() for end in sorted(st.open)]

    # -- time ----------------------------------------------------------------------------------
    def _tick(self, symbol: str, st: _Symbol, clock: int) -> list[FeatureRow]:
        if clock <= st.clock:
            return []
        st.clock = clock
        first_end, e_max = st.first_end, st.e_max
        if first_end is None or e_max is None:
            return []
        # No route's watermark is past the latest event time: nothing can close before then,
        # unless the quiet rule's projection reaches further.
        quiet = clock - st.last_recv - self._quiet_grace_ms
        if first_end > e_max - self._lateness_ms + (quiet if quiet > 0 else 0):
            return []
        return self._close_due(symbol, st, e_max, clock)

    def _close_due(self, symbol: str, st: _Symbol, e_max: int, clock: int) -> list[FeatureRow]:
        idle = self._route_idle_ms
        book, trade = st.book_event, st.trade_event
        book_flowing = book != _NONE and clock - st.book_recv <= idle
        trade_flowing = trade != _NONE and clock - st.trade_recv <= idle
        if book_flowing != trade_flowing and clock - st.resumed_at > idle:
            held = book if book_flowing else trade  # the silent route is sparse or down, not behind
        elif book == _NONE or trade == _NONE:
            held = max(book, trade)  # the one route seen so far
        else:
            held = min(book, trade)
        limit = max(held, e_max + (clock - st.last_recv) - self._quiet_grace_ms) - self._lateness_ms
        if st.first_end is None or st.first_end > limit:
            return []
        return [self._close(symbol, st, end) for end in sorted(st.open) if end <= limit]

    def _interval_of(self, st: _Symbol, ts_ms: int) -> _Interval:
        step = self._step
        end = ts_ms - ts_ms % step + step
        closed_end = st.closed_end
        late = closed_end is not None and end <= closed_end
        if late:
            assert closed_end is not None
            end = st.first_end if st.first_end is not None else closed_end + step
        iv = st.open.get(end)
        if iv is None:
            iv = st.open[end] = _Interval(start_ms=end - step, end_ms=end)
            if st.first_end is None or end < st.first_end:
                st.first_end = end
            if self._earliest_end is None or end < self._earliest_end:
                self._earliest_end = end
        if late:
            iv.late_rows += 1
            self.late_rows += 1
        else:
            st.current = iv
        return iv

    # -- per interval --------------------------------------------------------------------------
    def _close(self, symbol: str, st: _Symbol, end: int) -> FeatureRow:
        c = self.cfg
        iv = st.open.pop(end)
        st.closed_end = end
        st.first_end = min(st.open) if st.open else None
        if iv is st.current:
            st.current = None
        if iv.reset:
            st.clear_statistics()
        if iv.book is not None:
            st.book = iv.book
        mean_depth = iv.depth_sum / iv.books if iv.books else 0.0
        ofi = iv.ofi / mean_depth if mean_depth > 0 else 0.0
        warmup = len(st.ofi_stats) < c.z_warmup
        z_ofi = 0.0 if warmup else st.ofi_stats.zscore(ofi, c.sigma_floor_ofi, c.z_clip)
        z_cvd = 0.0 if warmup else st.cvd_stats.zscore(iv.cvd_delta, c.sigma_floor_cvd, c.z_clip)
        st.ofi_stats.push(ofi)
        st.cvd_stats.push(iv.cvd_delta)
        st.cvd += iv.cvd_delta

        book = st.book
        stale = book is not None and (book.reset or book.ts_ms < end - c.gap_ms)
        bid, ask = (None, None) if book is None or stale else (book.bids[0][0], book.asks[0][0])
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
        div = self._divergence(st, mid, z_ofi, z_cvd)
        return FeatureRow(
            ts_ms=end,
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
            lag_ms=float(iv.max_lag_ms) if iv.max_lag_ms != _NONE else 0.0,
            warmup=warmup,
            gap=iv.reset,
            late_rows=iv.late_rows,
            stale_book=stale,
        )

    def _divergence(self, st: _Symbol, mid: float | None, z_ofi: float, z_cvd: float) -> DivType | None:
        """Conflict first; else a new price high (low) on a lower flow high (higher low)."""
        c = self.cfg
        div: DivType | None = None
        if abs(z_ofi) >= c.conflict_z and abs(z_cvd) >= c.conflict_z and z_ofi * z_cvd < 0:
            div = "ofi_cvd_conflict"
        elif mid is not None and len(st.history) == st.history.maxlen:
            hi = max(st.history, key=_by_mid)
            lo = min(st.history, key=_by_mid)
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
