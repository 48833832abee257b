"""logs/orchestrator/orchestrator.log: one JSON object per line per lifecycle event
(Start, Ready, Health, Restart, Degraded, Exit, Stop, EarlyStop, Report, Run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from v13.fsutil import now_ms, utc_iso

__all__ = ["EventLog"]


class EventLog:
    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "ab")  # noqa: SIM115 - kept open for the run, closed by close()
        self.listeners: list[Any] = []

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        ts = now_ms()
        record = {"ts": utc_iso(ts), "ts_ms": ts, "run_id": self.run_id, "event": event, **fields}
        self._fh.write(orjson.dumps(record, default=str) + b"\n")
        self._fh.flush()
        for listener in self.listeners:
            listener(record)
        return record

    def close(self) -> None:
        self._fh.close()
