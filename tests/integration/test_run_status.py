"""Every way a run ends, through run_stack and through the CLI: the exit code, the manifest and
the Run end event agree, and shutdown never overwrites the status (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import psutil
import pytest

from orchestrator.api import RunOptions, RunResult, run_stack
from orchestrator.printer import Printer
from tests.integration.stack import FAST, wait_for
from tests.unit.helpers import REPO, write_config

QUICK = {**FAST, "symbols": ["BTCUSDT"], "orchestrator.health_interval_s": 1}
DROPS = {"signal.queue_max": 1, "symbols": FAST["symbols"]}  # three rows a batch, room for one
DEGRADE = {"orchestrator.restart_backoff_s": [0.2, 0.2]}


def manifest(root: Path) -> dict:
    files = list((root / "artifacts/run_logs").glob("run_manifest_*.json"))
    return orjson.loads(files[0].read_bytes()) if files else {}


def all_ready(root: Path, names: tuple[str, ...]) -> bool:
    children = manifest(root).get("children", {})
    return set(children) == set(names) and all(c["status"] == "ready" for c in children.values())


def end_event(root: Path) -> dict:
    events = [
        orjson.loads(x) for x in (root / "logs/orchestrator/orchestrator.log").read_bytes().splitlines()
    ]
    ends = [e for e in events if e["event"] == "Run" and e["phase"] == "end"]
    assert len(ends) == 1, ends
    return ends[0]


def kill_signal_stage_three_times(root: Path) -> None:
    """kill -9 the signal stage each time it is ready, until it is given up (degraded)."""

    def stage() -> dict:
        return manifest(root).get("children", {}).get("signal", {"pids": [], "status": "-"})

    for attempt in range(3):
        wait_for(lambda a=attempt: len(stage()["pids"]) == a + 1 and stage()["status"] == "ready",
                 60, f"signal attempt {attempt}")  # fmt: skip
        os.kill(stage()["pids"][-1], signal.SIGKILL)
    wait_for(lambda: stage()["status"] == "degraded", 30, "degraded")


def assert_outcome(root: Path, status: str, code: int) -> dict:
    m = manifest(root)
    assert (m["status"], m["exit_code"]) == (status, code)
    end = end_event(root)
    assert (end["status"], end["exit_code"]) == (status, code)
    assert Path(m["report_paths"]["json"]).is_file(), "the final report was not written"
    for child in m["children"].values():
        for pid in child["pids"]:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    return m


# -- through run_stack -------------------------------------------------------------------------
def api_run(tmp_path: Path, changes: dict, enable: tuple[str, ...], minutes: float,
            during: Callable[[Path], None] | None = None) -> RunResult:  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = write_config(tmp_path / "config.yaml", {**QUICK, **changes})
    root = tmp_path / "root"
    worker = threading.Thread(target=during, args=(root,), daemon=True) if during else None
    if worker:
        worker.start()
    result = run_stack(
        RunOptions(config=cfg, enable=enable, minutes=minutes, root=root), printer=Printer(live=False)
    )
    if worker:
        worker.join(5)
    return result


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_run_stack_stopped_by_a_signal(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    def send(root: Path) -> None:
        wait_for(lambda: all_ready(root, ("harvest",)), 60, "harvest ready")
        os.kill(os.getpid(), sig)  # run_stack's handler takes it in the main thread

    result = api_run(tmp_path, {}, ("harvest",), 0, send)
    assert (result.status, result.exit_code, result.ended_by) == (f"interrupted_{sig.name}", code, "signal")
    assert_outcome(result.root, f"interrupted_{sig.name}", code)


def test_run_stack_completed_and_early_stop(tmp_path: Path) -> None:
    done = api_run(tmp_path / "a", {}, ("harvest", "signal"), 0.1)
    assert (done.status, done.exit_code, done.ended_by) == ("completed", 0, "time")
    assert_outcome(done.root, "completed", 0)
    early = api_run(tmp_path / "b", DROPS, ("harvest", "signal"), 1)
    assert (early.status, early.exit_code, early.ended_by) == ("early_stop", 3, "early_stop")
    assert any(f.startswith("DROPPED") for f in early.early_stop)
    assert_outcome(early.root, "early_stop", 3)


def test_run_stack_degraded_when_a_stage_is_killed_three_times(tmp_path: Path) -> None:
    result = api_run(tmp_path, DEGRADE, ("harvest", "signal"), 0.4, kill_signal_stage_three_times)
    assert (result.status, result.exit_code) == ("degraded", 1)
    signal_child = result.children["signal"]
    assert signal_child.status == "degraded" and signal_child.restarts == 2
    assert signal_child.exit_codes[:3] == [-9, -9, -9]
    m = assert_outcome(result.root, "degraded", 1)
    assert m["children"]["signal"]["status"] == "degraded"
    assert "exited with code -9" in m["children"]["signal"]["degraded_reason"]
    assert m["children"]["harvest"]["status"] == "stopped"
    assert end_event(result.root)["degraded"] == {"signal": m["children"]["signal"]["degraded_reason"]}


# -- through the CLI ---------------------------------------------------------------------------
def cli(tmp_path: Path, changes: dict, *args: str) -> tuple[subprocess.Popen[str], Path]:
    cfg = write_config(tmp_path / "config.yaml", {**QUICK, **changes})
    root = tmp_path / "root"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.run", "--config", str(cfg), "--root", str(root), *args],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return proc, root


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_cli_stopped_by_a_signal(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    proc, root = cli(tmp_path, {}, "--enable", "harvest,signal", "--minutes", "0")
    wait_for(lambda: all_ready(root, ("harvest", "signal")), 60, "stages ready")
    proc.send_signal(sig)
    rc, out = finish(proc)
    assert rc == code, out
    assert "Traceback" not in out
    assert_outcome(root, f"interrupted_{sig.name}", code)


def test_cli_completed(tmp_path: Path) -> None:
    proc, root = cli(tmp_path, {}, "--enable", "harvest", "--minutes", "0.1")
    rc, out = finish(proc)
    assert rc == 0, out
    assert_outcome(root, "completed", 0)


def test_cli_early_stop(tmp_path: Path) -> None:
    proc, root = cli(tmp_path, DROPS, "--enable", "harvest,signal", "--minutes", "1")
    rc, out = finish(proc)
    assert rc == 3, out
    assert_outcome(root, "early_stop", 3)
    assert "DROPPED" in out


def test_cli_degraded_names_the_stage_and_why(tmp_path: Path) -> None:
    proc, root = cli(tmp_path, DEGRADE, "--enable", "harvest,signal", "--minutes", "0.4")
    kill_signal_stage_three_times(root)
    rc, out = finish(proc)
    assert rc == 1, out
    m = assert_outcome(root, "degraded", 1)
    assert m["children"]["signal"]["status"] == "degraded"
    assert "signal degraded: 2 restart(s) used up; last failure: exited with code -9" in out
