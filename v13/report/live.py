"""The report stage's running view of a run: the report :func:`v13.report.build_report` makes
from the files, kept up to date from the rows added since the last refresh.

A rebuild from the files holds every row of the run for a moment, so the stage's memory grew
with the run (17 MB an hour at six symbols). This view keeps what the report cannot do without:
per symbol the feature rows that signals still to come or still open may look at, the quotes of
signals the broker has not reached, the resolved markouts (the report's medians need every
value), the orders' sums. Each refresh reads the new rows only. The final report is still
rebuilt from the files by the orchestrator; a test holds the two equal.

It relies on what the stages guarantee: per symbol, feature rows, signal rows and orders each
come in increasing ``ts_ms`` (one writer per stream, in order; the sinks skip rows already
written), and an order is written after its signal is durable.

    live = LiveReport(cfg, layout, run_id)
    report = live.refresh()          # as often as wanted; reads what was added since
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from v13.config import Config
from v13.contracts import OrderRow, ReportRow, SignalRow, decode_row
from v13.errors import ContractError
from v13.layout import Layout
from v13.markouts import Markouts, signal_markouts
from v13.pnl import PnlTally, Quote
from v13.reader import StreamReader
from v13.report.build import (
    READ_BATCH,
    FeaturePoint,
    SignalCounts,
    assemble_report,
    deadletter_entries,
    run_dropped,
)
from v13.sinks import open_signal_reader

__all__ = ["LiveReport"]


@dataclass(slots=True)
class _Symbol:
    """One symbol's part of the view."""

    last_signal: int = -1
    unsettled: list[int] = field(default_factory=list)  # feature ts after last_signal, sorted
    unmatched: set[int] = field(default_factory=set)  # signal ts whose feature is not read yet
    missing: set[int] = field(default_factory=set)  # feature ts before last_signal with no signal
    window: deque[FeaturePoint] = field(default_factory=deque)  # features markouts may still need
    pending: deque[SignalRow] = field(default_factory=deque)  # confirmed, some horizon still open
    quotes: dict[int, Quote] = field(default_factory=dict)  # by signal ts, until an order passes
    last_ts: int = -1  # latest feature row
    last_mid_ts: int = -1
    last_mid: float | None = None


