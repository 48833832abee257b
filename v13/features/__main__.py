"""Recompute feature rows from raw trade and book segments.

Example::

    python -m v13.features --raw data --out features.jsonl

``--raw`` is a data directory (holding ``raw/``) or a raw root (holding ``<YYYYMMDD>/``).
Rows that break their contract go to the deadletter (``--deadletter``) and the run goes on.
Output rows are ordered by (ts_ms, symbol). Symbols are computed in ``--jobs`` worker processes
(default: one per CPU, at most one per symbol); the output is the same whatever ``--jobs``, and
``--out`` is written only once every symbol is done.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from v13.cli import check_output, run_main
from v13.config import load_config
from v13.errors import BatchFailure, UsageError
from v13.features.batch import default_jobs, recompute
from v13.sources.replay import raw_roots, raw_symbols

PROG = "python -m v13.features"


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of processes, at least 1 (got {text!r})")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None, help="config file (default: config/defaults.yaml)")
    parser.add_argument("--raw", type=Path, required=True, help="data directory or raw root")
    parser.add_argument("--out", type=Path, required=True, help="feature rows, JSONL")
    parser.add_argument("--deadletter", type=Path, default=Path("artifacts/deadletter"))
    parser.add_argument("--jobs", type=_jobs, default=None, help="worker processes (default: one per CPU)")
    args = parser.parse_args(argv)
    check_output(args.out)
    cfg = load_config(args.config)
    spool, ready = raw_roots(args.raw)
    symbols = raw_symbols(spool, ready)
    if not symbols:
        raise UsageError(f"--raw {args.raw} holds no raw segments (<YYYYMMDD>/<SYMBOL>/trades/*.jsonl)")
    jobs = min(args.jobs, len(symbols)) if args.jobs else default_jobs(len(symbols))
    try:
        recompute(cfg.features, spool, ready, symbols, args.out, args.deadletter / "features", jobs)
    except OSError as exc:  # a full disk, an --out it may not write
        raise BatchFailure(f"{exc}; no output was written") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(PROG, main))
