"""Run the stack as a user does: ``python -m orchestrator.run`` in a subprocess, its output to a
file, the stage processes watched by the plugin's own :class:`StageSampler`.

The exit code is the process's, not a Python object's; if the test session is interrupted, the
orchestrator gets SIGTERM and is waited for (it stops its stages in reverse order).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_v13.sampler import StageSample, StageSampler
from pytest_v13.settings import Settings

__all__ = ["StackProcess", "run_stack_process"]

STOP_WAIT_S = 120  # a stack asked to stop gets this long before it is killed


@dataclass(frozen=True)
class StackProcess:
    """What running the orchestrator left: its exit code, output and the sampler's view."""

    sink: str
    root: Path
    argv: list[str]
    exit_code: int
    output: Path
    started_at: float  # wall clock, s
    ended_at: float
    stages: dict[str, StageSample]
    sampler_errors: list[str]

    def output_text(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except OSError:
            return ""


def run_stack_process(
    settings: Settings, sink: str, root: Path, output: Path, timeout_s: float
) -> StackProcess:
    """Run the orchestrator for ``settings.minutes`` on ``sink`` in ``root``; block until it ends."""
    argv = [sys.executable, "-m", "orchestrator.run", "--sink", sink, "--minutes", f"{settings.minutes:g}",
            "--root", str(root), "--enable", ",".join(settings.enable)]  # fmt: skip
    if settings.config is not None:
        argv += ["--config", str(settings.config.resolve())]
    if settings.symbols:
        argv += ["--symbols", ",".join(settings.symbols)]
    root.mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(output, "ab") as out:
        proc = subprocess.Popen(argv, cwd=root, env=dict(os.environ), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    sampler = StageSampler(proc.pid)
    sampler.start()
    try:
        rc = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        rc = _stop(proc)
    except BaseException:  # KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one by the plugin)
        _stop(proc)
        raise
    finally:
        sampler.stop()
    return StackProcess(
        sink=sink, root=root, argv=argv, exit_code=rc, output=output, started_at=started,
        ended_at=time.time(), stages=sampler.stages, sampler_errors=sampler.errors,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
