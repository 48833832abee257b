"""Rejected input rows: <stage dir>/<YYYYMMDD>.jsonl (``Layout.deadletter_stage_dir``), one JSON
object a line.

Each entry holds the reason, the source (stream and position) and the raw line, so a bad row can
be found and replayed. Writers carry on after a rejection; the count goes to the status file.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from v13.fsutil import now_ms, utc_day

__all__ = ["Deadletter"]


class Deadletter:
    """Appends rejected rows of one stage; ``count`` is what this instance wrote."""

    def __init__(self, directory: Path, stage: str, run_id: str) -> None:
        self.dir = Path(directory)
        self.stage = stage
        self.run_id = run_id
        self.count = 0

    def write(self, reason: str, source: str, line: bytes | str, position: object = None) -> None:
        ts = now_ms()
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        entry = {
            "ts_ms": ts,
            "run_id": self.run_id,
            "stage": self.stage,
            "reason": reason,
            "source": source,
            "position": position,
            "line": text[:10_000],
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"{utc_day(ts)}.jsonl", "ab") as fh:
            fh.write(orjson.dumps(entry, default=str) + b"\n")
        self.count += 1
