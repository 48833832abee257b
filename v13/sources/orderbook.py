"""A local order book kept from a REST depth snapshot plus the ``@depth@<speed>`` diff stream,
with Binance USD-M's rules for keeping them in sync:

1. buffer the diff events until a snapshot (``lastUpdateId``) arrives;
2. drop every event with ``u`` < ``lastUpdateId``;
3. the first event applied must have ``U`` <= ``lastUpdateId`` <= ``u``, or follow the snapshot
   directly (``pu`` == ``lastUpdateId``: a snapshot taken between two events);
4. afterwards each event's ``pu`` must equal the previous event's ``u``; otherwise the book is
   wrong: it is cleared and resynchronised from a new snapshot.

A quantity of 0 removes the level; quantities are absolute. ``top(n)`` gives the best n levels.

Example::

    book = LocalBook()
    book.on_diff(event)                  # -> DiffResult.BUFFERED until the snapshot
    applied = book.on_snapshot(last_update_id, bids, asks)   # the buffered events applied
    book.on_diff(event)                  # -> APPLIED, or BROKEN (resync needed)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["DiffEvent", "DiffResult", "LocalBook"]

Level = tuple[float, float]
MAX_BUFFERED = 5000  # diff events kept while waiting for a snapshot


@dataclass(frozen=True)
class DiffEvent:
    first_id: int  # U
    last_id: int  # u
    prev_id: int  # pu
    bids: list[Level]
    asks: list[Level]
    ts_ms: int
    recv_ts_ms: int


class DiffResult(Enum):
    APPLIED = "applied"
    BUFFERED = "buffered"  # not in sync: kept for the next snapshot
    STALE = "stale"  # older than the book: dropped
    BROKEN = "broken"  # pu does not follow: the book is cleared, a snapshot is needed


@dataclass
class LocalBook:
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    last_id: int | None = None  # u of the last applied event (or the snapshot's lastUpdateId)
    synced: bool = False  # a snapshot is loaded and the stream follows it
    first_pending: bool = False  # snapshot loaded, the first event (U <= id <= u) not yet seen
    buffer: list[DiffEvent] = field(default_factory=list)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_id = None
        self.synced = self.first_pending = False

    def on_diff(self, ev: DiffEvent) -> DiffResult:
        if not self.synced:
            self.buffer.append(ev)
            del self.buffer[:-MAX_BUFFERED]
            return DiffResult.BUFFERED
        assert self.last_id is not None
        if self.first_pending:
            if ev.last_id < self.last_id:
                return DiffResult.STALE
            if ev.first_id > self.last_id and ev.prev_id != self.last_id:
                return self._broken(ev)  # the snapshot is older than the stream: a gap
            self.first_pending = False
        elif ev.prev_id != self.last_id:
            return self._broken(ev)
        self._apply(ev)
        return DiffResult.APPLIED

    def on_snapshot(self, last_update_id: int, bids: list[Level], asks: list[Level]) -> list[DiffEvent]:
        """Load a snapshot; returns the buffered events that were applied after it, in order."""
        self.clear()
        self.bids = {p: q for p, q in bids if q > 0}
        self.asks = {p: q for p, q in asks if q > 0}
        self.last_id = last_update_id
        self.synced = self.first_pending = True
        pending, self.buffer = self.buffer, []
        applied = []
        for i, ev in enumerate(pending):
            result = self.on_diff(ev)
            if result is DiffResult.APPLIED:
                applied.append(ev)
            elif result is DiffResult.BROKEN:  # the snapshot does not join the stream
                self.buffer.extend(pending[i + 1 :])  # kept for the next snapshot
                break
        return applied

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        bids = heapq.nlargest(n, self.bids.items())
        asks = heapq.nsmallest(n, self.asks.items())
        return bids, asks

    def _apply(self, ev: DiffEvent) -> None:
        for side, levels in ((self.bids, ev.bids), (self.asks, ev.asks)):
            for price, qty in levels:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_id = ev.last_id

    def _broken(self, ev: DiffEvent) -> DiffResult:
        self.clear()
        self.buffer = [ev]  # it may follow the next snapshot
        return DiffResult.BROKEN
