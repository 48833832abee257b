"""Readiness and health probes, declared per child (never slept for).

A ready probe answers "is it up?" (log keyword, file glob with a minimum size, writable
directories, a readable SQLite table); it never waits for data from upstream, whose flow the health
probes watch; a health probe returns findings, each with the action it calls for:

* ``restart`` — the child is unhealthy (stale heartbeat, no output cadence, its status says
  ``failed``);
* ``stop_run`` — the run must end early (rows dropped, JSONL rotation stalled; card section 8);
* ``warn`` — recorded and reported (deadletter not empty, no broker throughput).

Cadence and throughput are expected only while the source is live: a finite source that is used
up writes nothing more, and that is not a fault.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

import orjson

from orchestrator.process import Child
from v13.layout import Glob

__all__ = [
    "Action",
    "AllOf",
    "FileGlob",
    "Finding",
    "HealthProbe",
    "LogKeyword",
    "ReadyProbe",
    "SqliteTable",
    "StageHealth",
    "WritableDirs",
]


class ReadyProbe(Protocol):
    def ready(self, child: Child) -> bool: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class LogKeyword:
    """Ready once the child wrote ``keyword`` to stderr or stdout since this start."""

    keyword: str = "Server started"

    def ready(self, child: Child) -> bool:
        if self.keyword in child.stderr_text():
            return True
        try:
            return self.keyword in child.stdout_path.read_text(errors="replace")
        except OSError:
            return False

    def describe(self) -> str:
        return f"log line {self.keyword!r}"


@dataclass(frozen=True)
class FileGlob:
    """Ready once a file matching one of ``globs`` has at least ``min_size`` bytes."""

    globs: tuple[Glob, ...]
    min_size: int = 1

    def ready(self, child: Child) -> bool:
        for glob in self.globs:
            for path in glob.root.glob(glob.pattern):
                try:
                    if path.stat().st_size >= self.min_size:
                        return True
                except FileNotFoundError:
                    continue
        return False

    def describe(self) -> str:
        where = " or ".join(str(g) for g in self.globs)
        return f"a file {where} of at least {self.min_size} bytes"


@dataclass(frozen=True)
class WritableDirs:
    """Ready once every one of ``dirs`` exists and this user may write in it."""

    dirs: tuple[Path, ...]

    def ready(self, child: Child) -> bool:
        return all(d.is_dir() and os.access(d, os.W_OK | os.X_OK) for d in self.dirs)

    def describe(self) -> str:
        return "writable directories " + ", ".join(str(d) for d in self.dirs)


@dataclass(frozen=True)
class SqliteTable:
    """Ready once ``table`` of ``db`` can be read."""

    db: Path
    table: str = "signals"

    def ready(self, child: Child) -> bool:
        if not self.db.exists():
            return False
        try:
            with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1.0)) as conn:
                conn.execute(f"SELECT 1 FROM {self.table} LIMIT 1").fetchall()
                return True
        except sqlite3.Error:
            return False

    def describe(self) -> str:
        return f"table {self.table} of {self.db} readable"


@dataclass(frozen=True)
class AllOf:
    probes: tuple[ReadyProbe, ...]

    def ready(self, child: Child) -> bool:
        return all(p.ready(child) for p in self.probes)

    def describe(self) -> str:
        return " and ".join(p.describe() for p in self.probes)


class Action(Enum):
    RESTART = "restart"
    STOP_RUN = "stop_run"
    WARN = "warn"


@dataclass(frozen=True)
class Finding:
    action: Action
    code: str
    detail: str


class HealthProbe(Protocol):
    def check(self, child: Child, uptime_s: float, *, source_live: bool = True) -> list[Finding]: ...


def _newest_mtime(glob: Glob) -> float | None:
    newest = None
    for path in glob.root.glob(glob.pattern):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return newest


@dataclass
class StageHealth:
    """The health of one stage from its status file, plus optional extra checks.

    ``cadence``: (glob, action) — a file must have been sealed there within
    ``cadence_window_s`` once the stage has been up for longer than that (while the source is
    live).
    """

    status_file: Path
    run_id: str
    heartbeat_max_age_s: float
    cadence: list[tuple[Glob, Action]] = field(default_factory=list)
    cadence_window_s: float = 60.0
    deadletter: Glob | None = None
    throughput_counter: str | None = None
    fresh_file: tuple[Glob, float] | None = None
    clock: Callable[[], float] = time.time
    _counter_seen: tuple[float, int] | None = None
    last_status: dict[str, object] | None = None

    def check(self, child: Child, uptime_s: float, *, source_live: bool = True) -> list[Finding]:
        out: list[Finding] = []
        now = self.clock()
        try:
            status = orjson.loads(self.status_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            status = None
        self.last_status = status
        if status is None or status.get("run_id") != self.run_id:
            if uptime_s > self.heartbeat_max_age_s:
                out.append(
                    Finding(Action.RESTART, "NO_STATUS", f"no status file of this run at {self.status_file}")
                )
            return out
        if status.get("state") == "failed":
            out.append(Finding(Action.RESTART, "FAILED", str(status.get("error"))))
        age = now - status["ts_ms"] / 1000
        if age > self.heartbeat_max_age_s:
            out.append(Finding(Action.RESTART, "HEARTBEAT_STALE", f"last heartbeat {age:.1f} s ago"))
        dropped = int(status.get("counters", {}).get("dropped", 0))
        if dropped:
            out.append(Finding(Action.STOP_RUN, "DROPPED", f"{dropped} rows dropped"))
        if source_live and uptime_s > self.cadence_window_s + 15:
            for glob, action in self.cadence:
                newest = _newest_mtime(glob)
                if newest is None or now - newest > self.cadence_window_s:
                    code = "ROTATION_STALLED" if action is Action.STOP_RUN else "NO_CADENCE"
                    out.append(Finding(action, code, f"no new {glob} in {self.cadence_window_s:.0f} s"))
            if self.throughput_counter:
                value = int(status.get("counters", {}).get(self.throughput_counter, 0))
                seen = self._counter_seen
                if seen is None or now - seen[0] >= self.cadence_window_s:
                    if seen is not None and value <= seen[1]:
                        out.append(
                            Finding(Action.WARN, "NO_THROUGHPUT", f"{self.throughput_counter} did not grow")
                        )
                    self._counter_seen = (now, value)
        if self.fresh_file is not None and uptime_s > self.fresh_file[1]:
            glob, max_age = self.fresh_file
            newest = _newest_mtime(glob)
            if newest is None or now - newest > max_age:
                out.append(Finding(Action.WARN, "STALE_REPORT", f"{glob} older than {max_age:.0f} s"))
        if self.deadletter is not None and self.deadletter.paths():
            out.append(Finding(Action.WARN, "DEADLETTER", f"rows rejected into {self.deadletter}"))
        return out
