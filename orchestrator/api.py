"""The orchestrator's Python API, used by the CLI and by the pytest plugin.

Example::

    result = run_stack(RunOptions(config=Path("config/defaults.yaml"), sink="sqlite", minutes=2))
    result.exit_code, result.report.total, result.manifest_path

Exit codes: 0 completed; 1 a child ended degraded; 2 usage error (raised as UsageError here);
3 early stop (rows dropped or rotation stalled); 129 / 130 / 143 interrupted by SIGHUP / SIGINT / SIGTERM.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import v13
from orchestrator.events import EventLog
from orchestrator.printer import Printer
from orchestrator.probes import Finding
from orchestrator.selfcheck import CheckResult, self_check
from orchestrator.spec import MODULES, stage_specs
from orchestrator.supervisor import ChildStatus, Supervisor
from v13.config import Config, SinkKind, config_hash, default_config_path, load_config
from v13.contracts import ReportRow
from v13.errors import UsageError
from v13.fsutil import atomic_write_json, new_run_id, now_ms, utc_iso
from v13.layout import Layout
from v13.report import build_report, report_stamp, write_report

__all__ = ["EXIT_CODES", "ChildSummary", "RunOptions", "RunResult", "run_stack"]

EXIT_CODES = {
    "completed": 0,
    "degraded": 1,
    "early_stop": 3,
    "interrupted_SIGINT": 130,
    "interrupted_SIGTERM": 143,
}


@dataclass(frozen=True)
class RunOptions:
    """What to run; None means "as the config says"."""

    config: Path | None = None
    enable: tuple[str, ...] = MODULES
    sink: str | None = None
    minutes: float = 30.0
    symbols: tuple[str, ...] | None = None
    debug: bool = False
    root: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChildSummary:
    name: str
    argv: list[str]
    status: str
    restarts: int
    pids: list[int]
    exit_codes: list[int | None]
    stop_how: list[str]
    peak_rss_mb: float
    peak_open_files: int
    env: dict[str, str]


@dataclass
class RunResult:
    run_id: str
    root: Path
    layout: Layout
    config: Config
    exit_code: int
    status: str
    manifest_path: Path
    report_paths: dict[str, Path]
    report: ReportRow | None
    children: dict[str, ChildSummary]
    health_samples: list[dict[str, Any]]
    checks: list[CheckResult]
    early_stop: list[str]
    started_ts_ms: int
    ended_ts_ms: int


def _validate(options: RunOptions) -> None:
    unknown = [m for m in options.enable if m not in MODULES]
    if unknown:
        raise UsageError(f"--enable: unknown module(s) {', '.join(unknown)}; choose from {','.join(MODULES)}")
    if options.sink is not None and options.sink not in [s.value for s in SinkKind]:
        raise UsageError(f"--sink {options.sink!r} is not a sink; choose jsonl or sqlite")
    if options.minutes < 0:
        raise UsageError(f"--minutes must be 0 (until interrupted) or positive, got {options.minutes}")


class _Interrupts:
    """First SIGINT/SIGTERM/SIGHUP (a closed terminal): graceful stop; second: force the kill path."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = self.signum or signum
        self.count += 1


