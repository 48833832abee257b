"""The live Binance feed: combined-stream websocket connections in a background thread.

Per shard of at most ``max_streams_per_connection`` streams there is one connection per route
(``/market/stream`` for aggTrade, ``/public/stream`` for depth). Each connection:

* reconnects with :class:`Backoff` (reset after a stable period) when it drops or fails;
* watches every subscribed stream: one silent for ``silence_timeout_s`` is a fault (a routed-away
  stream is ACKed but never sends), so the connection is recycled and ``silent`` counted;
* reconnects on its own before Binance's 24 h cut (``max_connection_age_s``).

Frames are handed over raw, with their receive time, through a bounded queue::

    feed = LiveFeed(cfg.source.binance, symbols); feed.start()
    for recv_ts_ms, raw in feed.frames(timeout=0.1): ...
    feed.stop()
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from v13.config import BinanceConfig
from v13.sources.binance import shard_urls, stream_names
from v13.sources.reconnect import Backoff

__all__ = ["LiveFeed"]

QUEUE_MAX = 100_000


_STREAM_KEY = b'"stream":"'


def _stream_of(frame: bytes) -> str | None:
    """The stream name of a combined-stream frame, found without parsing the whole frame."""
    start = frame.find(_STREAM_KEY, 0, 64)
    if start < 0:
        return None
    start += len(_STREAM_KEY)
    end = frame.find(b'"', start)
    return frame[start:end].decode("ascii", "replace") if end > 0 else None


class LiveFeed:
    """Background websocket client; counters: reconnects, silent, dropped, connects."""

    def __init__(self, cfg: BinanceConfig, symbols: list[str]) -> None:
        self.cfg = cfg
        market, public = stream_names(symbols, cfg.depth_stream)
        n = cfg.max_streams_per_connection
        self.connections = shard_urls(cfg.market_url, market, n) + shard_urls(cfg.public_url, public, n)
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue(QUEUE_MAX)
        self.counters: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="binance-feed", daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self, timeout: float = 3.0) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def frames(self, timeout: float = 0.1, limit: int = 10_000) -> list[tuple[int, bytes]]:
        """Frames received since the last call (waits up to ``timeout`` for the first)."""
        out: list[tuple[int, bytes]] = []
        try:
            out.append(self._queue.get(timeout=timeout))
            while len(out) < limit:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out

    # -- the thread --------------------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stopping = asyncio.Event()
        ready.set()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        assert self._stopping is not None
        tasks = [asyncio.create_task(self._connection(url, streams)) for url, streams in self.connections]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, url: str, streams: list[str]) -> None:
        cfg = self.cfg
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, stable_after_s=cfg.stable_after_s)
        first = True
        while True:
            started = time.monotonic()
            try:
                async with connect(url, open_timeout=10, ping_interval=None, max_size=2**22) as ws:
                    self.counters["connects"] += 1
                    if not first:
                        self.counters["reconnects"] += 1
                    first = False
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
                raw = await asyncio.wait_for(ws.recv(decode=False), timeout=0.5)
            except TimeoutError:
                continue
            recv_ms = time.time_ns() // 1_000_000
            data = raw if isinstance(raw, bytes) else raw.encode()
            stream = _stream_of(data)
            if stream in last_seen:
                last_seen[stream] = time.monotonic()
            try:
                self._queue.put_nowait((recv_ms, data))
            except queue.Full:
                self.counters["dropped"] += 1
