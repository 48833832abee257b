"""Decoding throughput of Binance depth5 frames: the project's decoder (msgspec typed structs,
numeric strings converted in the decoder, validated into contract book rows) against a plain
orjson.loads + float() conversion with no validation.

    python benchmarks/bench_decode.py --frames 200000
"""

from __future__ import annotations

import argparse
import time

import orjson

from v13.sources.binance import FrameDecoder


def depth_frames(n: int, levels: int = 5) -> list[bytes]:
    out = []
    for i in range(n):
        mid = 95000 + (i % 50) * 0.1
        bids = [[f"{mid - 0.05 - k * 0.1:.2f}", f"{0.1 + k * 0.37:.3f}"] for k in range(levels)]
        asks = [[f"{mid + 0.05 + k * 0.1:.2f}", f"{0.2 + k * 0.29:.3f}"] for k in range(levels)]
        ts = 1764300000000 + i * 100
        data = {"e": "depthUpdate", "E": ts, "T": ts - 2, "s": "BTCUSDT",
                "U": 1000 + i, "u": 1000 + i, "pu": 999 + i, "b": bids, "a": asks}  # fmt: skip
        out.append(orjson.dumps({"stream": "btcusdt@depth5@100ms", "data": data}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=200_000)
    args = parser.parse_args()
    frames = depth_frames(args.frames)

    t0 = time.perf_counter()
    for raw in frames:
        doc = orjson.loads(raw)["data"]
        [(float(p), float(q)) for p, q in doc["b"]]
        [(float(p), float(q)) for p, q in doc["a"]]
    baseline = time.perf_counter() - t0

    decoder = FrameDecoder()
    t0 = time.perf_counter()
    for raw in frames:
        for _row in decoder.decode(raw, 1764300000000):
            pass
    ours = time.perf_counter() - t0
    n = len(frames)
    print(f"depth5 frames: {n:,} ({sum(map(len, frames)) / n:.0f} bytes each)")
    passes = (("orjson + float(), no validation", baseline), ("FrameDecoder -> validated BookRow", ours))
    for label, seconds in passes:
        print(f"{label:<36} {n / seconds:>10,.0f} msg/s  {seconds / n * 1e6:5.2f} µs/msg")


if __name__ == "__main__":
    main()