def run_stack(
    options: RunOptions,
    *,
    printer: Printer | None = None,
    stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Run the enabled stages under supervision until ``minutes`` pass, a stop is requested
    (SIGINT/SIGTERM or ``stop()``), or an early-stop condition; then stop them in reverse order
    and write the final report and manifest."""
    _validate(options)
    overrides = dict(options.overrides)
    if options.sink:
        overrides["signal.sink"] = options.sink
    if options.symbols:
        overrides["symbols"] = list(options.symbols)
    config_path = Path(options.config) if options.config else default_config_path()
    cfg = load_config(config_path, overrides=overrides)
    root = Path(options.root or Path.cwd()).resolve()
    layout = Layout.from_config(cfg, root)
    started = now_ms()
    run_id = new_run_id(started)
    printer = printer or Printer(debug=options.debug)
    if not options.enable:
        return _self_check_only(cfg, layout, run_id, started, printer, options, config_path)

    for directory in (layout.run_logs_dir, layout.runtime_dir, layout.data_dir):
        directory.mkdir(parents=True, exist_ok=True)
    events = EventLog(layout.logs_dir / "orchestrator" / "orchestrator.log", run_id)
    events.listeners.append(printer.event)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started / 1000))
    manifest_path = layout.run_logs_dir / f"run_manifest_{stamp}.json"
    specs = stage_specs(cfg, layout, config_path.resolve(), run_id, list(options.enable),
                        list(options.symbols) if options.symbols else None)  # fmt: skip
    state: dict[str, Any] = {"status": "starting", "report_paths": {}, "early_stop": [], "health": []}
    sup: Supervisor

    def write_manifest() -> None:
        atomic_write_json(manifest_path, _manifest(options, cfg, config_path, run_id, started, sup, state))

    sup = Supervisor(specs, cwd=root, logs_dir=layout.logs_dir, events=events,
                     grace_s=cfg.orchestrator.stop_grace_s, on_change=write_manifest)  # fmt: skip
    interrupts = _Interrupts()
    interrupts.install()  # kept until the report and manifest are written: a late signal cannot cut them
    try:
        events.emit("Run", phase="start", enable=list(options.enable), sink=cfg.signal.sink.value,
                    minutes=options.minutes, root=str(root), config=str(config_path))  # fmt: skip
        printer.line(f"run {run_id}: {','.join(options.enable)} sink={cfg.signal.sink.value} root={root}")
        early = _supervise(sup, options, cfg, layout, run_id, state, events, printer, interrupts, stop)
        report = _final_report(cfg, layout, run_id, state, events)
        if interrupts.signum:
            status = f"interrupted_{signal.Signals(interrupts.signum).name}"
        elif early:
            status = "early_stop"
        elif any(ps.status is ChildStatus.DEGRADED for ps in sup.procs):
            status = "degraded"
        else:
            status = "completed"
        state["status"] = status
        write_manifest()
        events.emit(
            "Run", phase="end", status=status, exit_code=EXIT_CODES[status], manifest=str(manifest_path)
        )
    finally:
        interrupts.restore()
        events.close()
    printer.line(
        f"run {run_id} {status}; report {state['report_paths'].get('json', '-')}; manifest {manifest_path}"
    )
    return RunResult(
        run_id=run_id, root=root, layout=layout, config=cfg, exit_code=EXIT_CODES[status], status=status,
        manifest_path=manifest_path, report_paths=dict(state["report_paths"]), report=report,
        children={ps.name: _summary(ps) for ps in sup.procs}, health_samples=state["health"], checks=[],
        early_stop=state["early_stop"], started_ts_ms=started, ended_ts_ms=now_ms(),
    )  # fmt: skip


def _supervise(
    sup: Supervisor,
    options: RunOptions,
    cfg: Config,
    layout: Layout,
    run_id: str,
    state: dict[str, Any],
    events: EventLog,
    printer: Printer,
    interrupts: _Interrupts,
    stop: Callable[[], bool] | None,
) -> list[Finding]:
    """Start the children and supervise them until the end; always stops them (reverse order)."""
    total_s = options.minutes * 60 if options.minutes > 0 else None
    t0 = time.monotonic()
    early: list[Finding] = []
    try:
        sup.start_all()
        state["status"] = "running"
        next_health = time.monotonic() + cfg.orchestrator.health_interval_s
        while True:
            elapsed = time.monotonic() - t0
            if interrupts.signum or (stop and stop()) or (total_s is not None and elapsed >= total_s):
                break
            sup.poll()
            if time.monotonic() >= next_health:
                next_health += cfg.orchestrator.health_interval_s
                early = sup.tick_health()
                state["health"].append(_health_sample(sup, elapsed))
                printer.health_line(sup, elapsed)
                if early:
                    state["early_stop"] = [f"{f.code}: {f.detail}" for f in early]
                    events.emit("EarlyStop", findings=state["early_stop"])
                    _final_report(cfg, layout, run_id, state, events)
                    break
            printer.tick(sup, elapsed, total_s)
            time.sleep(0.1)
    finally:
        state["status"] = "stopping"
        sup.force = interrupts.count >= 2
        threading.Thread(target=_watch_force, args=(sup, interrupts), daemon=True).start()
        sup.graceful_shutdown()
    return early


def _watch_force(sup: Supervisor, interrupts: _Interrupts) -> None:
    while not sup.force and any(ps.status is not ChildStatus.STOPPED for ps in sup.procs):
        if interrupts.count >= 2:
            sup.force = True
        time.sleep(0.05)


def _final_report(
    cfg: Config, layout: Layout, run_id: str, state: dict[str, Any], events: EventLog
) -> ReportRow:
    report = build_report(cfg, layout, run_id)
    paths = write_report(report, layout.report_dir, report_stamp(run_id), chart=cfg.report.chart)
    state["report_paths"] = {k: str(v) for k, v in paths.items()}
    events.emit("Report", total=report.total, rows=report.rows, orders=report.orders.count,
                dropped=report.dropped, warnings=report.warnings, path=str(paths["json"]))  # fmt: skip
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


def _summary(ps: Any) -> ChildSummary:
    return ChildSummary(
        name=ps.name, argv=ps.spec.cmd, status=ps.status.value, restarts=ps.restarts, pids=ps.pids,
        exit_codes=ps.exit_codes, stop_how=ps.stop_how, peak_rss_mb=round(ps.peak_rss_bytes / 2**20, 1),
        peak_open_files=ps.peak_open_files, env=ps.env_snapshot,
    )  # fmt: skip


def _manifest(
    options: RunOptions,
    cfg: Config,
    config_path: Path,
    run_id: str,
    started: int,
    sup: Supervisor,
    state: dict[str, Any],
) -> dict[str, Any]:
    health = state["health"]
    return {
        "run_id": run_id,
        "status": state["status"],
        "exit_code": EXIT_CODES.get(state["status"]),
        "started_at": utc_iso(started),
        "updated_at": utc_iso(now_ms()),
        "config": {"path": str(config_path.resolve()), "sha256": config_hash(config_path)},
        "cli_args": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "enabled": list(options.enable),
        "sink": cfg.signal.sink.value,
        "symbols": list(cfg.symbols),
        "children": {
            ps.name: {
                "argv": ps.spec.cmd,
                "env_keys": sorted(ps.spec.env),
                "status": ps.status.value,
                "pids": ps.pids,
                "start_ts_ms": ps.start_ts_ms,
                "ready_ts_ms": ps.ready_ts_ms,
                "stop_ts_ms": ps.stop_ts_ms,
                "restarts": ps.restarts,
                "exit_codes": ps.exit_codes,
                "stop_how": ps.stop_how,
                "peak_rss_mb": round(ps.peak_rss_bytes / 2**20, 1),
                "peak_open_files": ps.peak_open_files,
                "last_findings": [f"{f.code}: {f.detail}" for f in ps.findings],
            }
            for ps in sup.procs
        },
        "health": {"ticks": len(health), "last": health[-1] if health else None},
        "early_stop": state["early_stop"],
        "report_paths": state["report_paths"],
        "versions": {
            "v13": getattr(v13, "__version__", "0.1.0"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "pid": os.getpid(),
        },
    }


def _self_check_only(
    cfg: Config,
    layout: Layout,
    run_id: str,
    started: int,
    printer: Printer,
    options: RunOptions,
    config_path: Path,
) -> RunResult:
    checks = self_check(cfg, layout)
    for c in checks:
        printer.line(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    ok = all(c.ok for c in checks)
    printer.line("self-check passed" if ok else "self-check failed")
    return RunResult(
        run_id=run_id, root=layout.root, layout=layout, config=cfg, exit_code=0 if ok else 1,
        status="self_check" if ok else "self_check_failed", manifest_path=Path(), report_paths={},
        report=None, children={}, health_samples=[], checks=checks, early_stop=[],
        started_ts_ms=started, ended_ts_ms=now_ms(),
    )  # fmt: skip
