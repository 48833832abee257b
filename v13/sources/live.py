"""The live Binance feed: combined-stream websocket connections in a background thread.

Per shard of at most ``max_streams_per_connection`` streams there is one connection per route
(``/market/stream`` for aggTrade, ``/public/stream`` for depth). Each connection:

* reconnects with :class:`Backoff` (reset after a stable period) when it drops or fails;
* watches every subscribed stream: one silent for ``silence_timeout_s`` is a fault (a routed-away
  stream is ACKed but never sends), so the connection is recycled and ``silent`` counted;
* reconnects on its own before Binance's 24 h cut (``max_connection_age_s``);
* announces each (re)open with a control line ``{"v13":"connected","conn":...,"streams":[...]}``,
  so the decoder (live and in a replay of the recording) resets what the reconnect made unknown.

In ``diff`` depth mode the feed fetches REST depth snapshots when the decoder asks
(:meth:`LiveFeed.request_snapshots`: after a depth connection opens, after a broken chain),
paced to Binance's request weight.

Everything reaches the consumer in the order the feed thread stamped it, through one bounded
queue: frames ``(recv_ns, raw, symbol)`` and, every 100 ms, a clock tick ``(now_ns, None, None)``
(every frame stamped before it is already in the queue)::

    feed = LiveFeed(cfg.source.binance, symbols); feed.start()
    for recv_ns, raw, symbol in feed.frames(timeout=0.1): ...
    feed.stop()
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from v13.config import BinanceConfig, DepthMode
from v13.sources.binance import shard_urls, stream_names
from v13.sources.reconnect import Backoff

__all__ = ["LiveFeed"]

QUEUE_MAX = 100_000
TICK_S = 0.1
STOP_WAIT_S = 0.8
RECV_POLL_S = 0.25
WEIGHT_PER_MINUTE = 2400  # Binance USD-M REST request weight budget

Item = tuple[int, bytes | None, str | None]
_STREAM_KEY = b'"stream":"'


def _stream_of(frame: bytes) -> str | None:
    """The stream name of a combined-stream frame, found without parsing the whole frame."""
    start = frame.find(_STREAM_KEY, 0, 64)
    if start < 0:
        return None
    start += len(_STREAM_KEY)
    end = frame.find(b'"', start)
    return frame[start:end].decode("ascii", "replace") if end > 0 else None


def snapshot_weight(limit: int) -> int:
    """Binance's request weight of ``GET /fapi/v1/depth`` by ``limit``."""
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


class LiveFeed:
    """Background websocket client; counters: reconnects, silent, dropped, connects, snapshot_errors."""

    def __init__(self, cfg: BinanceConfig, symbols: list[str]) -> None:
        self.cfg = cfg
        diff = cfg.depth_mode is DepthMode.DIFF
        market, public = stream_names(symbols, cfg.diff_stream if diff else cfg.depth_stream)
        n = cfg.max_streams_per_connection
        self.connections = shard_urls(cfg.market_url, market, n) + shard_urls(cfg.public_url, public, n)
        self._queue: queue.Queue[Item] = queue.Queue(QUEUE_MAX)
        self.counters: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._snapshots: asyncio.Queue[str] | None = None
        self._wanted: set[str] = set()  # symbols with a snapshot asked for and not yet delivered
        self.errors: list[str] = []

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="binance-feed", daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def frames(self, timeout: float = 0.1, limit: int = 10_000) -> list[Item]:
        """Items stamped since the last call (waits up to ``timeout`` for the first)."""
        out: list[Item] = []
        try:
            out.append(self._queue.get(timeout=timeout))
            while len(out) < limit:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out

    def request_snapshots(self, symbols: set[str]) -> None:
        """Ask for REST depth snapshots (diff mode); thread-safe, once per symbol until served."""
        if self._loop is None or self._snapshots is None:
            return
        for symbol in symbols - self._wanted:
            self._wanted.add(symbol)
            self._loop.call_soon_threadsafe(self._snapshots.put_nowait, symbol)

    # -- the thread --------------------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stopping = asyncio.Event()
        self._snapshots = asyncio.Queue()
        ready.set()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        assert self._stopping is not None
        tasks = [
            asyncio.create_task(self._connection(f"c{i}", url, streams))
            for i, (url, streams) in enumerate(self.connections)
        ]
        tasks.append(asyncio.create_task(self._ticks()))
        if self.cfg.depth_mode is DepthMode.DIFF:
            tasks.append(asyncio.create_task(self._snapshot_fetcher()))
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _put(self, item: Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.counters["dropped"] += 1

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._put((time.time_ns(), None, None))

    async def _connection(self, conn: str, url: str, streams: list[str]) -> None:
        cfg = self.cfg
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, stable_after_s=cfg.stable_after_s)
        first = True
        while True:
            started = time.monotonic()
            try:
                async with connect(url, open_timeout=10, close_timeout=0.2, ping_interval=None,
                                   max_size=2**22) as ws:  # fmt: skip
                    self.counters["connects"] += 1
                    if not first:
                        self.counters["reconnects"] += 1
                    first = False
                    control = {"v13": "connected", "conn": conn, "streams": streams}
                    self._put((time.time_ns(), orjson.dumps(control), None))  # the decoder asks for snapshots
                    await self._consume(ws, streams, started)
            except (TimeoutError, OSError, WebSocketException) as exc:
                self.errors.append(f"{url}: {type(exc).__name__}: {exc}")
                del self.errors[:-20]
                first = False
            backoff.connected_for(time.monotonic() - started)
            await asyncio.sleep(backoff.next_delay())

    async def _consume(self, ws: Any, streams: list[str], started: float) -> None:
        cfg = self.cfg
        last_seen = dict.fromkeys(streams, time.monotonic())
        while True:
            now = time.monotonic()
            if now - started >= cfg.max_connection_age_s:
                self.counters["age_reconnects"] += 1
                return
            silent = [s for s, t in last_seen.items() if now - t > cfg.silence_timeout_s]
            if silent:
                self.counters["silent"] += 1
                self.errors.append(f"silent for {cfg.silence_timeout_s:g} s: {','.join(silent)}")
                return
            try:
                async with asyncio.timeout(RECV_POLL_S):  # unlike wait_for, never swallows a cancel
                    raw = await ws.recv(decode=False)
            except TimeoutError:
                continue
            recv_ns = time.time_ns()
            data = raw if isinstance(raw, bytes) else raw.encode()
            stream = _stream_of(data)
            if stream in last_seen:
                last_seen[stream] = time.monotonic()
            self._put((recv_ns, data, None))

    async def _snapshot_fetcher(self) -> None:
        """One REST snapshot at a time, spaced to stay inside the request-weight budget."""
        assert self._snapshots is not None
        loop = asyncio.get_running_loop()
        spacing = snapshot_weight(self.cfg.snapshot_limit) * 60 / WEIGHT_PER_MINUTE
        while True:
            symbol = await self._snapshots.get()
            url = f"{self.cfg.rest_url}?symbol={symbol}&limit={self.cfg.snapshot_limit}"
            try:
                body = await loop.run_in_executor(None, _fetch, url)
            except (OSError, urllib.error.URLError) as exc:
                self.counters["snapshot_errors"] += 1
                self.errors.append(f"{url}: {exc}")
                del self.errors[:-20]
                await asyncio.sleep(max(spacing, 1.0))
                self._snapshots.put_nowait(symbol)  # try again
                continue
            self._wanted.discard(symbol)
            self._put((time.time_ns(), body, symbol))
            await asyncio.sleep(spacing)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
    return body
