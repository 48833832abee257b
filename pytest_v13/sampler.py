"""The plugin's own view of the stage processes, sampled every second while the stack runs.

The stages are the orchestrator's child processes, told apart by the module in their command
line (the run contract's module names). For each stage the sampler keeps every pid it saw, the
peak RSS and open files summed over the stage's process tree, and the environment of each pid
as the kernel holds it (``/proc/<pid>/environ``); it trusts nothing the stack writes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["STAGE_MODULES", "StageSample", "StageSampler"]

# seed section 5.2: the commands the orchestrator runs
STAGE_MODULES = {
    "mcp.harvest_server.app": "harvest",
    "mcp.signal_server.app": "signal",
    "mcp.broker_gateway_server.app": "broker",
    "mcp.report_server.app": "report",
}


@dataclass
class StageSample:
    """What the sampler saw of one stage over the run."""

    pids: list[int] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_open_files: int = 0
    samples: int = 0
    environ: dict[int, dict[str, str]] = field(default_factory=dict)  # by pid
    environ_errors: dict[int, str] = field(default_factory=dict)


def stage_of(cmdline: list[str]) -> str | None:
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-m":
            return STAGE_MODULES.get(cmdline[i + 1])
    return None


def read_environ(pid: int) -> dict[str, str]:
    data = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode("utf-8", "replace") for k, v in pairs}


class StageSampler:
    """Samples the stages under ``orchestrator_pid`` every ``interval_s`` in a background thread."""

    def __init__(self, orchestrator_pid: int, interval_s: float = 1.0) -> None:
        self.pid = orchestrator_pid
        self.interval_s = interval_s
        self.stages: dict[str, StageSample] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="v13-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        try:
            leaders = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return
        for leader in leaders:
            try:
                name = stage_of(leader.cmdline())
                if name is None:
                    continue
                tree = [leader, *leader.children(recursive=True)]
                rss = files = 0
                for proc in tree:
                    rss += proc.memory_info().rss
                    files += proc.num_fds()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a stage that is ending: the next sample sees its successor
            except psutil.AccessDenied as exc:
                self.errors.append(f"{leader.pid}: {exc}")
                continue
            stage = self.stages.setdefault(name, StageSample())
            if leader.pid not in stage.pids:
                stage.pids.append(leader.pid)
                try:
                    stage.environ[leader.pid] = read_environ(leader.pid)
                except OSError as exc:
                    stage.environ_errors[leader.pid] = str(exc)
            stage.peak_rss_bytes = max(stage.peak_rss_bytes, rss)
            stage.peak_open_files = max(stage.peak_open_files, files)
            stage.samples += 1
