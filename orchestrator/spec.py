"""What the supervisor runs: ``ProcessSpec`` (name, cmd, env, ready probe, health probe, restart
policy) and the four stage specs of a run."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import v13
from orchestrator.probes import (
    Action,
    AllOf,
    FileGlob,
    HealthProbe,
    LogKeyword,
    ReadyProbe,
    SqliteTable,
    StageHealth,
    WritableDirs,
)
from v13.config import Config, SinkKind
from v13.layout import Glob, Layout

__all__ = ["MODULES", "ProcessSpec", "RestartPolicy", "child_env", "stage_specs"]

MODULES = ("harvest", "signal", "broker", "report")  # start order; stop order is the reverse
WHITELIST = ("V13_SINK", "V13_OUTPUT_DIR", "PAPER_ENABLE")


@dataclass(frozen=True)
class RestartPolicy:
    """At most ``max_restarts`` per child per run (never reset), waiting ``backoff_s[i]`` before the i-th."""

    max_restarts: int = 2
    backoff_s: tuple[float, ...] = (10.0, 30.0)

    def delay(self, restarts_done: int) -> float:
        if not self.backoff_s:
            return 0.0
        return self.backoff_s[min(restarts_done, len(self.backoff_s) - 1)]


@dataclass
class ProcessSpec:
    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_probe: ReadyProbe
    health_probe: HealthProbe | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    ready_timeout_s: float = 120.0


def child_env(run_id: str, whitelist: dict[str, str]) -> dict[str, str]:
    """A clean environment: what Python needs, the run id, and the whitelisted variables only."""
    package_root = str(Path(v13.__file__).resolve().parents[1])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": package_root,
        "V13_RUN_ID": run_id,
    }
    for key in ("LANG", "LC_ALL", "TZ", "HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update({k: v for k, v in whitelist.items() if k in WHITELIST})
    return env


def stage_specs(
    cfg: Config, layout: Layout, config_path: Path, run_id: str, enable: list[str], symbols: list[str] | None
) -> list[ProcessSpec]:
    """The enabled stages, in start order, with the commands of the run contract."""
    o = cfg.orchestrator
    policy = RestartPolicy(o.max_restarts, tuple(o.restart_backoff_s))
    paper = os.environ.get("PAPER_ENABLE") or ("1" if cfg.broker.paper else "")
    env = child_env(
        run_id,
        {
            "V13_SINK": cfg.signal.sink.value,
            "V13_OUTPUT_DIR": str(layout.runtime_dir),
            **({"PAPER_ENABLE": paper} if paper else {}),
        },
    )
    py = [sys.executable, "-m"]
    cfg_arg = ["--config", str(config_path)]
    window = max(60.0, cfg.segments.rotate_seconds)

    def health(name: str, **extra: object) -> StageHealth:
        return StageHealth(
            status_file=layout.health_file(name), run_id=run_id, heartbeat_max_age_s=o.heartbeat_max_age_s,
            cadence_window_s=window + 10, **extra,  # type: ignore[arg-type]
        )  # fmt: skip

    data = layout.data
    summary = Glob(layout.report_dir, layout.summary_paths(run_id)["json"].name)
    specs: dict[str, ProcessSpec] = {}
    specs["harvest"] = ProcessSpec(
        "harvest",
        [*py, "mcp.harvest_server.app", *cfg_arg, *(["--symbols", ",".join(symbols)] if symbols else [])],
        env, LogKeyword(),
        health("harvest", cadence=[(data.raw_segments(), Action.RESTART),
                                   (data.feature_segments(), Action.RESTART)],
               deadletter=layout.deadletter_files("harvest")),
        policy, o.ready_timeout_s,
    )  # fmt: skip
    if cfg.signal.sink is SinkKind.SQLITE:
        sink_ready: ReadyProbe = SqliteTable(layout.signals_db)
        rotation: list[tuple[Glob, Action]] = []
    else:
        sink_ready = WritableDirs((layout.signal_spool, layout.signal_ready))
        rotation = [(layout.signal_segments(), Action.STOP_RUN)]
    specs["signal"] = ProcessSpec(
        "signal", [*py, "mcp.signal_server.app", *cfg_arg], env, AllOf((LogKeyword(), sink_ready)),
        health("signal", cadence=rotation, deadletter=layout.deadletter_files("signal")),
        policy, o.ready_timeout_s,
    )  # fmt: skip
    specs["broker"] = ProcessSpec(
        "broker", [*py, "mcp.broker_gateway_server.app", "--mock", "1", *cfg_arg], env, LogKeyword(),
        health("broker", throughput_counter="in", deadletter=layout.deadletter_files("broker")),
        policy, o.ready_timeout_s,
    )  # fmt: skip
    specs["report"] = ProcessSpec(
        "report", [*py, "mcp.report_server.app", "--tail", str(layout.signal_ready), *cfg_arg], env,
        AllOf((LogKeyword(), FileGlob((summary,)))),
        health("report", fresh_file=(summary, 2 * cfg.report.interval_s + 15)),
        policy, o.ready_timeout_s,
    )  # fmt: skip
    return [specs[name] for name in MODULES if name in enable]
