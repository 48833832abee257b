"""The orchestrator's Python API, used by the CLI and by the pytest plugin.

Example::

    result = run_stack(RunOptions(config=Path("config/defaults.yaml"), sink="sqlite", minutes=2))
    result.status, result.exit_code, result.report.total, result.manifest_path

How a run ends and its exit code: :mod:`orchestrator.status`. A usage mistake (bad option,
config or root, or a root another run holds) raises :class:`v13.errors.UsageError` before
anything starts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.drain import Drain
from orchestrator.events import EventLog
from orchestrator.interrupts import Interrupts
from orchestrator.manifest import ChildSummary, RunState, build_manifest, child_summary
from orchestrator.printer import Printer
from orchestrator.probes import Finding
from orchestrator.selfcheck import CheckResult, self_check
from orchestrator.spec import MODULES, stage_specs
from orchestrator.status import RunStatus
from orchestrator.supervisor import ChildStatus, Supervisor
from v13.config import Config, SinkKind, SourceKind, default_config_path, load_config
from v13.contracts import ReportRow
from v13.errors import UsageError
from v13.fsutil import atomic_write_json, new_run_id, now_ms
from v13.layout import Layout
from v13.runlock import RunLock
from v13.sources.replay import replay_path

__all__ = ["ChildSummary", "RunOptions", "RunResult", "run_stack"]

DRAIN_CHECK_S = 0.5


@dataclass(frozen=True)
class RunOptions:
    """What to run; None means "as the config says". ``minutes`` 0: until interrupted, or, on a
    finite source, until everything is drained."""

    config: Path | None = None
    enable: tuple[str, ...] = MODULES
    sink: str | None = None
    minutes: float = 30.0
    symbols: tuple[str, ...] | None = None
    debug: bool = False
    root: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    root: Path
    layout: Layout
    config: Config
    status: RunStatus
    ended_by: str | None
    manifest_path: Path
    report_paths: dict[str, Path]
    report: ReportRow | None
    children: dict[str, ChildSummary]
    health_samples: list[dict[str, Any]]
    checks: list[CheckResult]
    early_stop: list[str]
    started_ts_ms: int
    ended_ts_ms: int

    @property
    def exit_code(self) -> int:
        code = self.status.exit_code
        return 1 if code is None else code


def _validate(options: RunOptions) -> tuple[str, ...] | None:
    """Check the options; returns the symbols upper-cased."""
    unknown = [m for m in options.enable if m not in MODULES]
    if unknown:
        raise UsageError(f"--enable: unknown module(s) {', '.join(unknown)}; choose from {','.join(MODULES)}")
    if options.sink is not None and options.sink not in [s.value for s in SinkKind]:
        raise UsageError(f"--sink {options.sink!r} is not a sink; choose jsonl or sqlite")
    if not math.isfinite(options.minutes) or options.minutes < 0:
        raise UsageError(f"--minutes must be 0 (until stopped) or a positive number, got {options.minutes}")
    if options.symbols is None:
        return None
    symbols = tuple(s.strip().upper() for s in options.symbols if s.strip())
    if not symbols or not all(s.isalnum() for s in symbols):
        raise UsageError(
            f"--symbols {','.join(options.symbols)!r} must be comma-separated symbols such as BTCUSDT,ETHUSDT"
        )
    return symbols


def run_stack(
    options: RunOptions,
    *,
    printer: Printer | None = None,
    stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Run the enabled stages under supervision until ``minutes`` pass, a finite source is
    drained, a stop is requested (SIGINT/SIGTERM/SIGHUP or ``stop()``), or an early-stop
    condition; then stop them in reverse order and write the final report and manifest."""
    symbols = _validate(options)
    overrides = dict(options.overrides)
    sources = {}
    if options.sink:
        overrides["signal.sink"], sources["signal.sink"] = options.sink, "--sink"
    if symbols:
        overrides["symbols"], sources["symbols"] = list(symbols), "--symbols"
    config_path = Path(options.config) if options.config else default_config_path()
    cfg = load_config(config_path, overrides=overrides, sources=sources)
    root = Path(options.root or Path.cwd()).resolve()
    layout = Layout.from_config(cfg, root)
    started = now_ms()
    run_id = new_run_id(started)
    printer = printer or Printer(debug=options.debug)
    if not options.enable:
        return _self_check_only(cfg, layout, run_id, started, printer)
    if "harvest" in options.enable and cfg.source.kind is SourceKind.REPLAY:
        replay_path(cfg, layout.root)  # the harvest would exit 2 on it: say so before anything starts

    layout.prepare()
    lock = RunLock(layout.lock_file)
    lock.acquire(run_id, "orchestrator")
    try:
        return _run(options, cfg, config_path, layout, run_id, started, symbols, printer, stop)
    finally:
        lock.release()


