"""The simulator's cost per step, and the harvest's own parts in-process, at N symbols.

    python benchmarks/bench_sim.py                       # steps at 1, 6 and 1,000 symbols
    python benchmarks/bench_sim.py --harvest 1000        # plus one second of market at 1,000

* ``SimMarket.step`` alone: the best of 5 loops (2,000 steps at 1 symbol, 1,000 at 6, 20 at 1,000).
* ``--harvest N``: the simulator, the feature engine and the segment streams on real files, a
  clock stepped 100 ms a step without waiting, 320 steps with the first 20 left out, the garbage
  collector set as the stages set it: the cost of one second of market in seconds of a core, and
  the simulator's share of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from v13.cli import gc_policy
from v13.config import load_config
from v13.features import FeatureEngine
from v13.sources.sim import SimMarket
from v13.streams import StreamSet

START_MS = 1_735_689_600_000


def names(n: int) -> list[str]:
    return ["BTCUSDT"] if n == 1 else [f"S{i:04d}USDT" for i in range(n)]


def step_cost(n: int, steps: int, repeat: int = 5) -> float:
    market = SimMarket(names(n), start_ms=START_MS)
    market.step()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            market.step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def harvest_cost(n: int, steps: int = 320, skip: int = 20) -> tuple[float, float]:
    cfg = load_config(environ={})
    market = SimMarket(names(n), start_ms=START_MS)
    clock = [0.0]
    engine = FeatureEngine(cfg.features)
    sim_s = total_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        streams = StreamSet(Path(tmp), "bench", cfg.segments, clock=lambda: clock[0])
        for i in range(steps):
            start = time.perf_counter()
            streams.tick()
            stepped = time.perf_counter()
            rows = market.step(recv_now_ms=market.next_ms + market.dt_ms)
            simulated = time.perf_counter()
            for row in rows:
                for feature in engine.on_row(row):
                    streams.write(feature)
                streams.write(row)
            if i >= skip:
                sim_s += simulated - stepped
                total_s += time.perf_counter() - start
            clock[0] += market.dt_ms / 1000
        streams.close()
    return total_s / ((steps - skip) * market.dt_ms / 1000), sim_s / total_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--harvest", type=int, default=0, help="also run the harvest's parts at N symbols")
    args = parser.parse_args()
    gc_policy()  # as v13.cli.run_main sets it in every stage
    for n, steps in ((1, 2_000), (6, 1_000), (1_000, 20)):
        cost = step_cost(n, steps)
        each = f"{cost * 1e6:9.1f} µs a step, {cost / n * 1e6:6.1f} µs a symbol"
        print(f"SimMarket.step, {n:>5} symbols: {each}")
    if args.harvest:
        per_second, sim_share = harvest_cost(args.harvest)
        print(f"harvest parts, {args.harvest} symbols: one second of market costs {per_second:.3f} s "
              f"of a core, the simulator {sim_share:.0%} of it")  # fmt: skip


if __name__ == "__main__":
    main()