class LiveReport:
    """Incremental :func:`build_report` of one run."""

    def __init__(self, cfg: Config, layout: Layout, run_id: str) -> None:
        self.cfg, self.layout, self.run_id = cfg, layout, run_id
        self.horizons_s = tuple(cfg.report.markout_horizons_s)
        self._last_horizon_ms = max(self.horizons_s, default=0) * 1000
        self._start()

    def _start(self) -> None:
        """Nothing read yet."""
        cfg, layout, run_id = self.cfg, self.layout, self.run_id
        self._signals = open_signal_reader(cfg, layout, run_id)
        data = layout.data
        self._features = StreamReader(data.preview_spool, data.preview_ready, "feature", stem_filter=run_id)
        self._orders_at = 0  # byte offset of the next unread order line
        self._counts = SignalCounts()
        self._symbols: dict[str, _Symbol] = {}
        self._resolved = Markouts(self.horizons_s)
        self._pnl = PnlTally()

    def refresh(self, *, generated_ms: int | None = None) -> ReportRow:
        """Read what was added since the last refresh; the report as of now."""
        # orders before signals: every order read then has its signal durable in the sink
        orders = self._new_orders()
        started_over = self._signals.started_over
        while batch := self._signals.poll(READ_BATCH):
            if self._signals.started_over != started_over:  # the sink's file was replaced
                self.close()
                self._start()
                return self.refresh(generated_ms=generated_ms)
            for sig in batch:
                self._add_signal(sig)
        while rows := self._features.poll(READ_BATCH):
            for _tail, row in rows:
                self._add_feature(FeaturePoint(ts_ms=row.ts_ms, symbol=row.symbol, mid=row.mid))
        for order in orders:
            self._add_order(order)
        for st in self._symbols.values():
            self._resolve(st)
        marks = self._resolved.copy()
        for st in self._symbols.values():
            if st.pending:
                signal_markouts(st.window, st.pending, self.horizons_s, into=marks)
        return assemble_report(
            self.cfg, self.run_id, self._counts,
            unprocessed_tail=sum(len(st.unsettled) for st in self._symbols.values()),
            missing_signals=sum(len(st.missing) for st in self._symbols.values()),
            marks=marks, pnl=self._pnl,
            last_mid={s: st.last_mid for s, st in self._symbols.items() if st.last_mid is not None},
            dropped=run_dropped(self.layout, self.run_id),
            deadletter=deadletter_entries(self.layout, self.run_id),
            generated_ms=generated_ms,
        )  # fmt: skip

    def close(self) -> None:
        self._signals.close()

    def _symbol(self, symbol: str) -> _Symbol:
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _Symbol()
        return st

    def _add_signal(self, sig: SignalRow) -> None:
        self._counts.add(sig)
        st = self._symbol(sig.symbol)
        ts = sig.ts_ms
        if ts > st.last_signal:
            # features before it whose signal has not come never get one: signals come in order
            cut = bisect.bisect_left(st.unsettled, ts)
            st.missing.update(st.unsettled[:cut])
            rest = st.unsettled[cut:]
            if rest and rest[0] == ts:
                rest.pop(0)
            else:
                st.unmatched.add(ts)
            st.unsettled = rest
            st.last_signal = ts
        elif ts in st.missing:
            st.missing.discard(ts)
        else:
            st.unmatched.add(ts)
        if sig.confirm and sig.mid is not None:
            st.pending.append(sig)
            if sig.best_bid is not None and sig.best_ask is not None:
                st.quotes[ts] = (sig.mid, sig.best_bid, sig.best_ask)

    def _add_feature(self, point: FeaturePoint) -> None:
        st = self._symbol(point.symbol)
        ts = point.ts_ms
        if ts > st.last_signal:
            bisect.insort(st.unsettled, ts)
        elif ts in st.unmatched:
            st.unmatched.discard(ts)
        else:
            st.missing.add(ts)
        st.window.append(point)
        st.last_ts = max(st.last_ts, ts)
        if point.mid is not None and ts >= st.last_mid_ts:
            st.last_mid_ts, st.last_mid = ts, point.mid

    def _add_order(self, order: OrderRow) -> None:
        st = self._symbol(order.symbol)
        self._pnl.add(order, st.quotes.get(order.ts_ms))
        while st.quotes:  # orders come in ts order: older quotes will not be asked for
            oldest = next(iter(st.quotes))
            if oldest > order.ts_ms:
                break
            del st.quotes[oldest]

    def _resolve(self, st: _Symbol) -> None:
        """Move the signals whose last horizon is inside the data to the resolved markouts, and
        forget the feature rows no signal can need any more."""
        done = []
        while st.pending and st.pending[0].ts_ms + self._last_horizon_ms <= st.last_ts:
            done.append(st.pending.popleft())
        if done:
            signal_markouts(st.window, done, self.horizons_s, into=self._resolved)
        # later signals come after last_signal; open ones start at pending[0]
        keep_from = min(st.pending[0].ts_ms if st.pending else st.last_signal + 1, st.last_signal + 1)
        while len(st.window) > 1 and st.window[0].ts_ms < keep_from:
            st.window.popleft()

    def _new_orders(self) -> list[OrderRow]:
        path = self.layout.orders_file
        try:
            with open(path, "rb") as fh:
                fh.seek(self._orders_at)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # complete lines only
        self._orders_at += end
        out = []
        for line in data[:end].splitlines():
            try:
                order = decode_row("order", line)
            except ContractError:
                continue
            if order.run_id == self.run_id:
                out.append(order)
        return out