def _run(
    options: RunOptions,
    cfg: Config,
    config_path: Path,
    layout: Layout,
    run_id: str,
    started: int,
    symbols: tuple[str, ...] | None,
    printer: Printer,
    stop: Callable[[], bool] | None,
) -> RunResult:
    events = EventLog(layout.orchestrator_log, run_id)
    events.listeners.append(printer.event)
    manifest_path = layout.manifest_path(run_id)
    specs = stage_specs(cfg, layout, config_path.resolve(), run_id, list(options.enable),
                        list(symbols) if symbols else None)  # fmt: skip
    state = RunState()

    def write_manifest() -> None:
        doc = build_manifest(options, cfg, config_path, run_id, started, sup, state)
        atomic_write_json(manifest_path, doc)

    sup = Supervisor(specs, cwd=layout.root, layout=layout, events=events,
                     grace_s=cfg.orchestrator.stop_grace_s, on_change=write_manifest)  # fmt: skip

    interrupts = Interrupts()
    interrupts.install()  # kept until the report and manifest are written: a late signal cannot cut them
    report: ReportRow | None = None
    try:
        events.emit("Run", phase="start", enable=list(options.enable), sink=cfg.signal.sink.value,
                    minutes=options.minutes, root=str(layout.root), config=str(config_path))  # fmt: skip
        printer.line(
            f"run {run_id}: {','.join(options.enable)} sink={cfg.signal.sink.value} root={layout.root}"
        )
        early = _supervise(sup, options, cfg, layout, run_id, state, events, printer, interrupts, stop)
        report = _final_report(cfg, layout, run_id, state, events)
        if interrupts.signum:
            state.status = RunStatus.interrupted(interrupts.signum)
        elif early:
            state.status = RunStatus.EARLY_STOP
        elif sup.degraded:
            state.status = RunStatus.DEGRADED
        else:
            state.status = RunStatus.COMPLETED
    except BaseException:
        state.status, state.ended_by = RunStatus.FAILED, state.ended_by or "error"
        raise
    finally:
        write_manifest()
        events.emit("Run", phase="end", status=state.status.value, exit_code=state.status.exit_code,
                    ended_by=state.ended_by, degraded={ps.name: ps.degraded_reason for ps in sup.degraded},
                    manifest=str(manifest_path))  # fmt: skip
        interrupts.restore()
        events.close()
    printer.line(
        f"run {run_id} {state.status.value} (exit {state.status.exit_code}, ended by {state.ended_by}); "
        f"report {state.report_paths.get('json', '-')}; manifest {manifest_path}"
    )
    for ps in sup.degraded:
        printer.line(f"  {ps.name} degraded: {ps.degraded_reason}")
    return RunResult(
        run_id=run_id, root=layout.root, layout=layout, config=cfg, status=state.status,
        ended_by=state.ended_by, manifest_path=manifest_path,
        report_paths={k: Path(v) for k, v in state.report_paths.items()}, report=report,
        children={ps.name: child_summary(ps) for ps in sup.procs}, health_samples=state.health, checks=[],
        early_stop=state.early_stop, started_ts_ms=started, ended_ts_ms=now_ms(),
    )  # fmt: skip


