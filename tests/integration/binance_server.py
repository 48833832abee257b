"""A local server that speaks Binance USD-M on 127.0.0.1: combined streams on both routes, and the
REST depth snapshot (``GET /fapi/v1/depth?symbol=...&limit=...``) on the same port.

Frames come from the simulator stepped at wall-clock pace, shaped exactly as Binance sends them
(numbers as strings, ``m`` = buyer is maker). Depth streams are partial (``@depth5@100ms``:
the top levels each time) or diffs (``@depth@100ms``: changed levels, quantity 0 = removed,
``U``/``u``/``pu`` chained). ``faults`` switches behaviours on while it runs; each one counts
what it injected, so tests can demand exact counts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from v13.contracts import BookRow, TradeRow
from v13.sources.sim import SimMarket

ROUTES = {"/market/stream": "@aggTrade", "/public/stream": "@depth"}
DEPTH_PATH = "/fapi/v1/depth"
U_STEP = 7  # update ids advance by this per book update (U = previous u + 1)


@dataclass
class Faults:
    drop_at_s: float | None = None  # close every connection once, this long after start
    silent: set[str] = field(default_factory=set)  # streams that never send
    depth_gap_at_s: float | None = None  # skip one depth update per symbol, once
    id_jump_at_s: float | None = None  # aggregate trade ids jump by 5, once
    malformed_at_s: float | None = None  # send three malformed frames, once
    burst_s: float | None = None  # hold every frame and send them all every burst_s seconds
    done: set[str] = field(default_factory=set)


def trade_frame(row: TradeRow, event_ms: int) -> bytes:
    data = {"e": "aggTrade", "E": event_ms, "s": row.symbol, "a": row.trade_id, "p": repr(row.price),
            "q": repr(row.qty), "f": row.trade_id * 3, "l": row.trade_id * 3 + 2, "T": row.ts_ms,
            "m": row.side == "sell"}  # fmt: skip
    return orjson.dumps({"stream": f"{row.symbol.lower()}@aggTrade", "data": data})


def _levels(levels: list[tuple[float, float]]) -> list[list[str]]:
    return [[repr(p), repr(q)] for p, q in levels]


@dataclass
class _DepthState:
    """The server's own view of a symbol's book and its update id chain."""

    u: int = 1000
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)


def depth_frame(row: BookRow, event_ms: int, stream: str, state: _DepthState, *, diff: bool) -> bytes:
    """The next depth event of a symbol; advances its update id chain."""
    first, prev = state.u + 1, state.u
    state.u += U_STEP
    new_bids, new_asks = dict(row.bids), dict(row.asks)
    if diff:  # what changed since the previous book (quantity 0: the level is gone)
        bids = [(p, q) for p, q in new_bids.items() if state.bids.get(p) != q]
        bids += [(p, 0.0) for p in state.bids if p not in new_bids]
        asks = [(p, q) for p, q in new_asks.items() if state.asks.get(p) != q]
        asks += [(p, 0.0) for p in state.asks if p not in new_asks]
    else:
        bids, asks = list(row.bids), list(row.asks)
    state.bids, state.asks = new_bids, new_asks
    data = {"e": "depthUpdate", "E": event_ms, "T": row.ts_ms, "s": row.symbol, "U": first, "u": state.u,
            "pu": prev, "b": _levels(bids), "a": _levels(asks)}  # fmt: skip
    return orjson.dumps({"stream": f"{row.symbol.lower()}@{stream}", "data": data})


class FakeBinance:
    def __init__(
        self, symbols: list[str], faults: Faults | None = None, depth_stream: str = "depth5@100ms",
        levels: int = 5,
    ) -> None:  # fmt: skip
        self.symbols = symbols
        self.faults = faults or Faults()
        self.depth_stream = depth_stream
        self.diff = depth_stream.split("@")[0] == "depth"
        self.levels = levels
        self.port = 0
        self.connections: list[tuple[float, str]] = []  # (monotonic time, path) of each accepted connection
        self.snapshots: list[str] = []  # symbols of the REST snapshots served
        self.injected: dict[str, int] = {"drops": 0, "depth_gaps": 0, "id_jumps": 0, "malformed": 0}
        self.sent = 0
        self.dropped_at: float | None = None
        self._depth = {s: _DepthState() for s in symbols}
        self._clients: dict[ServerConnection, set[str]] = {}
        self._held: list[tuple[str, bytes]] = []
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

    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{DEPTH_PATH}"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._http) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            producer = asyncio.create_task(self._produce())
            await self._stop.wait()
            producer.cancel()

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """The REST depth snapshot; anything else goes on to the websocket handshake."""
        parts = urlsplit(request.path)
        if parts.path != DEPTH_PATH:
            return None
        symbol = parse_qs(parts.query).get("symbol", [""])[0]
        state = self._depth.get(symbol)
        if state is None:
            return connection.respond(HTTPStatus.BAD_REQUEST, '{"code":-1121,"msg":"Invalid symbol."}')
        now = time.time_ns() // 1_000_000
        body = orjson.dumps({
            "lastUpdateId": state.u, "E": now, "T": now,
            "bids": _levels(sorted(state.bids.items(), reverse=True)),
            "asks": _levels(sorted(state.asks.items())),
        })  # fmt: skip
        self.snapshots.append(symbol)
        return Response(200, "OK", Headers({"Content-Type": "application/json"}), body)

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
        market = SimMarket(self.symbols, preset="weak", seed=3, start_ms=time.time_ns() // 1_000_000,
                           levels=self.levels)  # fmt: skip
        last_flush = start
        while True:
            await asyncio.sleep(max(0.0, market.next_ms + 100 - time.time_ns() / 1e6) / 1000)
            now = time.time_ns() // 1_000_000
            elapsed = time.monotonic() - start
            f = self.faults
            if self._due("drop", f.drop_at_s, elapsed):
                self.dropped_at = time.monotonic()
                self.injected["drops"] += 1
                for ws in list(self._clients):
                    await ws.close(1001, "going away")
            skip_depth = self._due("depth_gap", f.depth_gap_at_s, elapsed)
            if self._due("id_jump", f.id_jump_at_s, elapsed):
                self._trade_offset += 5
                self.injected["id_jumps"] += 1
            frames: list[tuple[str, bytes]] = []
            for row in market.step():
                if isinstance(row, TradeRow):
                    row = TradeRow(**{**_fields(row), "trade_id": row.trade_id + self._trade_offset})
                    frames.append((f"{row.symbol.lower()}@aggTrade", trade_frame(row, now)))
                    continue
                stream = f"{row.symbol.lower()}@{self.depth_stream}"
                frame = depth_frame(row, now, self.depth_stream, self._depth[row.symbol], diff=self.diff)
                if skip_depth:
                    self.injected["depth_gaps"] += 1  # generated, never sent: the chain breaks
                else:
                    frames.append((stream, frame))
            if self._due("malformed", f.malformed_at_s, elapsed):
                frames += malformed_frames(self.symbols[0].lower(), self.depth_stream)
                self.injected["malformed"] += 3
            self._held += frames
            if f.burst_s is not None and time.monotonic() - last_flush < f.burst_s:
                continue
            last_flush = time.monotonic()
            held, self._held = self._held, []
            await self._send(held)

    async def _send(self, frames: list[tuple[str, bytes]]) -> None:
        for ws, streams in list(self._clients.items()):
            for stream, frame in frames:
                if stream in streams and stream not in self.faults.silent:
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
