"""Binance USD-M futures: stream names, routes and the decoder of combined-stream frames.

Since 2026-04-23 the streams are routed: ``@aggTrade`` on ``/market/stream``, ``@depth*`` on
``/public/stream``. Frames are ``{"stream": ..., "data": {...}}`` with every number a string::

    {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1764300000123,"s":"BTCUSDT","a":5933014,
     "p":"95000.10","q":"0.012","f":100,"l":105,"T":1764300000120,"m":true}}
    {"stream":"btcusdt@depth5@100ms","data":{"e":"depthUpdate","E":1764300000200,"T":1764300000198,
     "s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,
     "b":[["95000.00","1.204"],...],"a":[["95000.10","0.330"],...]}}

``m = true`` means the buyer is the maker: a SELL-initiated trade. Depth ``u``/``pu`` become the
book row's ``update_id``/``prev_update_id``, so a missed update (``pu`` != previous ``u``) resets
the features; an aggTrade id that does not follow the previous one by exactly 1 is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from v13.contracts import BookRow, TradeRow
from v13.errors import ContractError

__all__ = ["FrameDecoder", "SourceCounters", "shard_urls", "stream_names"]


class _AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade"):
    E: int
    s: str
    a: int
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
    T: int = 0


class _Frame(msgspec.Struct):
    stream: str
    data: _AggTrade | _Depth


_DECODER = msgspec.json.Decoder(_Frame, strict=False)  # numeric strings -> floats in the decoder


def stream_names(symbols: list[str], depth_stream: str) -> tuple[list[str], list[str]]:
    """(market streams, public streams) for the symbols."""
    lower = [s.lower() for s in symbols]
    return [f"{s}@aggTrade" for s in lower], [f"{s}@{depth_stream}" for s in lower]


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
    malformed: int = 0
    depth_gaps: int = 0
    trade_gaps: int = 0
    last_lag_ms: float | None = None


class FrameDecoder:
    """Turns raw frames into contract rows; keeps the per-symbol state that detects gaps."""

    def __init__(self) -> None:
        self.counters = SourceCounters()
        self._last_u: dict[str, int] = {}
        self._last_a: dict[str, int] = {}

    def decode(self, raw: bytes, recv_ts_ms: int) -> Iterator[TradeRow | BookRow]:
        """Rows of one frame (0 or 1); ContractError for a malformed frame."""
        try:
            frame = _DECODER.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.counters.malformed += 1
            raise ContractError(f"binance frame invalid: {exc}") from None
        self.counters.frames += 1
        d = frame.data
        self.counters.last_lag_ms = float(recv_ts_ms - d.E)
        try:
            row = self._row(d, recv_ts_ms)
        except ContractError:
            self.counters.malformed += 1
            raise
        yield row

    def _row(self, d: _AggTrade | _Depth, recv_ts_ms: int) -> TradeRow | BookRow:
        if isinstance(d, _AggTrade):
            last = self._last_a.get(d.s)
            if last is not None and d.a != last + 1:
                self.counters.trade_gaps += 1
            self._last_a[d.s] = d.a
            self.counters.trades += 1
            return TradeRow(
                ts_ms=d.T, recv_ts_ms=recv_ts_ms, symbol=d.s, price=d.p, qty=d.q,
                side="sell" if d.m else "buy", trade_id=d.a, src="binance",
            )  # fmt: skip
        last_u = self._last_u.get(d.s)
        if last_u is not None and d.pu != last_u:
            self.counters.depth_gaps += 1
        self._last_u[d.s] = d.u
        self.counters.books += 1
        return BookRow(
            ts_ms=d.T or d.E, recv_ts_ms=recv_ts_ms, symbol=d.s, bids=d.b, asks=d.a,
            update_id=d.u, prev_update_id=d.pu, src="binance",
        )  # fmt: skip
