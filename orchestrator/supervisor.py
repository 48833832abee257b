"""The supervisor: starts children in order, waits for readiness, probes health, restarts with
bounded backoff (by deadline, never by sleeping in the loop), stops them in reverse order.

State of each child lives in a :class:`ProcState`; every change calls ``on_change`` (the run
manifest is rewritten there) and emits an event to the orchestrator log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from orchestrator.events import EventLog
from orchestrator.probes import Action, Finding
from orchestrator.process import Child, TreeMetrics
from orchestrator.spec import ProcessSpec
from v13.cli import EXIT_USAGE
from v13.fsutil import now_ms
from v13.layout import Layout

__all__ = ["ChildStatus", "ProcState", "Supervisor"]

METRICS_EVERY_S = 2.0
# while children start: a stage is ready 0.3-1 s after its launch, and the probe's delay is
# part of what the run's Ready times say (reading four log files 50 times a second costs nothing)
READY_POLL_S = 0.02


class ChildStatus(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    READY = "ready"
    BACKOFF = "backoff"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class ProcState:
    spec: ProcessSpec
    status: ChildStatus = ChildStatus.PENDING
    child: Child | None = None
    restarts: int = 0
    restart_at: float | None = None
    last_failure: str | None = None  # why it was last restarted
    ready_deadline: float | None = None
    started_mono: float = 0.0
    pids: list[int] = field(default_factory=list)
    start_ts_ms: list[int] = field(default_factory=list)
    ready_ts_ms: list[int] = field(default_factory=list)
    stop_ts_ms: list[int] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    stop_how: list[str] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_open_files: int = 0
    last_metrics: TreeMetrics | None = None
    findings: list[Finding] = field(default_factory=list)
    env_snapshot: dict[str, str] = field(default_factory=dict)
    degraded_reason: str | None = None  # set once; the child stays degraded for the rest of the run

    @property
    def name(self) -> str:
        return self.spec.name


class Supervisor:
    """Runs a list of :class:`ProcessSpec` (in start order)."""

    def __init__(
        self,
        specs: list[ProcessSpec],
        *,
        cwd: Path,
        layout: Layout,
        events: EventLog,
        grace_s: float = 5.0,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.procs = [ProcState(spec) for spec in specs]
        self.cwd = cwd
        self.layout = layout
        self.events = events
        self.grace_s = grace_s
        self.on_change = on_change or (lambda: None)
        self.clock = clock
        self.force = False
        self._last_metrics = 0.0

    # -- start -------------------------------------------------------------------------------
    def start_all(self) -> None:
        """Start every child in order (harvest -> signal -> broker -> report)."""
        for ps in self.procs:
            self._start(ps)

    def _start(self, ps: ProcState) -> None:
        spec = ps.spec
        ps.child = Child(
            spec.name, spec.cmd, spec.env, self.cwd,
            stdout=self.layout.stage_stdout(spec.name), stderr=self.layout.stage_stderr(spec.name),
        )  # fmt: skip
        ps.status = ChildStatus.STARTING
        ps.started_mono = self.clock()
        ps.ready_deadline = ps.started_mono + spec.ready_timeout_s
        ps.restart_at = None
        ps.pids.append(ps.child.pid)
        ps.start_ts_ms.append(now_ms())
        ps.env_snapshot = ps.child.environ() or dict(spec.env)
        self.events.emit("Start", name=spec.name, pid=ps.child.pid, attempt=ps.restarts + 1, argv=spec.cmd)
        self.on_change()

    # -- the loop body -----------------------------------------------------------------------
    def poll(self) -> None:
        """Reap exits, check readiness, start due restarts, sample metrics; call often."""
        now = self.clock()
        for ps in self.procs:
            child = ps.child
            if ps.status in (ChildStatus.STARTING, ChildStatus.READY) and child is not None:
                rc = child.poll()
                if rc is not None:
                    ps.exit_codes.append(rc)
                    ps.stop_ts_ms.append(now_ms())
                    tail = child.stderr_text().splitlines()[-20:]
                    self.events.emit("Exit", name=ps.name, pid=child.pid, rc=rc, stderr_tail=tail)
                    if rc == EXIT_USAGE:  # its config or arguments: a restart would fail the same way
                        said = f": {tail[-1]}" if tail else ""
                        self._degrade(ps, "not restarted (a usage error)", f"exited with code {rc}{said}")
                        self.on_change()
                    else:
                        self.bounded_restart(ps, f"exited with code {rc}")
                elif ps.status is ChildStatus.STARTING:
                    self._check_ready(ps, now)
            elif ps.status is ChildStatus.BACKOFF and ps.restart_at is not None and now >= ps.restart_at:
                self._start(ps)
        if now - self._last_metrics >= METRICS_EVERY_S:
            self._last_metrics = now
            self.sample_metrics()

    def _check_ready(self, ps: ProcState, now: float) -> None:
        assert ps.child is not None
        if ps.spec.ready_probe.ready(ps.child):
            ps.status = ChildStatus.READY
            ps.ready_ts_ms.append(now_ms())
            self.events.emit("Ready", name=ps.name, pid=ps.child.pid, after_s=round(now - ps.started_mono, 2))
            self.on_change()
        elif ps.ready_deadline is not None and now > ps.ready_deadline:
            tail = ps.child.stderr_text().splitlines()[-20:]
            self.events.emit(
                "ReadyTimeout", name=ps.name, waited_s=ps.spec.ready_timeout_s,
                waited_for=ps.spec.ready_probe.describe(), log=str(ps.child.stderr_path), stderr_tail=tail,
            )  # fmt: skip
            self.bounded_restart(ps, f"not ready within {ps.spec.ready_timeout_s:.0f} s")

    def all_settled(self) -> bool:
        """Every child is ready or degraded (what :meth:`wait_ready` waits for)."""
        return all(ps.status in (ChildStatus.READY, ChildStatus.DEGRADED) for ps in self.procs)

    def wait_ready(self, timeout: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Poll until every child is ready or degraded; False on timeout or stop."""
        deadline = self.clock() + timeout
        while not self.all_settled():
            if stop() or self.clock() > deadline:
                return False
            self.poll()
            time.sleep(READY_POLL_S)
        return True

    # -- health ------------------------------------------------------------------------------
    def sample_metrics(self) -> None:
        for ps in self.procs:
            if ps.child is not None and ps.status in (ChildStatus.STARTING, ChildStatus.READY):
                m = ps.child.metrics()
                ps.last_metrics = m
                ps.peak_rss_bytes = max(ps.peak_rss_bytes, m.rss_bytes)
                ps.peak_open_files = max(ps.peak_open_files, m.open_files)

    def tick_health(self, *, source_live: bool = True) -> list[Finding]:
        """Probe every ready child; restart the unhealthy; return findings that end the run.
        ``source_live`` False (a finite source is used up): no output cadence is expected."""
        self.sample_metrics()
        stop_run: list[Finding] = []
        for ps in self.procs:
            if ps.status is not ChildStatus.READY or ps.child is None:
                continue
            uptime = self.clock() - ps.started_mono
            probe = ps.spec.health_probe
            findings = probe.check(ps.child, uptime, source_live=source_live) if probe else []
            ps.findings = findings
            m = ps.last_metrics
            self.events.emit(
                "Health", name=ps.name, pid=ps.child.pid, status=ps.status.value, uptime_s=round(uptime, 1),
                rss_mb=round((m.rss_bytes if m else 0) / 2**20, 1), open_files=m.open_files if m else 0,
                findings=[f"{f.code}: {f.detail}" for f in findings],
            )  # fmt: skip
            restart = [f for f in findings if f.action is Action.RESTART]
            stop_run += [f for f in findings if f.action is Action.STOP_RUN]
            if restart:
                self.bounded_restart(ps, "; ".join(f"{f.code}: {f.detail}" for f in restart))
        self.on_change()
        return stop_run

    # -- restarts ----------------------------------------------------------------------------
    def bounded_restart(self, ps: ProcState, reason: str) -> None:
        """Schedule a restart after the policy's backoff, or mark the child degraded."""
        if ps.child is not None and not ps.child.gone():
            ps.stop_how.append(ps.child.stop(self.grace_s))
            ps.exit_codes.append(ps.child.returncode)
            ps.stop_ts_ms.append(now_ms())
        ps.last_failure = reason
        policy = ps.spec.restart_policy
        if ps.restarts >= policy.max_restarts:
            self._degrade(ps, f"{ps.restarts} restart(s) used up", reason)
        else:
            delay = policy.delay(ps.restarts)
            ps.restarts += 1
            ps.restart_at = self.clock() + delay
            ps.status = ChildStatus.BACKOFF
            self.events.emit("Restart", name=ps.name, attempt=ps.restarts, backoff_s=delay, reason=reason)
        self.on_change()

    def degrade_waiting(self) -> None:
        """At the end of a run: a child still waiting for its restart did not recover, so the run
        must not say it completed. It is degraded, with the failure that stopped it."""
        waiting = [ps for ps in self.procs if ps.status is ChildStatus.BACKOFF]
        for ps in waiting:
            self._degrade(ps, "the run ended while it waited to restart", ps.last_failure or "unknown")
        if waiting:
            self.on_change()

    def _degrade(self, ps: ProcState, why: str, reason: str) -> None:
        ps.status = ChildStatus.DEGRADED
        ps.degraded_reason = f"{why}; last failure: {reason}"
        self.events.emit("Degraded", name=ps.name, restarts=ps.restarts, reason=reason)

    # -- stop --------------------------------------------------------------------------------
    @property
    def degraded(self) -> list[ProcState]:
        return [ps for ps in self.procs if ps.degraded_reason is not None]

    def graceful_shutdown(self) -> None:
        """Stop every child in reverse start order; a child is stopped when its whole tree is gone.
        A degraded child (already stopped when it was given up) keeps that status."""
        for ps in reversed(self.procs):
            child = ps.child
            if ps.status is ChildStatus.DEGRADED:
                continue
            if child is None or ps.status in (ChildStatus.STOPPED, ChildStatus.PENDING):
                ps.status = ChildStatus.STOPPED
                continue
            was_running = ps.status in (ChildStatus.STARTING, ChildStatus.READY)
            ps.status = ChildStatus.STOPPING
            self.on_change()
            t0 = self.clock()
            how = child.stop(self.grace_s, force=self.force, abort=lambda: self.force)
            if was_running:
                ps.stop_how.append(how)
                ps.exit_codes.append(child.returncode)
                ps.stop_ts_ms.append(now_ms())
            ps.status = ChildStatus.STOPPED
            self.events.emit(
                "Stop",
                name=ps.name,
                pid=child.pid,
                how=how,
                rc=child.returncode,
                took_s=round(self.clock() - t0, 2),
            )
            self.on_change()
