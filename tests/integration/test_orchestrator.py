"""The orchestrator with real processes: restarts, degradation, process-tree shutdown, no pipe
blocking, the env whitelist, SIGTERM mid-run; tiny inline children force each behaviour."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import orjson
import psutil
import pytest

from orchestrator.events import EventLog
from orchestrator.probes import LogKeyword
from orchestrator.spec import ProcessSpec, RestartPolicy, child_env
from orchestrator.supervisor import ChildStatus, Supervisor
from tests.integration.stack import FAST, wait_for
from tests.unit.helpers import REPO, run_module, write_config
from v13.layout import Layout

READY = "import sys; print('Server started', file=sys.stderr, flush=True)\n"


def spec(tmp_path: Path, name: str, code: str, **kw) -> ProcessSpec:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(code))
    return ProcessSpec(name, [sys.executable, str(script)], child_env("test-run", {}), LogKeyword(), **kw)


@pytest.fixture
def supervisor(tmp_path: Path):
    logs: list[EventLog] = []

    def make(specs: list[ProcessSpec], grace_s: float = 2.0) -> tuple[Supervisor, Path]:
        path = tmp_path / "orchestrator.log"
        logs.append(EventLog(path, "test-run"))
        layout = Layout(tmp_path, *(tmp_path / d for d in ("data", "runtime", "logs", "artifacts")))
        return Supervisor(specs, cwd=tmp_path, layout=layout, events=logs[-1], grace_s=grace_s), path

    yield make
    for log in logs:
        log.close()


def events(log: Path) -> list[dict]:
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


def run_until(sup: Supervisor, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        sup.poll()
        time.sleep(0.05)


def test_a_child_crashing_at_start_is_restarted_twice_with_backoff_then_degraded(
    tmp_path: Path, supervisor
) -> None:
    crash = spec(
        tmp_path, "crasher", "import sys; sys.exit(7)\n", restart_policy=RestartPolicy(2, (1.0, 2.0))
    )
    steady = spec(tmp_path, "steady", READY + "import time; time.sleep(60)\n")
    sup, log = supervisor([crash, steady])
    sup.start_all()
    try:
        run_until(sup, lambda: sup.procs[0].status is ChildStatus.DEGRADED, 30)
        time.sleep(0.5)
        sup.poll()
        crasher, other = sup.procs
        assert crasher.restarts == 2 and len(crasher.pids) == 3
        assert crasher.exit_codes == [7, 7, 7]
        starts = [t / 1000 for t in crasher.start_ts_ms]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert 1.0 <= gaps[0] < 2.5 and 2.0 <= gaps[1] < 3.5, gaps
        assert other.status is ChildStatus.READY and other.child.poll() is None
        kinds = [(e["event"], e.get("name")) for e in events(log)]
        assert kinds.count(("Restart", "crasher")) == 2 and kinds.count(("Degraded", "crasher")) == 1
        assert [e["backoff_s"] for e in events(log) if e["event"] == "Restart"] == [1.0, 2.0]
    finally:
        sup.graceful_shutdown()


def test_a_child_exiting_with_a_usage_error_is_not_restarted(tmp_path: Path, supervisor) -> None:
    code = "import sys\nprint('prog: error: no such replay path', file=sys.stderr)\nsys.exit(2)\n"
    usage = spec(tmp_path, "misconfigured", code, restart_policy=RestartPolicy(2, (1.0, 2.0)))
    sup, log = supervisor([usage])
    sup.start_all()
    try:
        run_until(sup, lambda: sup.procs[0].status is not ChildStatus.STARTING, 30)
        ps = sup.procs[0]
        assert ps.status is ChildStatus.DEGRADED
        assert ps.restarts == 0 and len(ps.pids) == 1 and ps.exit_codes == [2]
        assert ps.degraded_reason == (
            "not restarted (a usage error); last failure: exited with code 2: "
            "prog: error: no such replay path"
        )
        said = [e["event"] for e in events(log) if e.get("name") == "misconfigured"]
        assert said == ["Start", "Exit", "Degraded"]
    finally:
        sup.graceful_shutdown()


def test_a_child_waiting_for_its_restart_when_the_run_ends_is_degraded(tmp_path: Path, supervisor) -> None:
    crash = spec(tmp_path, "crasher", "import sys; sys.exit(7)\n", restart_policy=RestartPolicy(2, (60.0,)))
    steady = spec(tmp_path, "steady", READY + "import time; time.sleep(60)\n")
    sup, _ = supervisor([crash, steady])
    sup.start_all()
    try:
        run_until(sup, lambda: sup.procs[0].status is ChildStatus.BACKOFF, 30)
        sup.degrade_waiting()
        crasher, other = sup.procs
        assert crasher.status is ChildStatus.DEGRADED
        assert crasher.degraded_reason == (
            "the run ended while it waited to restart; last failure: exited with code 7"
        )
        assert [ps.name for ps in sup.degraded] == ["crasher"]
        assert other.degraded_reason is None
    finally:
        sup.graceful_shutdown()


def test_a_replay_source_that_is_not_there_exits_2_before_any_stage_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path / "replay.yaml", {"source.kind": "replay", "source.replay.path": "nope"})
    proc = run_module("orchestrator.run", "--config", str(config), "--minutes", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"python -m orchestrator.run: error: replay path {tmp_path / 'nope'} does not exist; "
        "set source.replay.path\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.yaml"]  # no stage, no manifest


STUBBORN = (
    READY
    + """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print(f"grandchild {grandchild.pid}", flush=True)
