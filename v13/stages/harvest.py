"""harvest: market data -> raw trade/book segments and per-second feature segments.

Sources (``source.kind``, or ``--source``): ``sim`` (default; the simulator paced to the wall
clock), ``binance`` (live USD-M futures websockets, optionally recording every raw frame) and
``replay`` (a recording, raw segments or an aggTrades file; ``source.replay.speed`` 0 = as fast
as possible). Every row goes through the feature engine; raw rows go to ``data/raw``, feature
rows to ``data/preview``; segments rotate on ``segments.rotate_seconds``. ``Server started`` is
logged once the first segments are open.

A replay is finite: when it is used up the harvest closes the last intervals, seals every
segment and says ``exhausted`` in its status file (the orchestrator then lets the later stages
drain and ends the run); it stays up, healthy, until it is stopped.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from v13.config import Config, SourceKind
from v13.contracts import BookRow, TradeRow
from v13.deadletter import Deadletter
from v13.errors import ContractError
from v13.features import FeatureEngine
from v13.fsutil import now_ms
from v13.layout import Layout
from v13.sources.binance import FrameDecoder
from v13.sources.live import LiveFeed
from v13.sources.replay import aggtrades_rows, raw_segment_rows, recorded_frames, replay_kind
from v13.sources.sim import SimMarket
from v13.stage import StageRuntime
from v13.stages.common import add_common_args, parse_symbols, stage_setup
from v13.streams import StreamSet

__all__ = ["main"]

LIVE_CLOSE_GRACE_MS = 2000  # a live interval is closed this long after its end if no row closed it

Row = TradeRow | BookRow


class HarvestOutput:
    """Feature engine + segment streams + the stage's counters, for any source."""

    def __init__(self, cfg: Config, layout: Layout, rt: StageRuntime) -> None:
        self.rt = rt
        self.engine = FeatureEngine(cfg.features)
        self.streams = StreamSet(
            layout.data_dir, f"{rt.run_id}-{os.getpid()}", cfg.segments, write_raw=cfg.harvest.write_raw
        )

    def rows(self, rows: Iterable[Row]) -> None:
        rt = self.rt
        for row in rows:
            self.features(self.engine.on_row(row))
            self.streams.write(row)
            rt.count("in")
            rt.count("trades" if isinstance(row, TradeRow) else "books")
            rt.last_event_ts_ms = row.ts_ms

    def features(self, features: Iterable[object]) -> None:
        for feature in features:
            self.streams.write(feature)  # type: ignore[arg-type]
            self.rt.count("out")

    def tick(self, **started_fields: object) -> None:
        self.streams.tick()
        if self.rt.state == "starting" and self.streams.writers:
            self.rt.started(**started_fields)
        self.rt.counters["segments"] = self.streams.segments_sealed
        self.rt.beat()

    def close(self) -> None:
        self.features(self.engine.finish())
        self.streams.close()
        self.rt.counters["segments"] = self.streams.segments_sealed


def run_sim(cfg: Config, rt: StageRuntime, out: HarvestOutput) -> None:
    sim = cfg.source.sim
    market = SimMarket(list(cfg.symbols), preset=sim.preset.value, seed=sim.seed, start_ms=now_ms(),
                       levels=sim.book_levels, dt_ms=sim.step_ms)  # fmt: skip
    while not rt.stopping:
        step_end = market.next_ms + sim.step_ms  # a step's rows exist once its interval is over
        if rt.wait((step_end - now_ms()) / 1000):
            break
        out.rows(market.step(recv_now_ms=now_ms()))
        out.tick(symbols=",".join(cfg.symbols), source="sim", preset=sim.preset.value)


