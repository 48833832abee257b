"""harvest: market data -> raw trade/book segments and per-second feature segments.

Sources (``source.kind``, or ``--source``): ``sim`` (default; the simulator paced to the wall
clock), ``binance`` (live USD-M futures websockets, optionally recording every raw frame) and
``replay`` (a recording in the collector format, the project's raw segments, or an aggTrades
file; ``source.replay.speed`` 0 = as fast as possible). Every row goes through the feature
engine; raw rows go to ``data/raw``, feature rows to ``data/preview``; segments rotate on
``segments.rotate_seconds``. ``Server started`` is logged once a first row is in an open segment.

A replay is finite: when it is used up the harvest closes the last intervals, seals every
segment and says ``exhausted`` in its status file (the orchestrator then lets the later stages
drain and ends the run); it stays up, healthy, until it is stopped.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from v13.config import Config, SourceKind
from v13.contracts import BookRow, FeatureRow, TradeRow
from v13.deadletter import Deadletter
from v13.errors import ContractError
from v13.features import FeatureEngine
from v13.layout import Layout
from v13.sources.binance import FrameDecoder
from v13.sources.replay import replay_path
from v13.stage import StageRuntime
from v13.stages.common import add_common_args, parse_symbols, stage_setup
from v13.stages.harvest_sources import run_live, run_replay, run_sim
from v13.streams import StreamSet

__all__ = ["HarvestOutput", "main"]

Row = TradeRow | BookRow


class HarvestOutput:
    """Decoder, feature engine, segment streams and the stage's counters, for every source."""

    def __init__(self, cfg: Config, layout: Layout, rt: StageRuntime) -> None:
        self.rt = rt
        self.engine = FeatureEngine(cfg.features)
        self.decoder = FrameDecoder(levels=cfg.features.ofi_levels)
        self.deadletter = Deadletter(layout.deadletter_stage_dir("harvest"), "harvest", rt.run_id)
        self.streams = StreamSet(
            layout.data_dir, f"{rt.run_id}-{os.getpid()}", cfg.segments, write_raw=cfg.harvest.write_raw
        )
        self.last_recv_ms: int | None = None  # the source's clock: a replay's lag is held against it
        self.started_fields: dict[str, object] = {}  # what ``Server started`` says about the source

    def rows(self, rows: Iterable[Row]) -> None:
        if self.rt.state == "starting":
            rows = self._announcing(rows)
        on_row, write = self.engine.on_row, self.streams.write
        count = trades = 0
        last: Row | None = None
        for last in rows:
            if closed := on_row(last):
                self.features(closed)
            write(last)
            count += 1
            trades += type(last) is TradeRow
        if last is not None:  # counted per batch: at a thousand symbols the rows are most of the work
            counters = self.rt.counters
            counters["in"] += count
            if trades:
                counters["trades"] += trades
            if count > trades:
                counters["books"] += count - trades
            self.rt.last_event_ts_ms = last.ts_ms
            self.last_recv_ms = last.recv_ts_ms

    def _announcing(self, rows: Iterable[Row]) -> Iterator[Row]:
        """``rows``, saying ``Server started`` as soon as one of them is in an open segment: at a
        thousand symbols the first step opens thousands of files, and readiness need not wait."""
        for row in rows:
            yield row
            self._announce()

    def _announce(self) -> None:
        if self.rt.state == "starting" and self.streams.writers:
            self.rt.started(**self.started_fields)

    def frame(self, raw: bytes, recv_ms: int, symbol: str | None, source: str) -> None:
        """One raw exchange frame (live or recorded); a malformed one goes to the deadletter."""
        self.last_recv_ms = recv_ms
        try:
            rows = self.decoder.decode(raw, recv_ms, symbol)
        except ContractError as exc:
            self.deadletter.write(str(exc), source, raw)
            return
        self.rows(rows)

    def clock(self, now_ms: int) -> None:
        """A clock tick: everything received up to ``now_ms`` has been given."""
        self.features(self.engine.advance(now_ms))

    def source_watermark(self, event_ms: int) -> None:
        """No row with an event time before ``event_ms`` is still to come from the source."""
        self.features(self.engine.source_watermark(event_ms))

    def features(self, features: Iterable[FeatureRow]) -> None:
        for feature in features:
            self.streams.write(feature)  # a feature row reaches its file at once: the signal waits for it
            self.rt.count("out")

    def tick(self) -> None:
        self.streams.tick()
        self._announce()  # when only feature rows are written (harvest.write_raw: false)
        counters = self.rt.counters
        counters["segments"] = self.streams.segments_sealed
        counters["late_rows"] = self.engine.late_rows
        counters["deadletter"] = self.deadletter.count
        if self.decoder.counters.frames or self.decoder.counters.malformed:
            for key, total in self.decoder.counters.as_status().items():
                counters[key] = total  # a total: Counter.update would add it
        self.rt.beat()

    def close(self) -> None:
        self.features(self.engine.finish())
        self.streams.close()
        self.rt.counters["segments"] = self.streams.segments_sealed


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
    # a bad path is a usage error before anything starts
    replay = replay_path(cfg, layout.root) if cfg.source.kind is SourceKind.REPLAY else None
    rt = StageRuntime("harvest", cfg, layout, first_stage=True)
    out = HarvestOutput(cfg, layout, rt)
    try:
        if cfg.source.kind is SourceKind.SIM:
            run_sim(cfg, rt, out)
        elif cfg.source.kind is SourceKind.BINANCE:
            run_live(cfg, layout, rt, out)
        else:
            assert replay is not None
            run_replay(cfg, rt, out, replay)
    finally:
        out.close()
        rt.stopped()
    return 0
