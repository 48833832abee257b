"""What following streams costs as their segments pile up over a run.

Builds N stream directories holding M sealed segments each (a day of one-minute rotations is
1,440) in yesterday's partition and in today's, plus an open segment per stream, then times, best
of 5: a reader's look for new streams (what it does every few seconds) and a follower's search for
its next segment (what it does at each rotation). Both should stay flat as M grows.

    python benchmarks/bench_follow.py --streams 400 --segments 2,120,1440
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from v13.segments import PART, SEALED, Position, SegmentFollower, discover_tails

DAYS = ("20261130", "20261201")
T0 = 1_764_460_800_000


def build(root: Path, streams: int, segments: int) -> list[str]:
    tails = [f"S{i:04d}USDT" for i in range(streams)]
    for tail in tails:
        for day in DAYS:
            d = root / "ready" / day / tail
            d.mkdir(parents=True)
            for k in range(segments):
                (d / f"{T0 + k * 60_000}-run1-{k:05d}{SEALED}").touch()
        spool = root / "spool" / DAYS[-1] / tail
        spool.mkdir(parents=True)
        (spool / f"{T0 + segments * 60_000}-run1-{segments:05d}{PART}").touch()
    return tails


def best_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


def measure(root: Path, streams: int, segments: int) -> tuple[float, float]:
    """(look for new streams, step to the next segment), ms."""
    tails = build(root, streams, segments)
    spool, ready = root / "spool", root / "ready"
    look = best_ms(lambda: discover_tails(spool, ready, known=tails))
    follower = SegmentFollower(spool, ready, tails[0], stem_filter="run1")
    at_end = Position(DAYS[-1], f"{T0 + (segments - 1) * 60_000}-run1-{segments - 1:05d}", 0)

    def step() -> None:
        follower.position = at_end  # the end of the last sealed segment: the next is the open one
        follower.read_chunks()
        assert follower.position is not None and follower.position.stem.endswith(f"{segments:05d}")

    return look, best_ms(step)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--segments", default="2,120,1440", help="sealed segments per stream and day")
    args = parser.parse_args()
    for segments in (int(x) for x in args.segments.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            look, step = measure(Path(tmp), args.streams, segments)
        print(f"{args.streams} streams x {segments:>5} segments a day, 2 days: "
              f"look for new streams {look:6.2f} ms, next segment {step:5.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