def run_live(cfg: Config, layout: Layout, rt: StageRuntime, out: HarvestOutput) -> None:
    b = cfg.source.binance
    feed = LiveFeed(b, list(cfg.symbols))
    decoder = FrameDecoder()
    deadletter = Deadletter(layout.deadletter_stage_dir("harvest"), "harvest", rt.run_id)
    recording = layout.data.recording_file(rt.run_id)
    if b.record:
        recording.parent.mkdir(parents=True, exist_ok=True)
    recorder = open(recording, "ab") if b.record else None  # noqa: SIM115 - closed in finally
    feed.start()
    try:
        while not rt.stopping:
            lines = []
            for recv_ts_ms, raw in feed.frames(timeout=0.1):
                if recorder is not None:
                    lines.append(
                        orjson.dumps({"recv_ts_ms": recv_ts_ms, "frame": raw.decode("utf-8", "replace")})
                    )
                try:
                    out.rows(decoder.decode(raw, recv_ts_ms))
                except ContractError as exc:
                    deadletter.write(str(exc), "binance", raw)
            if recorder is not None and lines:
                recorder.write(b"\n".join(lines) + b"\n")
                recorder.flush()
            out.features(out.engine.advance(now_ms() - LIVE_CLOSE_GRACE_MS))
            c = decoder.counters
            totals = {"deadletter": c.malformed, "depth_gaps": c.depth_gaps, "trade_gaps": c.trade_gaps,
                      "reconnects": feed.counters["reconnects"], "silent_streams": feed.counters["silent"],
                      "dropped": feed.counters["dropped"]}  # fmt: skip
            for key, value in totals.items():  # totals, not increments (Counter.update would add)
                rt.counters[key] = value
            if c.last_lag_ms is not None:
                rt.counters["exchange_lag_ms"] = int(c.last_lag_ms)
            out.tick(symbols=",".join(cfg.symbols), source="binance", connections=len(feed.connections))
    finally:
        feed.stop()
        if recorder is not None:
            recorder.close()


def _replay_rows(
    path: Path, decoder: FrameDecoder, deadletter: Deadletter
) -> Iterator[tuple[int, list[Row]]]:
    """(pacing time, rows) of a replay source."""
    kind = replay_kind(path)
    if kind == "frames":
        for recv_ts_ms, raw in recorded_frames(path):
            try:
                yield recv_ts_ms, list(decoder.decode(raw, recv_ts_ms))
            except ContractError as exc:
                deadletter.write(str(exc), str(path), raw)
    elif kind == "raw":
        for row in raw_segment_rows(path, deadletter):
            yield row.ts_ms, [row]
    else:
        for trade in aggtrades_rows(path, deadletter=deadletter):
            yield trade.ts_ms, [trade]


def run_replay(cfg: Config, layout: Layout, rt: StageRuntime, out: HarvestOutput, path: Path) -> None:
    speed = cfg.source.replay.speed
    decoder = FrameDecoder()
    deadletter = Deadletter(layout.deadletter_stage_dir("harvest"), "harvest", rt.run_id)
    first: tuple[int, float] | None = None
    for ts_ms, rows in _replay_rows(path, decoder, deadletter):
        if rt.stopping:
            return
        if speed > 0:
            first = first or (ts_ms, time.monotonic())
            if rt.wait(first[1] + (ts_ms - first[0]) / 1000 / speed - time.monotonic()):
                return
        out.rows(rows)
        out.tick(source="replay", path=path)
    out.features(out.engine.finish())
    rt.counters["deadletter"] = deadletter.count
    out.tick(source="replay", path=path)
    if rt.state == "starting":
        rt.started(source="replay", path=path)
    out.close()
    rt.exhausted()
    while not rt.stopping:  # stay up (and healthy) until stopped: a supervised stage does not exit
        rt.beat()
        rt.wait(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp.harvest_server.app", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--symbols", default=None, help="comma-separated (default: the config's)")
    parser.add_argument("--source", choices=[k.value for k in SourceKind], default=None,
                        help="sim | binance | replay (default: source.kind)")  # fmt: skip
    parser.add_argument("--replay", type=Path, default=None, help="replay path (default: source.replay.path)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.symbols:
        overrides["symbols"] = parse_symbols(args.symbols)
    if args.source:
        overrides["source.kind"] = args.source
    if args.replay:
        overrides["source.replay.path"] = str(args.replay)
    cfg, layout = stage_setup(args, overrides)
    replay_path = layout.root / cfg.source.replay.path
    if cfg.source.kind is SourceKind.REPLAY:
        replay_kind(replay_path)  # a bad path is a usage error before anything starts
    rt = StageRuntime("harvest", cfg, layout, first_stage=True)
    out = HarvestOutput(cfg, layout, rt)
    try:
        if cfg.source.kind is SourceKind.SIM:
            run_sim(cfg, rt, out)
        elif cfg.source.kind is SourceKind.BINANCE:
            run_live(cfg, layout, rt, out)
        else:
            run_replay(cfg, layout, rt, out, replay_path)
    finally:
        out.close()
        rt.stopped()
    return 0