def _supervise(
    sup: Supervisor,
    options: RunOptions,
    cfg: Config,
    layout: Layout,
    run_id: str,
    state: RunState,
    events: EventLog,
    printer: Printer,
    interrupts: Interrupts,
    stop: Callable[[], bool] | None,
) -> list[Finding]:
    """Start the children and supervise them until the end; always stops them (reverse order)."""
    total_s = options.minutes * 60 if options.minutes > 0 else None
    t0 = time.monotonic()
    early: list[Finding] = []
    drain = Drain(layout, run_id, tuple(options.enable))
    next_drain_check = 0.0
    try:
        sup.start_all()
        state.status = RunStatus.RUNNING
        next_health = time.monotonic() + cfg.orchestrator.health_interval_s
        while True:
            now = time.monotonic()
            elapsed = now - t0
            if interrupts.signum:
                state.ended_by = "signal"
            elif stop and stop():
                state.ended_by = "stop"
            elif total_s is not None and elapsed >= total_s:
                state.ended_by = "time"
            elif now >= next_drain_check:
                next_drain_check = now + DRAIN_CHECK_S
                if drain.drained(without=frozenset(ps.name for ps in sup.degraded)):
                    state.ended_by = "drained"
                    events.emit(
                        "Drained", detail="the finite source is used up and every stage has handled it"
                    )
            if state.ended_by:
                break
            sup.poll()
            if now >= next_health:
                next_health += cfg.orchestrator.health_interval_s
                early = sup.tick_health(source_live=not drain.source_exhausted())
                state.health.append(_health_sample(sup, elapsed))
                printer.health_line(sup, elapsed)
                if early:
                    state.early_stop = [f"{f.code}: {f.detail}" for f in early]
                    state.ended_by = "early_stop"
                    events.emit("EarlyStop", findings=state.early_stop)
                    _final_report(cfg, layout, run_id, state, events)
                    break
            printer.tick(sup, elapsed, total_s)
            time.sleep(0.1)
    finally:
        sup.degrade_waiting()
        state.status = RunStatus.STOPPING
        sup.force = interrupts.count >= 2
        threading.Thread(target=_watch_force, args=(sup, interrupts), daemon=True).start()
        sup.graceful_shutdown()
    return early


def _watch_force(sup: Supervisor, interrupts: Interrupts) -> None:
    done = (ChildStatus.STOPPED, ChildStatus.DEGRADED)
    while not sup.force and any(ps.status not in done for ps in sup.procs):
        if interrupts.count >= 2:
            sup.force = True
        time.sleep(0.05)


def _final_report(cfg: Config, layout: Layout, run_id: str, state: RunState, events: EventLog) -> ReportRow:
    # imported here: numpy and the report code would add 0.1 s before the first stage starts
    from v13.report import build_report, write_report

    report = build_report(cfg, layout, run_id)
    paths = write_report(report, layout.summary_paths(run_id), chart=cfg.report.chart)
    state.report_paths = {k: str(v) for k, v in paths.items()}
    events.emit("Report", total=report.total, rows=report.rows, orders=report.orders.count,
                dropped=report.dropped, unprocessed_tail=report.unprocessed_tail,
                missing_signals=report.missing_signals, warnings=report.warnings,
                path=str(paths["json"]))  # fmt: skip
    return report


def _health_sample(sup: Supervisor, elapsed: float) -> dict[str, Any]:
    return {
        "elapsed_s": round(elapsed, 1),
        "ts_ms": now_ms(),
        "children": {
            ps.name: {
                "status": ps.status.value,
                "restarts": ps.restarts,
                "rss_mb": round((ps.last_metrics.rss_bytes if ps.last_metrics else 0) / 2**20, 1),
                "open_files": ps.last_metrics.open_files if ps.last_metrics else 0,
                "findings": [f"{f.code}: {f.detail}" for f in ps.findings],
            }
            for ps in sup.procs
        },
    }


def _self_check_only(cfg: Config, layout: Layout, run_id: str, started: int, printer: Printer) -> RunResult:
    checks = self_check(cfg, layout)
    for c in checks:
        printer.line(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    ok = all(c.ok for c in checks)
    printer.line("self-check passed" if ok else "self-check failed")
    return RunResult(
        run_id=run_id, root=layout.root, layout=layout, config=cfg,
        status=RunStatus.COMPLETED if ok else RunStatus.FAILED, ended_by="self_check",
        manifest_path=Path(), report_paths={}, report=None, children={}, health_samples=[], checks=checks,
        early_stop=[], started_ts_ms=started, ended_ts_ms=now_ms(),
    )  # fmt: skip
