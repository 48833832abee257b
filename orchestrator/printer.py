"""The one place that writes the orchestrator's user output to stdout.

On a terminal: a live status table redrawn each second. Without one: a single summary line per
health tick. Events go to the log file; with ``--debug`` they are echoed here too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from orchestrator.supervisor import ProcState, Supervisor

__all__ = ["Printer"]


class Printer:
    def __init__(
        self, stream: TextIO | None = None, *, debug: bool = False, live: bool | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.debug = debug
        self.live = self.stream.isatty() if live is None else live
        self._last_draw = 0.0
        self._drawn_lines = 0

    def line(self, text: str) -> None:
        self._clear()
        print(text, file=self.stream, flush=True)

    def event(self, record: dict[str, Any]) -> None:
        if self.debug or record["event"] in ("Restart", "Degraded", "EarlyStop", "ReadyTimeout"):
            fields = {k: v for k, v in record.items() if k not in ("ts_ms", "run_id", "event", "ts", "argv")}
            self.line(
                f"{record['ts']} {record['event']:<9} " + " ".join(f"{k}={v}" for k, v in fields.items())
            )

    def tick(self, sup: Supervisor, elapsed_s: float, total_s: float | None) -> None:
        """Called every loop; redraws the live view at most once a second."""
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last_draw < 1.0:
            return
        self._last_draw = now
        rows = [self._header(elapsed_s, total_s), _TABLE_HEAD] + [self._row(ps) for ps in sup.procs]
        self._clear()
        self.stream.write("\n".join(rows) + "\n")
        self.stream.flush()
        self._drawn_lines = len(rows)

    def health_line(self, sup: Supervisor, elapsed_s: float) -> None:
        """Without a terminal: one line per health tick."""
        if self.live:
            return
        parts = []
        for ps in sup.procs:
            status = ps.findings and ",".join(f.code for f in ps.findings)
            rss = (ps.last_metrics.rss_bytes if ps.last_metrics else 0) / 2**20
            parts.append(
                f"{ps.name}={ps.status.value}(r{ps.restarts},{rss:.0f}MB{',' + status if status else ''})"
            )
        self.line(f"[{_clock(elapsed_s)}] health " + " ".join(parts))

    def _clear(self) -> None:
        if self.live and self._drawn_lines:
            self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")
            self._drawn_lines = 0

    @staticmethod
    def _header(elapsed_s: float, total_s: float | None) -> str:
        of = f" / {_clock(total_s)}" if total_s else " (until Ctrl-C)"
        return f"V13 orchestrator  {_clock(elapsed_s)}{of}   Ctrl-C: stop (twice: kill)"

    @staticmethod
    def _row(ps: ProcState) -> str:
        m = ps.last_metrics
        pid = ps.child.pid if ps.child else "-"
        uptime = (
            _clock(time.monotonic() - ps.started_mono)
            if ps.child and ps.status.value in ("starting", "ready")
            else "-"
        )
        status = _read_status(getattr(ps.spec.health_probe, "status_file", None))
        counters = status.get("counters", {})
        beat = status.get("ts_ms")
        age = f"{time.time() - beat / 1000:.1f}s" if beat else "-"
        return (
            f"{ps.name:<8} {ps.status.value:<9} {pid!s:>7} {uptime:>8} {ps.restarts:>3} "
            f"{(m.rss_bytes if m else 0) / 2**20:>7.1f} {m.open_files if m else 0:>5} "
            f"{counters.get('in', 0):>9} {counters.get('out', 0):>9} {age:>7}"
        )


_TABLE_HEAD = (
    f"{'name':<8} {'state':<9} {'pid':>7} {'uptime':>8} {'rst':>3} {'RSS MB':>7} {'files':>5} "
    f"{'rows in':>9} {'rows out':>9} {'beat':>7}"
)


def _read_status(path: Path | None) -> dict[str, Any]:
    """The stage's status file as it is now (the view is redrawn each second)."""
    if path is None:
        return {}
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _clock(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"
