"""Recompute feature rows from raw trade and book segments.

Example::

    python -m v13.features --raw data --out features.jsonl

``--raw`` is a data directory (holding ``raw/``) or a raw root (holding ``<YYYYMMDD>/``).
Rows that break their contract go to the deadletter (``--deadletter``) and the run goes on.
Output rows are ordered by (ts_ms, symbol).
"""

from __future__ import annotations

import argparse
import heapq
from collections.abc import Iterator
from pathlib import Path

from v13.cli import run_main
from v13.config import load_config
from v13.contracts import FeatureRow, encode_row
from v13.deadletter import Deadletter
from v13.errors import UsageError
from v13.features.engine import FeatureEngine
from v13.progress import Progress
from v13.sources.replay import raw_roots, raw_symbols, symbol_rows


def symbol_features(
    engine: FeatureEngine, spool: Path, ready: Path, symbol: str, deadletter: Deadletter
) -> Iterator[FeatureRow]:
    """Features of one symbol: its trades and books merged in event-time order."""
    for row in symbol_rows(spool, ready, symbol, deadletter):
        yield from engine.on_row(row)
    yield from engine.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m v13.features",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None, help="config file (default: config/defaults.yaml)")
    parser.add_argument("--raw", type=Path, required=True, help="data directory or raw root")
    parser.add_argument("--out", type=Path, required=True, help="feature rows, JSONL")
    parser.add_argument("--deadletter", type=Path, default=Path("artifacts/deadletter"))
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    spool, ready = raw_roots(args.raw)
    symbols = raw_symbols(spool, ready)
    if not symbols:
        raise UsageError(f"--raw {args.raw} holds no raw segments (<YYYYMMDD>/<SYMBOL>/trades/*.jsonl)")
    deadletter = Deadletter(args.deadletter / "features", "features", "batch")
    per_symbol = [symbol_features(FeatureEngine(cfg.features), spool, ready, s, deadletter) for s in symbols]
    progress = Progress("v13.features", unit="rows")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(args.out, "wb") as out:
        for row in heapq.merge(*per_symbol, key=lambda r: (r.ts_ms, r.symbol)):
            out.write(encode_row(row) + b"\n")
            count += 1
            progress.update(count)
    progress.done(count, symbols=len(symbols), deadletter=deadletter.count)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("python -m v13.features", main))
