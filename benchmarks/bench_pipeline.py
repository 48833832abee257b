"""The whole stack on the simulator at N symbols: CPU per stage, open files, feature rows per
second per symbol, latency from an interval's end to its rows being visible, dropped rows, RSS.

    python benchmarks/bench_pipeline.py --symbols 6,100,500,1000 --minutes 2
    python benchmarks/bench_pipeline.py --symbols 6 --minutes 60 --rss   # memory over time

For each N it runs ``python -m orchestrator.run`` (JSONL sink) in a fresh root and samples every
stage's process tree every second (CPU, RSS, open files). A reader process follows the feature
and signal segments of up to 20 symbols, polling every 5 ms, and records for each row the wall
time it became readable minus the end of its interval (``ts_ms``): *feature visible* and *signal
visible*. The first minute is warm-up (z-score windows, start-up) and is left out of the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

STAGES = {"mcp.harvest_server.app": "harvest", "mcp.signal_server.app": "signal",
          "mcp.broker_gateway_server.app": "broker", "mcp.report_server.app": "report"}  # fmt: skip
KNOWN = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
WARMUP_S = 60.0
READER_SYMBOLS = 20


def symbols(n: int) -> list[str]:
    return (KNOWN + [f"SYM{i:04d}USDT" for i in range(n)])[:n]


def stage_of(proc: psutil.Process) -> str | None:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return None
    return next((STAGES[a] for a in cmd if a in STAGES), None)


def reader(root: Path, watch: list[str], out: Path, seconds: float) -> None:
    """Follow the feature and signal segments of ``watch``; write (kind, lag ms, wall s) lines."""
    from v13.layout import DataLayout
    from v13.segments import SegmentFollower

    data = DataLayout(root / "data")
    followers = {}
    for sym in watch:
        followers[("feature", sym)] = SegmentFollower(
            data.preview_spool, data.preview_ready, f"{sym}/features"
        )
        followers[("signal", sym)] = SegmentFollower(
            root / "runtime/spool/signal", root / "runtime/ready/signal", sym
        )
    end = time.time() + seconds
    with open(out, "wb") as fh:
        while time.time() < end:
            for (kind, _sym), follower in followers.items():
                for line, _pos in follower.read(1000):
                    now = time.time()
                    row = orjson.loads(line)
                    fh.write(b"%s %s %d %.3f\n" % (kind.encode(), row["symbol"].encode(), row["ts_ms"], now))
            fh.flush()
            time.sleep(0.005)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(n: int, minutes: float, sink: str, keep: Path | None, rss_series: bool) -> dict[str, object]:
    """One run at ``n`` symbols; its root (about 0.8 GB at 1,000 symbols for 2 minutes) is removed
    afterwards unless ``keep`` names where to put it."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"bench-{n}-", dir=keep))
    try:
        return measure(root, n, minutes, sink, rss_series)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def measure(root: Path, n: int, minutes: float, sink: str, rss_series: bool) -> dict[str, object]:
    syms = symbols(n)
    argv = [sys.executable, "-m", "orchestrator.run", "--minutes", f"{minutes:g}", "--sink", sink,
            "--symbols", ",".join(syms), "--root", str(root)]  # fmt: skip
    orch = subprocess.Popen(argv, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lags = root / "reader.txt"
    read = subprocess.Popen([sys.executable, __file__, "--reader", str(root), "--watch",
                             ",".join(syms[:READER_SYMBOLS]), "--out", str(lags),
                             "--seconds", str(minutes * 60 + 5)])  # fmt: skip
    started = time.time()
    cpu: dict[str, list[tuple[float, float]]] = {}  # stage -> (wall, cpu seconds)
    files: dict[str, int] = {}
    rss: dict[str, list[tuple[float, float]]] = {}
    seen: dict[int, psutil.Process] = {}
    while orch.poll() is None:
        now = time.time()
        try:
            leaders = psutil.Process(orch.pid).children()
        except psutil.Error:
            break
        totals: dict[str, tuple[float, int, int]] = {}
        for leader in leaders:
            name = stage_of(leader)
            if name is None:
                continue
            seen.setdefault(leader.pid, leader)
            try:
                tree = [leader, *leader.children(recursive=True)]
                t = sum(sum(p.cpu_times()[:2]) for p in tree)
                fds = sum(p.num_fds() for p in tree)
                mem = sum(p.memory_info().rss for p in tree)
            except psutil.Error:
                continue
            totals[name] = (t, fds, mem)
        for name, (t, fds, mem) in totals.items():
            cpu.setdefault(name, []).append((now - started, t))
            files[name] = max(files.get(name, 0), fds)
            rss.setdefault(name, []).append((now - started, mem / 2**20))
        time.sleep(1.0)
    read.wait(30)
    result: dict[str, object] = {"symbols": n}
    if rss_series:
        (root / "rss_mb.json").write_bytes(orjson.dumps(rss))
    for name, series in sorted(cpu.items()):
        steady = [(w, c) for w, c in series if w >= WARMUP_S] or series
        (w0, c0), (w1, c1) = steady[0], steady[-1]
        result[f"cpu_{name}"] = 100 * (c1 - c0) / (w1 - w0) if w1 > w0 else float("nan")
        result[f"files_{name}"] = files[name]
        result[f"rss_{name}"] = max(m for _, m in rss[name])
        if rss_series:
            late = [(w, m) for w, m in rss[name] if w >= 300]
            if len(late) > 2:
                slope = statistics.linear_regression([w for w, _ in late], [m for _, m in late]).slope
                result[f"rss_slope_{name}_mb_per_h"] = slope * 3600
                result[f"rss_growth_{name}_after_5min_mb"] = late[-1][1] - late[0][1]
    feats = [
        orjson.loads(x) for p in (root / "data/preview").rglob("*.jsonl") for x in p.read_bytes().splitlines()
    ]
    span = (max(f["ts_ms"] for f in feats) - min(f["ts_ms"] for f in feats)) / 1000 if feats else 0
    result["feature_rows_per_s_per_symbol"] = len(feats) / max(1.0, span) / n
    lines = [x.split() for x in lags.read_bytes().splitlines()] if lags.exists() else []
    seen_at = {
        (k, sym, int(ts)): float(wall) for k, sym, ts, wall in lines if float(wall) - started >= WARMUP_S
    }
    for kind in (b"feature", b"signal"):
        vals = [wall * 1000 - ts for (k, _sym, ts), wall in seen_at.items() if k == kind]
        result[f"{kind.decode()}_visible_p50_ms"] = percentile(vals, 0.5)
        result[f"{kind.decode()}_visible_p99_ms"] = percentile(vals, 0.99)
    # the stages after the harvest: from a feature row being readable to its signal row being readable
    after = [(wall - seen_at[(b"feature", sym, ts)]) * 1000 for (k, sym, ts), wall in seen_at.items()
             if k == b"signal" and (b"feature", sym, ts) in seen_at]  # fmt: skip
    result["feature_to_signal_p50_ms"] = percentile(after, 0.5)
    result["feature_to_signal_p99_ms"] = percentile(after, 0.99)
    dropped = 0
    for path in (root / "runtime/health").glob("*.json"):
        dropped += orjson.loads(path.read_bytes())["counters"].get("dropped", 0)
    result["dropped"] = dropped
    manifest = next((root / "artifacts/run_logs").glob("*.json"))
    children = orjson.loads(manifest.read_bytes())["children"]
    result["ready_after_s"] = max(c["ready_ts_ms"][0] - c["start_ts_ms"][0] for c in children.values()) / 1000
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", default="6", help="comma-separated symbol counts, e.g. 6,100,500,1000")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--sink", default="jsonl")
    parser.add_argument("--keep", type=Path, default=None, help="put the run roots here (kept)")
    parser.add_argument("--rss", action="store_true", help="print the RSS slope after the first 5 minutes")
    parser.add_argument("--reader", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--watch", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader is not None:
        reader(args.reader, args.watch.split(","), args.out, args.seconds)
        return
    for n in (int(x) for x in args.symbols.split(",")):
        res = run(n, args.minutes, args.sink, args.keep, args.rss)
        where = f" (run roots kept in {args.keep})" if args.keep else ""
        print(f"N = {n} symbols, {args.minutes:g} min{where}:")
        for key, value in res.items():
            if key != "symbols":
                print(f"  {key:<40} {value:.2f}" if isinstance(value, float) else f"  {key:<40} {value}")
        sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
