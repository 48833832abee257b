"""Simulate N minutes of market data as fast as possible and write raw and feature segments.

Example::

    python -m v13.sim --symbols BTCUSDT,ETHUSDT --minutes 60 --preset weak --seed 7 --out data

writes ``data/raw/<YYYYMMDD>/<SYMBOL>/{trades,book}/*.jsonl`` and
``data/preview/<YYYYMMDD>/<SYMBOL>/features/*.jsonl`` (the features computed in-process, as the
harvest stage does). Segments rotate on event time, so the same arguments give byte-identical
files. ``--out`` must be new or empty.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from v13.cli import run_main
from v13.config import Preset, load_config
from v13.errors import UsageError
from v13.features import FeatureEngine
from v13.progress import Progress
from v13.sources.sim import SimMarket
from v13.streams import StreamSet

DEFAULT_START = "2025-01-01T00:00:00Z"


class EventClock:
    """Seconds of event time: rotation follows the data, not the wall clock."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000


def parse_symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise UsageError("--symbols needs at least one symbol, e.g. BTCUSDT,ETHUSDT")
    return symbols


def parse_start(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--start {text!r} is not an ISO time such as {DEFAULT_START}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m v13.sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=None, help="config file (default: config/defaults.yaml)")
    parser.add_argument("--symbols", default=None, help="comma-separated (default: the config's)")
    parser.add_argument("--minutes", type=float, default=5.0, help="simulated minutes (default 5)")
    parser.add_argument(
        "--preset",
        choices=[p.value for p in Preset],
        default=None,
        help="null | weak | strong (default: the config's)",
    )
    parser.add_argument("--seed", type=int, default=None, help="(default: the config's)")
    parser.add_argument("--start", default=DEFAULT_START, help=f"first event time (default {DEFAULT_START})")
    parser.add_argument("--out", type=Path, required=True, help="data directory to write into")
    parser.add_argument("--no-features", action="store_true", help="write raw segments only")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.minutes <= 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes}")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise UsageError(
            f"--out {args.out} is not an empty directory; the segments of another run would mix with "
            f"these: give a new directory, or delete this one first"
        )
    symbols = parse_symbols(args.symbols) if args.symbols else list(cfg.symbols)
    sim_cfg = cfg.source.sim
    preset = args.preset or sim_cfg.preset.value
    seed = sim_cfg.seed if args.seed is None else args.seed
    start_ms = parse_start(args.start)
    market = SimMarket(
        symbols,
        preset=preset,
        seed=seed,
        start_ms=start_ms,
        levels=sim_cfg.book_levels,
        dt_ms=sim_cfg.step_ms,
    )
    clock = EventClock()
    streams = StreamSet(args.out, f"sim{seed}", cfg.segments, clock=clock)
    engine = None if args.no_features else FeatureEngine(cfg.features)
    steps = int(args.minutes * 60_000 / sim_cfg.step_ms)
    progress = Progress("v13.sim", total=steps, unit="steps")
    for i in range(steps):
        clock.ms = market.next_ms
        streams.tick()  # rotations on the simulated clock
        for row in market.step():
            if engine is not None:
                for feature in engine.on_row(row):
                    streams.write(feature)
            streams.write(row)
        progress.update(i + 1, **streams.rows)
    if engine is not None:
        for feature in engine.finish():
            streams.write(feature)
    streams.close()
    progress.done(steps, **streams.rows, segments=streams.segments_sealed)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("python -m v13.sim", main))