time.sleep(600)
"""
)


def test_a_child_ignoring_sigterm_and_its_grandchild_are_both_gone_after_shutdown(
    tmp_path: Path, supervisor
) -> None:
    sup, log = supervisor([spec(tmp_path, "stubborn", STUBBORN)], grace_s=1.0)
    sup.start_all()
    out = tmp_path / "logs/stubborn/stdout.log"
    wait_for(lambda: out.exists() and "grandchild" in out.read_text(), 20, "the grandchild")
    run_until(sup, lambda: sup.procs[0].status is ChildStatus.READY, 20)
    pid = sup.procs[0].child.pid
    grandchild = int(out.read_text().split()[1])
    t0 = time.monotonic()
    sup.graceful_shutdown()
    took = time.monotonic() - t0
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    assert not psutil.pid_exists(pid)
    assert took < 1.0 + 2.0 + 5.0
    stop = next(e for e in events(log) if e["event"] == "Stop")
    assert stop["how"] == "sigkill"


def test_a_child_writing_megabytes_to_stdout_does_not_block(tmp_path: Path, supervisor) -> None:
    flood = "import sys\nfor _ in range(400): sys.stdout.write('x' * 65536 + '\\n')\nsys.stdout.flush()\n"
    sup, _ = supervisor([spec(tmp_path, "flood", flood + READY + "import time; time.sleep(60)\n")])
    sup.start_all()
    try:
        run_until(sup, lambda: sup.procs[0].status is ChildStatus.READY, 30)
        assert (tmp_path / "logs/flood/stdout.log").stat().st_size >= 400 * 65536
    finally:
        sup.graceful_shutdown()


ALLOWED_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONPATH", "V13_RUN_ID", "V13_SINK", "V13_OUTPUT_DIR",
               "PAPER_ENABLE", "LANG", "LC_ALL", "TZ", "HOME", "LC_CTYPE"}  # fmt: skip


def proc_environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_text().split("\0")
    return dict(x.split("=", 1) for x in items if "=" in x)


@pytest.fixture(scope="module")
def sigterm_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An orchestrator run (--minutes 0) stopped by SIGTERM once all four stages are ready."""
    root = tmp_path_factory.mktemp("orch")
    cfg = write_config(root / "config.yaml", FAST)
    env = {**os.environ, "FAKE_EXCHANGE_API_KEY": "do-not-leak", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.run", "--config", str(cfg), "--sink", "sqlite", "--minutes", "0",
         "--root", str(root)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    manifests = root / "artifacts/run_logs"

    def all_ready() -> bool:
        files = list(manifests.glob("*.json"))
        if not files:
            return False
        children = orjson.loads(files[0].read_bytes())["children"]
        return len(children) == 4 and all(c["status"] == "ready" for c in children.values())

    try:
        wait_for(all_ready, 90, "four ready children")
        manifest = orjson.loads(next(manifests.glob("*.json")).read_bytes())
        pids = {name: c["pids"][-1] for name, c in manifest["children"].items()}
        environs = {name: proc_environ(pid) for name, pid in pids.items()}
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return {"root": root, "rc": proc.returncode, "took": took, "pids": pids, "env": environs, "out": out,
            "manifest": orjson.loads(next(manifests.glob("*.json")).read_bytes())}  # fmt: skip


def test_child_env_holds_only_the_whitelist_and_what_python_needs(sigterm_run) -> None:
    for name, env in sigterm_run["env"].items():
        assert set(env) <= ALLOWED_ENV, f"{name} got {set(env) - ALLOWED_ENV}"
        assert "FAKE_EXCHANGE_API_KEY" not in env
        assert env["V13_SINK"] == "sqlite" and env["PYTHONUNBUFFERED"] == "1"
        assert env["V13_RUN_ID"] == sigterm_run["manifest"]["run_id"]


def test_sigterm_mid_run_stops_everything_and_finalises_manifest_and_report(sigterm_run) -> None:
    assert sigterm_run["rc"] == 143, sigterm_run["out"]
    assert sigterm_run["took"] < 20
    for pid in sigterm_run["pids"].values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    manifest = sigterm_run["manifest"]
    assert manifest["status"] == "interrupted_SIGTERM" and manifest["exit_code"] == 143
    assert all(c["status"] == "stopped" and c["exit_codes"][-1] == 0 for c in manifest["children"].values())
    report = Path(manifest["report_paths"]["json"])
    assert report.exists() and orjson.loads(report.read_bytes())["run_id"] == manifest["run_id"]
    log = (sigterm_run["root"] / "logs/orchestrator/orchestrator.log").read_text()
    for event in ('"Start"', '"Ready"', '"Stop"', '"Report"'):
        assert event in log


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--enable", "harvest,mining"), "unknown module(s) mining"),
        (("--sink", "parquet"), "is not a sink"),
        (("--config", "/no/such.yaml"), "does not exist"),
        (("--minutes", "-3"), "--minutes must be"),
    ],
)
def test_cli_mistakes_exit_2_with_one_line(tmp_path: Path, args, needle) -> None:
    proc = run_module("orchestrator.run", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_empty_enable_runs_the_self_check_only(tmp_path: Path) -> None:
    proc = run_module(
        "orchestrator.run", "--enable", "", "--config", str(REPO / "config/defaults.yaml"), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-check passed" in proc.stdout and "ok   disk" in proc.stdout
    assert not (tmp_path / "logs/orchestrator").exists()


def test_help_shows_examples() -> None:
    proc = run_module("orchestrator.run", "--help")
    assert proc.returncode == 0 and "Examples:" in proc.stdout and "--minutes 0" in proc.stdout


def test_a_second_interrupt_cuts_the_grace_period_short(tmp_path: Path, supervisor) -> None:
    ignore = READY + "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n"
    sup, log = supervisor([spec(tmp_path, "stubborn", ignore)], grace_s=30.0)
    sup.start_all()
    run_until(sup, lambda: sup.procs[0].status is ChildStatus.READY, 20)
    pid = sup.procs[0].child.pid
    t0 = time.monotonic()
    stopper = threading.Timer(0.5, lambda: setattr(sup, "force", True))  # the second Ctrl-C
    stopper.start()
    sup.graceful_shutdown()
    took = time.monotonic() - t0
    assert took < 5.0, f"shutdown took {took:.1f} s despite the forced kill"
    assert not psutil.pid_exists(pid)
    assert next(e for e in events(log) if e["event"] == "Stop")["how"] == "sigkill"


def test_stages_stop_when_the_orchestrator_is_killed_with_sigkill(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.yaml", FAST)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.run", "--config", str(cfg), "--minutes", "0",
         "--root", str(tmp_path)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    manifests = tmp_path / "artifacts/run_logs"

    def children() -> dict:
        files = list(manifests.glob("*.json"))
        return orjson.loads(files[0].read_bytes())["children"] if files else {}

    try:
        wait_for(lambda: len(children()) == 4 and all(c["status"] == "ready" for c in children().values()),
                 90, "four ready children")  # fmt: skip
        pids = [c["pids"][-1] for c in children().values()]
        proc.kill()
        proc.wait()

        def all_gone() -> bool:
            return all(
                not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids
            )

        wait_for(all_gone, 10, "the orphaned stages to stop")
        for name in ("harvest", "signal", "broker", "report"):
            log = (tmp_path / "logs" / name / "stderr.log").read_text()
            assert "Stopping signal=SIGTERM" in log and "Stopped" in log, log[-500:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sink", ["jsonl", "sqlite"])
def test_the_signal_stage_is_ready_once_its_sink_is_open_before_any_row(tmp_path: Path, sink: str) -> None:
    """Alone, without a harvest, the signal stage never gets a feature row: it is ready all the
    same, and a slow or failing upstream is not blamed on it (ReadyTimeout, restarts)."""
    cfg = write_config(tmp_path / "config.yaml", FAST)
    proc = run_module(
        "orchestrator.run", "--config", str(cfg), "--enable", "signal", "--sink", sink, "--minutes", "0.05",
        "--root", str(tmp_path), cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = events(tmp_path / "logs/orchestrator/orchestrator.log")
    assert [e["name"] for e in log if e["event"] == "Ready"] == ["signal"]
    assert not [e for e in log if e["event"] in ("ReadyTimeout", "Restart")]
    if sink == "sqlite":
        with closing(sqlite3.connect(tmp_path / "runtime/signals.db")) as conn:
            assert conn.execute("SELECT COUNT(*) FROM signals").fetchone() == (0,)
    else:
        assert not [p for p in (tmp_path / "runtime").rglob("*.jsonl*")]
