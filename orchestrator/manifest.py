"""The run manifest (``artifacts/run_logs/run_manifest_<run_id>.json``) and the per-child summary,
both built from the supervisor's state; the manifest is rewritten at every change."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import v13
from orchestrator.status import RunStatus
from orchestrator.supervisor import ProcState, Supervisor
from v13.config import Config, config_hash
from v13.fsutil import now_ms, utc_iso

__all__ = ["ChildSummary", "RunState", "build_manifest", "child_summary"]


@dataclass
class ChildSummary:
    name: str
    argv: list[str]
    status: str
    degraded_reason: str | None
    restarts: int
    pids: list[int]
    exit_codes: list[int | None]
    stop_how: list[str]
    peak_rss_mb: float
    peak_open_files: int
    env: dict[str, str]


@dataclass
class RunState:
    """What the run has done so far, beside the supervisor's per-child state."""

    status: RunStatus = RunStatus.STARTING
    ended_by: str | None = None  # time | drained | stop | signal | early_stop | error
    early_stop: list[str] = field(default_factory=list)
    report_paths: dict[str, str] = field(default_factory=dict)
    health: list[dict[str, Any]] = field(default_factory=list)


def child_summary(ps: ProcState) -> ChildSummary:
    return ChildSummary(
        name=ps.name, argv=ps.spec.cmd, status=ps.status.value, degraded_reason=ps.degraded_reason,
        restarts=ps.restarts, pids=ps.pids, exit_codes=ps.exit_codes, stop_how=ps.stop_how,
        peak_rss_mb=round(ps.peak_rss_bytes / 2**20, 1), peak_open_files=ps.peak_open_files,
        env=ps.env_snapshot,
    )  # fmt: skip


def build_manifest(
    options: Any, cfg: Config, config_path: Path, run_id: str, started: int, sup: Supervisor, state: RunState
) -> dict[str, Any]:
    health = state.health
    return {
        "run_id": run_id,
        "status": state.status.value,
        "exit_code": state.status.exit_code,
        "ended_by": state.ended_by,
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
                "degraded_reason": ps.degraded_reason,
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
        "early_stop": state.early_stop,
        "report_paths": state.report_paths,
        "versions": {
            "v13": getattr(v13, "__version__", "0.1.0"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "pid": os.getpid(),
        },
    }
