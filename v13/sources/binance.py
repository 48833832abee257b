"""Binance USD-M futures: stream names, routes, and the decoder of raw frames into contract rows.

Since 2026-04-23 the streams are routed: ``@aggTrade`` on ``/market/stream``, ``@depth*`` on
``/public/stream``. Frames are ``{"stream": ..., "data": {...}}`` with every number a string::

    {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1764300000123,"s":"BTCUSDT","a":5933014,
     "p":"95000.10","q":"0.012","f":100,"l":105,"T":1764300000120,"m":true}}
    {"stream":"btcusdt@depth5@100ms","data":{"e":"depthUpdate","E":1764300000200,"T":1764300000198,
     "s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,
     "b":[["95000.00","1.204"],...],"a":[["95000.10","0.330"],...]}}

``m = true`` means the buyer is the maker: a SELL-initiated trade. The decoder also takes
``@trade`` (ids ``t``), ``@bookTicker`` (counted, not used), REST depth snapshots (a JSON object
with ``lastUpdateId``; its symbol comes with it) and the harvest's own control line
``{"v13": "connected", "conn": <connection id>, "streams": [...]}`` written when a connection
(re)opens (a recording splits it over the symbols' files; the pieces share their time).

Depth modes: a *partial* stream (``@depth5@100ms``) is a snapshot of the top levels each time;
its ``pu`` breaks are counted (``depth_gaps``) but never reset anything, as Binance does not
document that they chain. A *diff* stream (``@depth@100ms``) keeps a :class:`LocalBook` in sync
with a REST snapshot; a broken ``pu`` chain is a ``resync``: the book is reset (a ``reset`` book
row), and a new snapshot is asked for (:attr:`FrameDecoder.snapshot_requests`).

Counters move only for frames that passed validation. After a (re)connect the id chains start
over (what was missed is the reconnect's, counted as such).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from v13.contracts import BookRow, TradeRow
from v13.errors import ContractError
from v13.sources.orderbook import DiffEvent, DiffResult, LocalBook

__all__ = ["FrameDecoder", "SourceCounters", "shard_urls", "stream_names", "stream_symbol"]


class _AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade"):
    E: int
    s: str
    a: int
    p: float
    q: float
    T: int
    m: bool


class _Trade(msgspec.Struct, tag_field="e", tag="trade"):
    E: int
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool


class _Depth(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: int
    s: str
    u: int
    pu: int
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    U: int = 0
    T: int = 0


class _BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker"):
    s: str


class _Frame(msgspec.Struct):
    stream: str
    data: _AggTrade | _Trade | _Depth | _BookTicker


class _Snapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    E: int = 0
    T: int = 0


class _Control(msgspec.Struct):
    v13: str
    conn: str
    streams: list[str]


# numeric strings become floats inside the decoder
_FRAME = msgspec.json.Decoder(_Frame, strict=False)
_SNAPSHOT = msgspec.json.Decoder(_Snapshot, strict=False)
_CONTROL = msgspec.json.Decoder(_Control)


def stream_names(symbols: list[str], depth_stream: str) -> tuple[list[str], list[str]]:
    """(market streams, public streams) for the symbols."""
    lower = [s.lower() for s in symbols]
    return [f"{s}@aggTrade" for s in lower], [f"{s}@{depth_stream}" for s in lower]


def stream_symbol(stream: str) -> str:
    """``btcusdt@depth@100ms`` -> ``BTCUSDT``."""
    return stream.split("@", 1)[0].upper()


def _is_diff(stream: str) -> bool:
    """``@depth@100ms`` / ``@depth`` are diffs; ``@depth5@100ms`` / ``@depth20`` are partial."""
    parts = stream.split("@")
    return len(parts) > 1 and parts[1] == "depth"


def shard_urls(base: str, streams: list[str], per_connection: int) -> list[tuple[str, list[str]]]:
    """Combined-stream URLs, at most ``per_connection`` streams each."""
    out = []
    for i in range(0, len(streams), per_connection):
        part = streams[i : i + per_connection]
        out.append((f"{base}?streams={'/'.join(part)}", part))
    return out


@dataclass
class SourceCounters:
    frames: int = 0
    trades: int = 0
    books: int = 0
    book_tickers: int = 0
    snapshots: int = 0
    malformed: int = 0
    depth_gaps: int = 0  # partial depth: pu breaks
    trade_gaps: int = 0  # trade or aggTrade ids that do not follow by 1
    resyncs: int = 0  # diff depth: broken pu chains, each resynchronised from a new snapshot
    stale_snapshots: int = 0  # a snapshot older than the stream it should join
    reconnects: int = 0  # control lines of connections that had been open before
    last_lag_ms: float | None = None

    def as_status(self) -> dict[str, int]:
        """The counters a status file shows (rows are counted by whoever writes them)."""
        skip = ("frames", "trades", "books")
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int) and k not in skip}


@dataclass
class FrameDecoder:
    """Turns raw frames into contract rows; keeps the per-symbol state that detects gaps."""

    levels: int = 5
    counters: SourceCounters = field(default_factory=SourceCounters)
    snapshot_requests: set[str] = field(default_factory=set)  # symbols whose book needs a snapshot
    _last_u: dict[str, int] = field(default_factory=dict)
    _last_trade: dict[tuple[str, str], int] = field(default_factory=dict)
    _books: dict[str, LocalBook] = field(default_factory=dict)
    _last_ts: dict[str, int] = field(default_factory=dict)  # latest event time per symbol
    _opened: dict[str, int] = field(default_factory=dict)  # connection id -> receive time of its last open

    def decode(self, raw: bytes, recv_ts_ms: int, symbol: str | None = None) -> list[TradeRow | BookRow]:
        """Rows of one frame; ContractError for a malformed one. ``symbol`` names the book of a
        REST snapshot (the snapshot itself does not)."""
        try:
            if raw.startswith(b'{"stream"'):
                return self._frame(_FRAME.decode(raw), recv_ts_ms)
            if b'"lastUpdateId"' in raw[:64]:
                if symbol is None:
                    raise ContractError("a depth snapshot needs its symbol (from the recording's file name)")
                return self._snapshot(symbol, _SNAPSHOT.decode(raw), recv_ts_ms)
            if raw.startswith(b'{"v13"'):
                return self._control(_CONTROL.decode(raw), recv_ts_ms)
            raise ContractError(f"not a Binance frame: {raw[:60]!r}")
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.counters.malformed += 1
            raise ContractError(f"binance frame invalid: {exc}") from None
        except ContractError:
            self.counters.malformed += 1
            raise

    # -- frames ----------------------------------------------------------------------------------
    def _frame(self, frame: _Frame, recv_ts_ms: int) -> list[TradeRow | BookRow]:
        d = frame.data
        if isinstance(d, _BookTicker):
            self.counters.frames += 1
            self.counters.book_tickers += 1
            return []
        if isinstance(d, _AggTrade | _Trade):
            rows: list[TradeRow | BookRow] = [self._trade(d, recv_ts_ms)]
        elif _is_diff(frame.stream):
            rows = self._diff(d, recv_ts_ms)
        else:
            rows = [self._partial(d, recv_ts_ms)]
        self.counters.frames += 1
        self.counters.last_lag_ms = float(recv_ts_ms - d.E)
        self._last_ts[d.s] = max(self._last_ts.get(d.s, 0), d.T or d.E)
        return rows

    def _trade(self, d: _AggTrade | _Trade, recv_ts_ms: int) -> TradeRow:
        kind, trade_id = ("a", d.a) if isinstance(d, _AggTrade) else ("t", d.t)
        row = TradeRow(
            ts_ms=d.T, recv_ts_ms=recv_ts_ms, symbol=d.s, price=d.p, qty=d.q,
            side="sell" if d.m else "buy", trade_id=trade_id, src="binance",
        )  # fmt: skip
        last = self._last_trade.get((d.s, kind))
        if last is not None and trade_id != last + 1:
            self.counters.trade_gaps += 1
        self._last_trade[(d.s, kind)] = trade_id
        self.counters.trades += 1
        return row

    def _partial(self, d: _Depth, recv_ts_ms: int) -> BookRow:
        row = BookRow(
            ts_ms=d.T or d.E, recv_ts_ms=recv_ts_ms, symbol=d.s, bids=d.b[: self.levels],
            asks=d.a[: self.levels], update_id=d.u, prev_update_id=d.pu, src="binance",
        )  # fmt: skip
        last_u = self._last_u.get(d.s)
        if last_u is not None and d.pu != last_u:
            self.counters.depth_gaps += 1
        self._last_u[d.s] = d.u
        self.counters.books += 1
        return row

    def _diff(self, d: _Depth, recv_ts_ms: int) -> list[TradeRow | BookRow]:
        ts = d.T or d.E
        for price, qty in (*d.b, *d.a):
            if not (price > 0 and qty >= 0):
                raise ContractError(f"depth level [{price}, {qty}] of {d.s} is not a price and a quantity")
        book = self._books.setdefault(d.s, LocalBook())
        event = DiffEvent(d.U, d.u, d.pu, d.b, d.a, ts, recv_ts_ms)
        result = book.on_diff(event)
        if result is DiffResult.BROKEN:
            self.counters.resyncs += 1
            self.snapshot_requests.add(d.s)
            return [self._reset_row(d.s, ts, recv_ts_ms, d.u)]
        if result is not DiffResult.APPLIED:
            return []
        return [self._book_row(d.s, book, ts, recv_ts_ms, d.pu)]

    def _snapshot(self, symbol: str, snap: _Snapshot, recv_ts_ms: int) -> list[TradeRow | BookRow]:
        book = self._books.setdefault(symbol, LocalBook())
        ts = snap.T or snap.E or recv_ts_ms
        applied = book.on_snapshot(snap.lastUpdateId, snap.bids, snap.asks)
        self.counters.snapshots += 1
        self.snapshot_requests.discard(symbol)
        if not book.synced:
            self.counters.stale_snapshots += 1
            self.snapshot_requests.add(symbol)
            return []
        last = applied[-1] if applied else None
        if not book.bids or not book.asks:
            return []
        # one row for the book as the snapshot and the buffered events that follow it left it
        return [self._book_row(symbol, book, max(ts, last.ts_ms) if last else ts, recv_ts_ms,
                               last.prev_id if last else snap.lastUpdateId)]  # fmt: skip

    def _control(self, control: _Control, recv_ts_ms: int) -> list[TradeRow | BookRow]:
        """A connection (re)opened: its depth books are unknown until the next snapshot, and
        the id chains of its streams start over."""
        if control.v13 != "connected":
            raise ContractError(f"unknown control line {control.v13!r}")
        opened = self._opened.get(control.conn)
        if opened is not None and opened != recv_ts_ms:  # the same time: another piece of one line
            self.counters.reconnects += 1
        self._opened[control.conn] = recv_ts_ms
        rows: list[TradeRow | BookRow] = []
        for stream in control.streams:
            symbol = stream_symbol(stream)
            if "@depth" not in stream:
                for key in [k for k in self._last_trade if k[0] == symbol]:
                    del self._last_trade[key]
                continue
            had_book = self._last_u.pop(symbol, None) is not None or (
                symbol in self._books and self._books[symbol].synced
            )
            if _is_diff(stream):
                self._books.setdefault(symbol, LocalBook()).clear()
                self.snapshot_requests.add(symbol)
            if had_book:
                rows.append(self._reset_row(symbol, self._last_ts.get(symbol, recv_ts_ms), recv_ts_ms, 0))
        return rows

    # -- rows ------------------------------------------------------------------------------------
    def _book_row(self, symbol: str, book: LocalBook, ts: int, recv_ts_ms: int, prev_id: int) -> BookRow:
        bids, asks = book.top(self.levels)
        if bids and asks and bids[0][0] >= asks[0][0]:
            raise ContractError(f"{symbol}: the local book is crossed ({bids[0][0]} >= {asks[0][0]})")
        self.counters.books += 1
        return BookRow(
            ts_ms=ts, recv_ts_ms=recv_ts_ms, symbol=symbol, bids=bids, asks=asks,
            update_id=book.last_id or 0, prev_update_id=prev_id, src="binance",
        )  # fmt: skip

    def _reset_row(self, symbol: str, ts: int, recv_ts_ms: int, update_id: int) -> BookRow:
        """The book is unknown from here (a control line has no event time of its own: it takes
        the latest the symbol has seen)."""
        return BookRow(
            ts_ms=ts, recv_ts_ms=recv_ts_ms, symbol=symbol, bids=[], asks=[],
            update_id=update_id, prev_update_id=update_id, src="binance", reset=True,
        )  # fmt: skip
