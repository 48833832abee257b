"""What every stage process shares: run id, stop signals, status file, lifecycle log lines.

Example (the shape of each stage's ``run``)::

    rt = StageRuntime("signal", cfg, layout)
    rt.started()                       # logs "Server started", state ready
    while not rt.stopping:
        ...; rt.count("in", n); rt.beat()
    rt.stopped()                       # logs "Stopped"

SIGTERM and SIGINT only set a flag: the loop finishes its batch, then the stage seals, flushes
and checkpoints and exits 0. The handler takes no lock and writes no log line: it runs in the main
thread between two bytecodes, perhaps inside ``Event.wait`` (whose lock is not reentrant) or a
write to stderr, so a thread of its own wakes on a pipe, logs ``Stopping`` and sets the event.

A stage that cannot go on calls :meth:`StageRuntime.fail`: the status file says ``failed`` with
the reason, and the process exits 1.

Every stage belongs to the run that holds the root (:mod:`v13.runlock`): under the
orchestrator, the run id comes from ``V13_RUN_ID`` and must be the holder's; a stage started by
hand takes the lock when the root is free (the first stage starts a run, later ones join the
run recorded in ``runtime/run.json``) and joins the holder's run when it is not.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from v13.config import Config
from v13.contracts import StatusRow
from v13.errors import UsageError
from v13.fsutil import atomic_write_json, new_run_id, now_ms, read_json, utc_iso
from v13.layout import Layout
from v13.runlock import RunLock

__all__ = ["RUN_ID_ENV", "StageRuntime", "die_with_parent", "join_run"]

RUN_ID_ENV = "V13_RUN_ID"
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


def _recorded_run_id(layout: Layout) -> str | None:
    try:
        doc = read_json(layout.run_file)
    except (OSError, ValueError):
        return None
    run_id = doc.get("run_id") if isinstance(doc, dict) else None
    return run_id if isinstance(run_id, str) else None


def join_run(layout: Layout, name: str, *, first_stage: bool) -> tuple[str, RunLock | None]:
    """The run this stage belongs to, and the root's lock when this stage took it.

    Raises:
        UsageError: the root is held by another run than ``V13_RUN_ID``.
    """
    lock = RunLock(layout.lock_file)
    env = os.environ.get(RUN_ID_ENV)
    candidate = env or (None if first_stage else _recorded_run_id(layout)) or new_run_id()
    if lock.try_acquire(candidate, f"stage {name}"):
        if not env and first_stage:
            atomic_write_json(layout.run_file, {"run_id": candidate, "started_ts_ms": now_ms()})
        return candidate, lock
    holder = lock.holder()
    if holder.run_id is None or (env and holder.run_id != env):
        raise UsageError(
            f"{name}: the work root {layout.root} is held by {holder.describe()}, "
            f"not by this stage's run {env}; stop that run or pass another --root"
        )
    return holder.run_id, None


class StageRuntime:
    """Lifecycle, counters and the status file of one stage process."""

    def __init__(self, name: str, cfg: Config, layout: Layout, *, first_stage: bool = False) -> None:
        self.name = name
        self.cfg = cfg
        self.layout = layout
        self.run_id, self._lock = join_run(layout, name, first_stage=first_stage)
        self.pid = os.getpid()
        self.started_ts_ms = now_ms()
        self.counters: Counter[str] = Counter()
        self.queue_size = 0
        self.last_event_ts_ms: int | None = None
        self.state = "starting"
        self.error: str | None = None
        self.exhausted_ts_ms: int | None = None
        self.caught_up: tuple[int, int] | None = None
        self.lag_clock: Callable[[], int | None] | None = None  # a replay's clock; default the wall clock
        self._stop = threading.Event()
        self._signum: int | None = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._stop_logger = threading.Thread(target=self._log_stop, name="stop-signal", daemon=True)
        self._stop_logger.start()
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
        if self._signum is None:
            self._signum = signum
        with contextlib.suppress(BlockingIOError):  # a full pipe: the logger has long been woken
            os.write(self._wake_write, b"\0")

    def _log_stop(self) -> None:
        os.read(self._wake_read, 1)
        assert self._signum is not None
        self.log(f"Stopping signal={signal.Signals(self._signum).name}")
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._signum is not None

    @property
    def stop_event(self) -> threading.Event:
        """Set by SIGTERM/SIGINT: a blocking wait can watch it."""
        return self._stop

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns True when a stop was requested."""
        return self._stop.wait(max(0.0, seconds))

    # -- output ------------------------------------------------------------------------------
    def log(self, message: str, **fields: Any) -> None:
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        stamp = utc_iso(now_ms())
        line = f"{stamp} {self.name} {message}{extra}\n"
        sys.stderr.write(line)  # one write: lines logged by two threads stay whole
        sys.stderr.flush()

    def started(self, **fields: Any) -> None:
        self.state = "ready"
        self.log("Server started", run_id=self.run_id, pid=self.pid, **fields)
        self.write_status()
        self.state = "running"

    def stopped(self) -> None:
        if self.stopping:
            self._stop_logger.join()  # "Stopping" is logged before "Stopped"
        if self.state != "failed":
            self.state = "stopping"
        self.write_status()
        self.log("Stopped", **dict(sorted(self.counters.items())))

    def fail(self, reason: str) -> int:
        """Record why the stage cannot go on (status file and log); returns the exit code, 1."""
        self.state = "failed"
        self.error = reason
        self.log(f"ERROR {reason}")
        self.write_status()
        return 1

    def exhausted(self) -> None:
        """The finite source is used up and every output segment is sealed."""
        self.state = "exhausted"
        self.exhausted_ts_ms = now_ms()
        self.log("Source exhausted", rows=self.counters["in"], features=self.counters["out"])
        self.write_status()

    def caught_up_at(self, poll_ms: int | None) -> None:
        """``poll_ms``: start time of a poll that found nothing new, everything read before it now
        durable; None otherwise. A supervisor that knows its upstream finished before ``poll_ms``
        knows this stage has handled all of it."""
        self.caught_up = None if poll_ms is None else (poll_ms, now_ms())

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
        clock = (self.lag_clock() if self.lag_clock else None) or ts
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
            lag_ms=float(clock - self.last_event_ts_ms) if self.last_event_ts_ms is not None else None,
            error=self.error,
            exhausted_ts_ms=self.exhausted_ts_ms,
            caught_up_poll_ts_ms=self.caught_up[0] if self.caught_up else None,
            caught_up_ts_ms=self.caught_up[1] if self.caught_up else None,
        )
        atomic_write_json(self.layout.health_file(self.name), status)
