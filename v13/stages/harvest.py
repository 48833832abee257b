"""harvest: market data -> raw trade/book segments and per-second feature segments.

The source is paced to the wall clock (the simulator by default); every row goes through the
feature engine, raw rows to ``data/raw``, feature rows to ``data/preview``; segments rotate on
``segments.rotate_seconds``. ``Server started`` is logged once the first segments are open.
"""

from __future__ import annotations

import argparse
import os

from v13.config import SourceKind
from v13.contracts import BookRow, TradeRow
from v13.errors import UsageError
from v13.features import FeatureEngine
from v13.fsutil import now_ms
from v13.sources.sim import SimMarket
from v13.stage import StageRuntime, resolve_run_id
from v13.stages.common import add_common_args, parse_symbols, stage_setup
from v13.streams import StreamSet

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp.harvest_server.app", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--symbols", default=None, help="comma-separated (default: the config's)")
    args = parser.parse_args(argv)
    overrides = {"symbols": parse_symbols(args.symbols)} if args.symbols else None
    cfg, layout = stage_setup(args, overrides)
    if cfg.source.kind is not SourceKind.SIM:
        raise UsageError(f"source.kind {cfg.source.kind.value!r} is not available in this build; use sim")
    run_id = resolve_run_id(layout, first_stage=True)
    rt = StageRuntime("harvest", cfg, layout, run_id)
    sim = cfg.source.sim
    dt = sim.step_ms
    start = now_ms()
    market = SimMarket(
        list(cfg.symbols),
        preset=sim.preset.value,
        seed=sim.seed,
        start_ms=start,
        levels=sim.book_levels,
        dt_ms=dt,
    )
    streams = StreamSet(
        layout.data_dir, f"{run_id}-{os.getpid()}", cfg.segments, write_raw=cfg.harvest.write_raw
    )
    engine = FeatureEngine(cfg.features)
    try:
        while not rt.stopping:
            step_end = market.next_ms + dt  # a step's rows exist once its interval is over
            if rt.wait((step_end - now_ms()) / 1000):
                break
            rows = market.step(recv_now_ms=now_ms())
            features = 0
            for row in rows:
                for feature in engine.on_row(row):
                    streams.write(feature)
                    features += 1
                streams.write(row)
            rt.count("in", len(rows))
            rt.count("trades", sum(isinstance(r, TradeRow) for r in rows))
            rt.count("books", sum(isinstance(r, BookRow) for r in rows))
            rt.count("out", features)
            if rows:
                rt.last_event_ts_ms = max(r.ts_ms for r in rows)
            streams.tick()
            if rt.state == "starting" and streams.writers:
                rt.started(symbols=",".join(cfg.symbols), source="sim", preset=sim.preset.value)
            rt.counters["segments"] = streams.segments_sealed
            rt.beat()
    finally:
        streams.close()
        rt.counters["segments"] = streams.segments_sealed
        rt.stopped()
    return 0
