"""What 00:00 UTC costs the loops that write rows, at N symbols: every stream opens a segment in
the new day's partition at once.

* The harvest's own parts in-process (the simulator, the feature engine, the segment streams on
  real files, a clock stepped 100 ms a step, no waiting) from 70 s before midnight to 1.5 s after:
  the time of the steps around midnight against an ordinary step (the median of the steps more
  than a second away from midnight); and, for 20 symbols, how long after its writing the new
  day's first feature row is readable by a follower (which moves on to the new day's segment
  only once the old one is sealed), polled after every step.
* The JSONL signal sink: one batch of a row per symbol each second, flushed; the batch at
  midnight against an ordinary one.

    python benchmarks/bench_midnight.py --symbols 1000 --dir /tmp

``--dir`` picks the disk: creating files costs very different amounts on tmpfs and on ext4.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from v13.config import load_config
from v13.contracts import FeatureRow, SignalRow
from v13.features import FeatureEngine
from v13.segments import SegmentFollower
from v13.sinks.jsonl import JsonlBackend
from v13.sources.sim import SimMarket
from v13.streams import StreamSet

MIDNIGHT = 1_735_776_000_000  # 2025-01-02 00:00 UTC
BEFORE_MS = 70_000  # the streams exist well before midnight, as in a real run


def harvest(symbols: list[str], where: Path) -> None:
    cfg = load_config(environ={})
    market = SimMarket(symbols, seed=7, start_ms=MIDNIGHT - BEFORE_MS)
    engine = FeatureEngine(cfg.features)
    fake = [0.0]
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        streams = StreamSet(Path(tmp), "run1-1", cfg.segments, clock=lambda: fake[0])
        data = streams.data
        sample = symbols[:: max(1, len(symbols) // 20)]
        followers = {
            s: SegmentFollower(data.preview_spool, data.preview_ready, data.feature_tail(s)) for s in sample
        }
        written: dict[str, float] = {}  # the wall time each new day's first feature row was written
        readable: dict[str, float] = {}

        def write_feature(feature: FeatureRow) -> None:
            streams.write(feature)
            if feature.ts_ms >= MIDNIGHT and feature.symbol not in written:
                written[feature.symbol] = time.perf_counter()

        def poll() -> None:
            for symbol, follower in followers.items():
                rows = follower.read(10_000)
                if symbol not in readable and any(orjson.loads(r)["ts_ms"] >= MIDNIGHT for r, _ in rows):
                    readable[symbol] = time.perf_counter()

        steps: dict[int, float] = {}
        while market.next_ms < MIDNIGHT + 1_500:
            t0 = market.next_ms
            start = time.perf_counter()
            if t0 == MIDNIGHT:
                midnight_start = start
            for row in market.step():
                if closed := engine.on_row(row):
                    for feature in closed:
                        write_feature(feature)
                streams.write(row)
            for feature in engine.advance(t0 + market.dt_ms):
                write_feature(feature)
            streams.tick()
            steps[t0 - MIDNIGHT] = time.perf_counter() - start
            fake[0] += market.dt_ms / 1000
            poll()
        deadline = time.perf_counter() + 30
        while len(readable) < len(sample) and time.perf_counter() < deadline:
            poll()
            time.sleep(0.01)
        streams.close()
    ordinary = statistics.median(s for t, s in steps.items() if abs(t) > 1_000 and t > -BEFORE_MS + 5_000)
    around = [t for t in steps if -200 <= t <= 500]
    print(f"harvest, {len(symbols)} symbols: ordinary step {ordinary * 1000:.0f} ms")
    for t in around:
        print(f"  step at {t:+5d} ms: {steps[t] * 1000:6.0f} ms  ({steps[t] / ordinary:4.1f}x)")
    excess = sum(steps[t] - ordinary for t in around)
    print(f"  midnight costs {excess * 1000:.0f} ms over ordinary steps (steps -200..+500 ms)")
    delays = sorted(readable[s] - written[s] for s in readable)
    since = sorted(readable[s] - midnight_start for s in readable)
    print(f"  the new day's first feature row readable ({len(delays)} of {len(sample)} symbols) "
          f"p50 {statistics.median(delays) * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms after it was "
          f"written; p50 {statistics.median(since) * 1000:.0f} ms, max {since[-1] * 1000:.0f} ms after "
          "the midnight step began, when the row's interval ends")  # fmt: skip


def sink(symbols: list[str], where: Path) -> None:
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        backend = JsonlBackend(Path(tmp) / "spool", Path(tmp) / "ready", "run1")
        backend.open()
        batches: dict[int, float] = {}
        for second in range(-BEFORE_MS // 1000, 3):
            ts = MIDNIGHT + second * 1000
            rows = [signal(s, ts) for s in symbols]
            start = time.perf_counter()
            backend.write_batch(rows)
            backend.flush()
            backend.tick()
            batches[second] = time.perf_counter() - start
            time.sleep(0.05)  # the sink's thread gets a moment between batches, as in a run
        backend.close()
    ordinary = statistics.median(v for k, v in batches.items() if -55 < k < -2)
    print(f"JSONL sink, {len(symbols)} symbols: ordinary batch {ordinary * 1000:.1f} ms, "
          f"the batch at midnight {batches[0] * 1000:.0f} ms ({batches[0] / ordinary:.1f}x)")  # fmt: skip


def signal(symbol: str, ts: int) -> SignalRow:
    return SignalRow(run_id="run1", ts_ms=ts, symbol=symbol, score=0.5, z_ofi=1.0, z_cvd=0.2,
                     regime="quiet", div_type=None, confirm=True, gating=False, signal_type="buy",
                     guard_reason=None, mid=100.0, best_bid=99.95, best_ask=100.05, spread_bps=10.0,
                     emit_ts_ms=ts + 3)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the files go")
    args = parser.parse_args()
    symbols = [f"SYM{i:04d}USDT" for i in range(args.symbols)]
    harvest(symbols, args.dir)
    sink(symbols, args.dir)


if __name__ == "__main__":
    main()
