"""Run the V13 stack under supervision.

Examples:
  python -m orchestrator.run --config ./config/defaults.yaml \\
      --enable harvest,signal,broker,report --sink jsonl --minutes 30 --symbols BTCUSDT,ETHUSDT --debug
  python -m orchestrator.run --sink sqlite --minutes 0      # until Ctrl-C (twice: kill now)
  python -m orchestrator.run --enable ""                     # health self-check only

Exit codes: 0 completed (time up, or a finite source drained), 1 a stage ended degraded,
2 usage error (bad option, config or root; the root is in use by another run), 3 early stop
(rows dropped or JSONL rotation stalled), 129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM.
Files: logs/orchestrator/orchestrator.log, logs/<stage>/, artifacts/run_logs/run_manifest_*.json,
logs/report/summary_*.{json,md,png} (see docs/orchestrator_smoke.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.api import RunOptions, run_stack
from orchestrator.spec import MODULES
from v13.cli import run_main
from v13.config import DEFAULT_CONFIG_PATH
from v13.errors import UsageError

__all__ = ["main"]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, default=None, help=f"main config (default: {DEFAULT_CONFIG_PATH})"
    )
    parser.add_argument(
        "--enable",
        default=",".join(MODULES),
        help="comma-separated subset of harvest,signal,broker,report; empty = self-check only",
    )
    parser.add_argument("--sink", default=None, help="jsonl | sqlite, passed to the signal stage as V13_SINK")
    parser.add_argument(
        "--minutes", type=float, default=30.0,
        help="run time; 0 = until interrupted, or until a finite source is drained (default 30)",
    )  # fmt: skip
    parser.add_argument("--symbols", default=None, help="override the config's symbols, e.g. BTCUSDT,ETHUSDT")
    parser.add_argument("--root", type=Path, default=None, help="work root (default: current directory)")
    parser.add_argument("--debug", action="store_true", help="echo every orchestrator event to stdout")
    args = parser.parse_args(argv)
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config {args.config} does not exist; pass a copy of {DEFAULT_CONFIG_PATH}")
    symbols = _csv(args.symbols) if args.symbols is not None else None
    options = RunOptions(config=args.config, enable=_csv(args.enable), sink=args.sink, minutes=args.minutes,
                         symbols=symbols, debug=args.debug, root=args.root)  # fmt: skip
    return run_stack(options).exit_code


if __name__ == "__main__":
    raise SystemExit(run_main("python -m orchestrator.run", main))
