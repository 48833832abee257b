"""Turn feature rows into signal rows (one per feature row, neutral included).

Example::

    python -m v13.signals --features features.jsonl --out signals.jsonl

``emit_ts_ms`` is set to the feature's event time here (not the wall clock), so the same input
gives byte-identical output. Rows that break their contract go to the deadletter. ``--out`` is
replaced only once every row is written: a run that fails or is interrupted leaves it as it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from v13.cli import check_output, run_main
from v13.config import load_config
from v13.contracts import decode_row, encode_row
from v13.deadletter import Deadletter
from v13.errors import BatchFailure, ContractError, UsageError
from v13.fsutil import atomic_output
from v13.progress import Progress
from v13.signals.engine import SignalEngine


class _EventClock:
    ms = 0

    def __call__(self) -> int:
        return self.ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m v13.signals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None, help="config file (default: config/defaults.yaml)")
    parser.add_argument("--features", type=Path, required=True, help="feature rows, JSONL")
    parser.add_argument("--out", type=Path, required=True, help="signal rows, JSONL")
    parser.add_argument("--run-id", default="replay", help="run_id written on every row")
    parser.add_argument("--deadletter", type=Path, default=Path("artifacts/deadletter"))
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if not args.features.is_file():
        raise UsageError(f"--features {args.features} is not a file; write one with python -m v13.features")
    check_output(args.out, ("--features", args.features))
    clock = _EventClock()
    engine = SignalEngine(cfg, args.run_id, clock_ms=clock)
    deadletter = Deadletter(args.deadletter / "signals", "signals", args.run_id)
    progress = Progress("v13.signals", unit="rows")
    count = 0
    try:
        with open(args.features, "rb") as src, atomic_output(args.out) as out:
            for lineno, line in enumerate(src, 1):
                if not line.strip():
                    continue
                try:
                    feature = decode_row("feature", line)
                except ContractError as exc:
                    deadletter.write(str(exc), str(args.features), line.rstrip(b"\n"), lineno)
                    continue
                clock.ms = feature.ts_ms
                out.write(encode_row(engine.on_feature(feature)) + b"\n")
                count += 1
                progress.update(count)
    except OSError as exc:  # a full disk, an --out or a deadletter it may not write
        raise BatchFailure(f"{exc}; no output was written") from None
    progress.done(count, deadletter=deadletter.count)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("python -m v13.signals", main))
