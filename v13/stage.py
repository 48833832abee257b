"""What every stage process shares: run id, stop signals, status file, lifecycle log lines.

Example (the shape of each stage's ``run``)::

    rt = StageRuntime("signal", cfg, layout)
    rt.started()                       # logs "Server started", state ready
    while not rt.stopping:
        ...; rt.count("in", n); rt.beat()
    rt.stopped()                       # logs "Stopped"

SIGTERM and SIGINT only set a flag: the loop finishes its batch, then the stage seals, flushes
and checkpoints and exits 0.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from v13.config import Config
from v13.contracts import StatusRow
from v13.fsutil import atomic_write_json, new_run_id, now_ms, read_json, utc_iso
from v13.layout import Layout

__all__ = ["RUN_ID_ENV", "StageRuntime", "die_with_parent", "resolve_run_id"]

RUN_ID_ENV = "V13_RUN_ID"
_RUN_FILE = "run.json"
_PR_SET_PDEATHSIG = 1
_PARENT_AT_START = os.getppid()  # read at import, as early as the process can


def die_with_parent(parent_pid: int) -> bool:
    """Ask Linux for SIGTERM when the parent dies, so a stage whose supervisor was SIGKILLed
    stops (cleanly) instead of living on in its own session. Returns False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def resolve_run_id(layout: Layout, *, first_stage: bool) -> str:
    """``V13_RUN_ID`` if set (the orchestrator always sets it); otherwise, for runs by hand,
    the first stage starts a run and records it in ``runtime/run.json`` and later stages join it.
    """
    env = os.environ.get(RUN_ID_ENV)
    if env:
        return env
    path = layout.runtime_dir / _RUN_FILE
    if not first_stage:
        try:
            doc = read_json(path)
            if isinstance(doc, dict) and isinstance(doc.get("run_id"), str):
                return str(doc["run_id"])
        except (OSError, ValueError):
            pass
    run_id = new_run_id()
    atomic_write_json(path, {"run_id": run_id, "started_ts_ms": now_ms()})
    return run_id


class StageRuntime:
    """Lifecycle, counters and the status file of one stage process."""

    def __init__(self, name: str, cfg: Config, layout: Layout, run_id: str) -> None:
        self.name = name
        self.cfg = cfg
        self.layout = layout
        self.run_id = run_id
        self.pid = os.getpid()
        self.started_ts_ms = now_ms()
        self.counters: Counter[str] = Counter()
        self.queue_size = 0
        self.last_event_ts_ms: int | None = None
        self.state = "starting"
        self._stop = threading.Event()
        self._last_status = 0.0
        self._last_counters_log = time.monotonic()
        self.status_every_s = min(cfg.harvest.status_interval_s, 2.0)
        self.counters_log_every_s = 10.0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        die_with_parent(_PARENT_AT_START)
        self.write_status()

    # -- stop --------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self._stop.is_set():
            self.log(f"Stopping signal={signal.Signals(signum).name}")
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns True when a stop was requested."""
        return self._stop.wait(max(0.0, seconds))

    # -- output ------------------------------------------------------------------------------
    def log(self, message: str, **fields: Any) -> None:
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        stamp = utc_iso(now_ms())
        print(f"{stamp} {self.name} {message}{extra}", file=sys.stderr, flush=True)

    def started(self, **fields: Any) -> None:
        self.state = "ready"
        self.log("Server started", run_id=self.run_id, pid=self.pid, **fields)
        self.write_status()
        self.state = "running"

    def stopped(self) -> None:
        self.state = "stopping"
        self.write_status()
        self.log("Stopped", **dict(sorted(self.counters.items())))

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n

    def beat(self) -> None:
        """Write the status file when due and log the counters every 10 s; call every loop."""
        now = time.monotonic()
        if now - self._last_status >= self.status_every_s:
            self.write_status()
        if now - self._last_counters_log >= self.counters_log_every_s:
            self._last_counters_log = now
            self.log("counters", queue=self.queue_size, **dict(sorted(self.counters.items())))

    def write_status(self) -> None:
        self._last_status = time.monotonic()
        ts = now_ms()
        counters = {"in": 0, "out": 0, "dropped": 0, "deadletter": 0, **self.counters}
        status = StatusRow(
            name=self.name,
            pid=self.pid,
            run_id=self.run_id,
            state=self.state,  # type: ignore[arg-type]
            ts_ms=ts,
            started_ts_ms=self.started_ts_ms,
            counters=dict(counters),
            queue_size=self.queue_size,
            last_event_ts_ms=self.last_event_ts_ms,
            lag_ms=float(ts - self.last_event_ts_ms) if self.last_event_ts_ms is not None else None,
        )
        atomic_write_json(self.layout.health_file(self.name), status)
