"""The batch path and the JSONL sink against their floors, measured side by side.

* ``python -m v13.features --raw`` over one simulated hour of raw segments, against an orjson
  read of the same lines in one process (the floor any reader pays): with its default ``--jobs``
  (one worker per CPU) and with ``--jobs 1``, each as wall time and as CPU time (every process);
* the JSONL signal sink (queue, writer thread, segments), against encoding the same rows and
  writing the lines to one file.

    python benchmarks/bench_batch.py --minutes 60 --symbols BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


def features(minutes: float, symbols: str, base: Path, repeat: int) -> None:
    data = base / "data"
    subprocess.run([sys.executable, "-m", "v13.sim", "--symbols", symbols, "--minutes", f"{minutes:g}",
                    "--no-features", "--out", str(data)], check=True, capture_output=True)  # fmt: skip
    files = sorted((data / "raw").rglob("*.jsonl"))
    floor = float("inf")
    for _ in range(repeat):  # the best of each: the host's speed varies from run to run
        t0 = time.perf_counter()
        lines = 0
        for path in files:
            for line in path.read_bytes().splitlines():
                orjson.loads(line)
                lines += 1
        floor = min(floor, time.perf_counter() - t0)
    startup = min(_startup() for _ in range(repeat))
    print(f"v13.features --raw: {lines:,} raw rows (process start-up {startup:.2f} s)")
    print(f"  orjson read of the same lines (floor): {floor:.2f} s")
    for jobs in ([], ["--jobs", "1"]):
        wall = cpu = float("inf")
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "v13.features", "--raw", str(data), *jobs,
                                   "--out", str(base / "f.jsonl"), "--deadletter", str(base / "dl")],
                                  check=True, capture_output=True, text=True)  # fmt: skip
            wall = min(wall, time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = min(cpu, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        used = proc.stderr.rsplit("jobs=", 1)[1].split(",")[0]
        print(f"  jobs={used}: {wall:.2f} s wall, {cpu:.2f} s CPU; ratio (wall - start-up) / floor: "
              f"{(wall - startup) / floor:.2f}x, (CPU - start-up) / floor: "
              f"{(cpu - startup) / floor:.2f}x")  # fmt: skip


def _startup() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import v13.features.__main__"], check=True)
    return time.perf_counter() - t0


def sink(rows: int, base: Path) -> None:
    from v13.config import load_config
    from v13.contracts import SignalRow, encode_row
    from v13.layout import Layout
    from v13.sinks import open_sink
    from v13.stages.signal import BATCH_ROWS

    cfg = load_config(environ={}, overrides={"signal.queue_max": rows + 1})
    layout = Layout.from_config(cfg, base / "sink")
    fields = {"run_id": "bench", "score": 0.7, "z_ofi": 1.0, "z_cvd": 0.25, "regime": "quiet",
              "div_type": None, "confirm": True, "gating": False, "signal_type": "buy", "guard_reason": None,
              "mid": 100.05, "best_bid": 100.0, "best_ask": 100.1, "spread_bps": 10.0,
              "emit_ts_ms": 1_764_300_000_003}  # fmt: skip
    t_ms = 1_764_300_000_000
    sample = [SignalRow(ts_ms=t_ms + (i // 6) * 1000, symbol=f"SYM{i % 6}", **fields)  # type: ignore[arg-type]
              for i in range(rows)]  # fmt: skip
    t0 = time.perf_counter()
    with open(base / "plain.jsonl", "wb") as fh:
        fh.write(b"".join(encode_row(r) + b"\n" for r in sample))
    floor = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = open_sink(cfg, layout, "bench")
    for i in range(0, rows, BATCH_ROWS):  # as the signal stage does: a poll's rows at once
        s.put_many(sample[i : i + BATCH_ROWS])
    s.close()
    full = time.perf_counter() - t0
    print(f"JSONL sink: {rows:,} rows in {full:.3f} s = {rows / full:,.0f} rows/s")
    print(f"  encode + write of the same lines (floor): {floor:.3f} s = {rows / floor:,.0f} rows/s")
    print(f"  ratio sink / floor: {full / floor:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT")
    parser.add_argument("--sink-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each kind; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        features(args.minutes, args.symbols, Path(tmp), args.repeat)
        sink(args.sink_rows, Path(tmp))


if __name__ == "__main__":
    main()
