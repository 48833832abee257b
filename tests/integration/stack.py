"""Start and stop real stage processes for the integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit.helpers import REPO, write_config
from v13.fsutil import new_run_id

STAGES = {
    "harvest": ("mcp.harvest_server.app",),
    "signal": ("mcp.signal_server.app",),
    "broker": ("mcp.broker_gateway_server.app", "--mock", "1"),
    "report": ("mcp.report_server.app", "--tail", "./runtime/ready/signal"),
}

FAST = {
    "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
    "source.sim.preset": "strong",
    "features.z_warmup": 5,
    "features.z_window": 60,
    "strategy_mode.min_dwell_s": 5,
    "segments.rotate_seconds": 3,
    "report.interval_s": 2,
}


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Stack:
    root: Path
    sink: str
    changes: dict[str, object] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = write_config(self.root / "config.yaml", {**FAST, **self.changes})

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO),
            "V13_RUN_ID": self.run_id,
            "V13_SINK": self.sink,
            "V13_OUTPUT_DIR": "./runtime",
        }

    def log(self, name: str) -> Path:
        return self.root / "logs" / name / "stderr.log"

    def start(self, name: str) -> subprocess.Popen[bytes]:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", *STAGES[name], "--config", str(self.config)],
                cwd=self.root, env=self.env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def wait_started(self, name: str, timeout: float = 30) -> None:
        proc = self.procs[name]

        def started() -> bool:
            assert proc.poll() is None, f"{name} exited {proc.returncode}: {self.log(name).read_text()}"
            return "Server started" in self.log(name).read_text()

        wait_for(started, timeout, f"{name} to log Server started")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, float]:
        proc = self.procs[name]
        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=timeout + 5)
        return rc, time.monotonic() - t0

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
