"""A local server that speaks Binance USD-M combined streams on both routes (127.0.0.1 only).

Frames come from the simulator stepped at wall-clock pace, shaped exactly as Binance sends them
(numbers as strings, ``m`` = buyer is maker). ``faults`` switches behaviours on while it runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from v13.contracts import BookRow, TradeRow
from v13.sources.sim import SimMarket

ROUTES = {"/market/stream": "@aggTrade", "/public/stream": "@depth"}


@dataclass
class Faults:
    drop_at_s: float | None = None  # close every connection once, this long after start
    silent: set[str] = field(default_factory=set)  # streams that never send
    depth_gap_at_s: float | None = None  # skip one depth update per symbol, once
    id_jump_at_s: float | None = None  # aggregate trade ids jump by 5, once
    malformed_at_s: float | None = None  # send three malformed frames, once
    done: set[str] = field(default_factory=set)


def trade_frame(row: TradeRow, event_ms: int) -> bytes:
    data = {"e": "aggTrade", "E": event_ms, "s": row.symbol, "a": row.trade_id, "p": repr(row.price),
            "q": repr(row.qty), "f": row.trade_id * 3, "l": row.trade_id * 3 + 2, "T": row.ts_ms,
            "m": row.side == "sell"}  # fmt: skip
    return orjson.dumps({"stream": f"{row.symbol.lower()}@aggTrade", "data": data})


def depth_frame(row: BookRow, event_ms: int, stream: str) -> bytes:
    data = {"e": "depthUpdate", "E": event_ms, "T": row.ts_ms, "s": row.symbol, "U": row.prev_update_id + 1,
            "u": row.update_id, "pu": row.prev_update_id,
            "b": [[repr(p), repr(q)] for p, q in row.bids],
            "a": [[repr(p), repr(q)] for p, q in row.asks]}  # fmt: skip
    return orjson.dumps({"stream": f"{row.symbol.lower()}@{stream}", "data": data})


class FakeBinance:
    def __init__(
        self, symbols: list[str], faults: Faults | None = None, depth_stream: str = "depth5@100ms"
    ) -> None:
        self.symbols = symbols
        self.faults = faults or Faults()
        self.depth_stream = depth_stream
        self.port = 0
        self.connections: list[tuple[float, str]] = []  # (monotonic time, path) of each accepted connection
        self.sent = 0
        self.dropped_at: float | None = None
        self._clients: dict[ServerConnection, set[str]] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._trade_offset = 0

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        assert self._ready.wait(10), "fake server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def url(self, route: str) -> str:
        return f"ws://127.0.0.1:{self.port}{route}"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            producer = asyncio.create_task(self._produce())
            await self._stop.wait()
            producer.cancel()

    async def _handler(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path)
        if parts.path not in ROUTES:
            await ws.close(1008, "unknown route")
            return
        streams = set(parse_qs(parts.query).get("streams", [""])[0].split("/"))
        self.connections.append((time.monotonic(), parts.path))
        self._clients[ws] = {s for s in streams if ROUTES[parts.path] in s}
        try:
            await ws.wait_closed()
        finally:
            self._clients.pop(ws, None)

    def _due(self, name: str, at: float | None, elapsed: float) -> bool:
        if at is None or name in self.faults.done or elapsed < at:
            return False
        self.faults.done.add(name)
        return True

    async def _produce(self) -> None:
        start = time.monotonic()
        market = SimMarket(self.symbols, preset="weak", seed=3, start_ms=time.time_ns() // 1_000_000)
        while True:
            await asyncio.sleep(max(0.0, market.next_ms + 100 - time.time_ns() / 1e6) / 1000)
            now = time.time_ns() // 1_000_000
            elapsed = time.monotonic() - start
            f = self.faults
            if self._due("drop", f.drop_at_s, elapsed):
                self.dropped_at = time.monotonic()
                for ws in list(self._clients):
                    await ws.close(1001, "going away")
            skip_depth = self._due("depth_gap", f.depth_gap_at_s, elapsed)
            if self._due("id_jump", f.id_jump_at_s, elapsed):
                self._trade_offset += 5
            frames: list[tuple[str, bytes]] = []
            for row in market.step():
                if isinstance(row, TradeRow):
                    row = TradeRow(**{**_fields(row), "trade_id": row.trade_id + self._trade_offset})
                    frames.append((f"{row.symbol.lower()}@aggTrade", trade_frame(row, now)))
                elif not skip_depth:
                    stream = f"{row.symbol.lower()}@{self.depth_stream}"
                    frames.append((stream, depth_frame(row, now, self.depth_stream)))
            if self._due("malformed", f.malformed_at_s, elapsed):
                frames += malformed_frames(self.symbols[0].lower(), self.depth_stream)
            for ws, streams in list(self._clients.items()):
                for stream, frame in frames:
                    if stream in streams and stream not in f.silent:
                        try:
                            await ws.send(frame)
                            self.sent += 1
                        except ConnectionClosed:
                            break


def _fields(row: TradeRow) -> dict[str, object]:
    return {name: getattr(row, name) for name in row.__struct_fields__}


def malformed_frames(sym: str, depth_stream: str) -> list[tuple[str, bytes]]:
    """A torn frame, a trade with a non-numeric price, a crossed book."""
    trade, depth = f"{sym}@aggTrade", f"{sym}@{depth_stream}"
    bad_trade = {"e": "aggTrade", "E": 1, "s": "X", "a": 1, "p": "abc", "q": "1", "T": 1, "m": True}
    crossed = {"e": "depthUpdate", "E": 1, "T": 1, "s": "X", "U": 1, "u": 2, "pu": 1,
               "b": [["101.0", "1"]], "a": [["100.0", "1"]]}  # fmt: skip
    return [
        (trade, b'{"stream":"' + trade.encode() + b'","data":{"e":"aggTrade"'),
        (trade, orjson.dumps({"stream": trade, "data": bad_trade})),
        (depth, orjson.dumps({"stream": depth, "data": crossed})),
    ]
