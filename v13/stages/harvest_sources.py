"""The harvest's loop for each source: the simulator, live Binance, and a replay.

Live and replay go through the same :class:`~v13.sources.binance.FrameDecoder` and feature
engine in the same order (the order frames were received), so a replay of a recording gives the
live run's rows and counters; the live loop's clock ticks only close intervals earlier.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from v13.config import Config
from v13.contracts import BookRow, TradeRow
from v13.fsutil import now_ms
from v13.layout import Layout
from v13.sources.live import LiveFeed
from v13.sources.recording import Recorder, read_recording
from v13.sources.replay import aggtrades_rows, raw_segment_rows, replay_kind
from v13.sources.sim import SimMarket
from v13.stage import StageRuntime

if TYPE_CHECKING:
    from v13.stages.harvest import HarvestOutput

__all__ = ["run_live", "run_replay", "run_sim"]

Row = TradeRow | BookRow


def run_sim(cfg: Config, rt: StageRuntime, out: HarvestOutput) -> None:
    sim = cfg.source.sim
    market = SimMarket(list(cfg.symbols), preset=sim.preset.value, seed=sim.seed, start_ms=now_ms(),
                       levels=sim.book_levels, dt_ms=sim.step_ms)  # fmt: skip
    out.started_fields = {"symbols": ",".join(cfg.symbols), "source": "sim", "preset": sim.preset.value}
    while not rt.stopping:
        step_end = market.next_ms + sim.step_ms  # a step's rows exist once its interval is over
        if rt.wait((step_end - now_ms()) / 1000):
            break
        recv = now_ms()
        out.rows(market.step(recv_now_ms=recv))
        out.source_watermark(step_end)  # the simulator is done with every event before the step's end
        out.tick()


def run_live(cfg: Config, layout: Layout, rt: StageRuntime, out: HarvestOutput) -> None:
    b = cfg.source.binance
    feed = LiveFeed(b, list(cfg.symbols))
    recorder = Recorder(layout.data.recording_dir(rt.run_id)) if b.record else None
    out.started_fields = {"symbols": ",".join(cfg.symbols), "source": "binance",
                          "connections": len(feed.connections)}  # fmt: skip
    feed.start()
    try:
        while not rt.stopping:
            items = feed.frames(timeout=0.1)
            for recv_ns, raw, symbol in items:
                if raw is None:
                    out.clock(recv_ns // 1_000_000)
                    continue
                if recorder is not None:
                    recorder.write(recv_ns, raw, symbol)
                out.frame(raw, recv_ns // 1_000_000, symbol, "binance")
            if recorder is not None and items:
                recorder.flush()
            requests = out.decoder.snapshot_requests
            if requests:
                feed.request_snapshots(set(requests))
                requests.clear()
            rt.counters["dropped"] = feed.counters["dropped"]
            rt.counters["silent_streams"] = feed.counters["silent"]
            rt.counters["snapshot_errors"] = feed.counters["snapshot_errors"]
            if out.decoder.counters.last_lag_ms is not None:
                rt.counters["exchange_lag_ms"] = int(out.decoder.counters.last_lag_ms)
            out.tick()
    finally:
        feed.stop()
        if recorder is not None:
            recorder.close()


def run_replay(cfg: Config, rt: StageRuntime, out: HarvestOutput, path: Path) -> None:
    """Replay ``path`` (pace: ``source.replay.speed``), then say exhausted and wait to be stopped."""
    speed = cfg.source.replay.speed
    rt.lag_clock = lambda: out.last_recv_ms
    out.started_fields = {"source": "replay", "path": path}
    start: tuple[int, float] | None = None
    for recv_ms, item in _replay_items(cfg, out, path):
        if rt.stopping:
            return
        if speed > 0:
            start = start or (recv_ms, time.monotonic())
            if rt.wait(start[1] + (recv_ms - start[0]) / 1000 / speed - time.monotonic()):
                return
        if isinstance(item, Frame):
            out.frame(item.raw, recv_ms, item.symbol, str(path))
        else:
            out.rows([item])
        out.tick()
    out.features(out.engine.finish())
    out.tick()
    if rt.state == "starting":  # nothing to write: the source was empty
        rt.started(**out.started_fields)
    out.close()
    rt.exhausted()
    while not rt.stopping:  # stay up (and healthy) until stopped: a supervised stage does not exit
        rt.beat()
        rt.wait(0.5)


class Frame(NamedTuple):
    raw: bytes
    symbol: str | None


def _replay_items(cfg: Config, out: HarvestOutput, path: Path) -> Iterator[tuple[int, Frame | Row]]:
    """(receive time ms, a raw frame or a row) of each item of a replay source, in arrival order."""
    kind = replay_kind(path)
    dl = out.deadletter
    if kind == "recording":

        def torn(why: str, where: Path, line: bytes) -> None:
            dl.write(why, str(where), line)

        only = cfg.symbols[0] if len(cfg.symbols) == 1 else None
        for recv_ns, raw, symbol in read_recording(path, default_symbol=only, on_error=torn):
            yield recv_ns // 1_000_000, Frame(raw, symbol)
    elif kind == "raw":
        for row in raw_segment_rows(path, dl):
            yield row.recv_ts_ms, row
    else:
        for trade in aggtrades_rows(path, deadletter=dl):
            yield trade.recv_ts_ms, trade
