"""Faults a user can cause, each with the outcome a user needs (real processes, real files):
the sink deleted or made unwritable under the signal stage, two runs on one root, a finite
replay, a corrupt checkpoint, bad roots and bad values."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing, contextmanager
from pathlib import Path

import orjson
import pytest

from orchestrator.api import RunOptions, run_stack
from orchestrator.printer import Printer
from tests.integration.stack import FAST, Stack, wait_for
from tests.integration.test_run_status import all_ready, manifest
from tests.unit.helpers import REPO, run_module, write_config


def signal_status(root: Path) -> dict:
    return orjson.loads((root / "runtime/health/signal.json").read_bytes())


def sqlite_keys(db: Path, run_id: str) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [
            tuple(r) for r in conn.execute("SELECT symbol, ts_ms FROM signals WHERE run_id = ?", (run_id,))
        ]


def feature_keys(root: Path, run_id: str) -> list[tuple[str, int]]:
    rows = [orjson.loads(x) for p in (root / "data/preview").rglob("*.jsonl") if run_id in p.name
            for x in p.read_bytes().splitlines()]  # fmt: skip
    return [(r["symbol"], r["ts_ms"]) for r in rows]


@contextmanager
def unwritable(path: Path):
    """Make ``path`` unwritable even for root (the immutable flag); restored afterwards."""
    if os.geteuid() != 0:
        path.chmod(0o444)
    else:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o644)


# -- the SQLite sink under the signal stage ------------------------------------------------------
def test_a_deleted_signals_db_fails_the_stage_loudly_and_the_restart_writes_every_row_again(
    tmp_path: Path,
) -> None:
    changes = {**FAST, "orchestrator.restart_backoff_s": [0.5, 0.5], "orchestrator.health_interval_s": 1}
    cfg = write_config(tmp_path / "config.yaml", changes)
    root = tmp_path / "root"
    db = root / "runtime/signals.db"
    deleted_at: list[float] = []
    deleted_ms: list[int] = []

    def delete_when_rows_exist() -> None:
        ready = all_ready(root, ("harvest", "signal", "broker")) and db.exists()
        if ready and len(sqlite_keys(db, manifest(root)["run_id"])) >= 30:
            db.unlink()
            deleted_at.append(time.monotonic())
            deleted_ms.append(time.time_ns() // 1_000_000)

    stopped = False

    def stop() -> bool:
        nonlocal stopped
        if not deleted_at:
            delete_when_rows_exist()
            return False
        children = manifest(root)["children"]["signal"]
        # after the restart caught up with the run, let it go on a little and stop
        if (
            children["restarts"] == 1
            and children["status"] == "ready"
            and time.monotonic() - deleted_at[0] > 8
        ):
            stopped = True
        return stopped

    result = run_stack(
        RunOptions(config=cfg, sink="sqlite", enable=("harvest", "signal", "broker"), minutes=2, root=root),
        printer=Printer(live=False),
        stop=stop,
    )
    child = result.children["signal"]
    assert child.restarts == 1 and child.exit_codes[0] == 1, child
    log = (root / "logs/signal/stderr.log").read_text()
    assert f"ERROR sqlite sink: {db} was deleted" in log
    assert "signalling the run again from its start" in log
    events = [
        orjson.loads(x) for x in (root / "logs/orchestrator/orchestrator.log").read_bytes().splitlines()
    ]
    restart = next(e for e in events if e["event"] == "Restart" and e["name"] == "signal")
    # seen as the exit (code 1) or as the failed status, whichever the supervisor saw first
    assert restart["reason"] in ("exited with code 1", f"FAILED: sqlite sink: {db} was deleted")
    assert restart["ts_ms"] - deleted_ms[0] < 2000, "not noticed within one health tick"
    # nothing lost: every feature row up to the last signal is in the new file, once
    keys = sqlite_keys(db, result.run_id)
    assert [k for k, n in Counter(keys).items() if n > 1] == []
    last = {s: max(ts for sym, ts in keys if sym == s) for s, _ in keys}
    inside = [k for k in feature_keys(root, result.run_id) if k[1] <= last.get(k[0], -1)]
    assert sorted(inside) == sorted(keys)
    assert (
        result.report is not None and result.report.rows == len(keys) and result.report.missing_signals == 0
    )
    # the broker read the recreated file from its start without booking anything twice
    orders = [orjson.loads(x) for x in (root / "runtime/mock_orders.jsonl").read_bytes().splitlines()]
    ids = [o["order_id"] for o in orders if o["run_id"] == result.run_id]
    assert len(ids) == len(set(ids))


def test_a_failed_sink_shows_in_the_status_file_within_a_second_while_idle(make_stack) -> None:
    stack = make_stack("sqlite")
    stack.start("harvest")
    stack.wait_started("harvest")
    stack.start("signal")
    stack.wait_started("signal")
    wait_for(lambda: signal_status(stack.root)["counters"]["out"] >= 6, 60, "signal rows")
    assert stack.stop("harvest")[0] == 0  # no more input: the signal stage is idle
    wait_for(lambda: signal_status(stack.root)["caught_up_ts_ms"] is not None, 10, "the stage to be idle")
    assert signal_status(stack.root)["state"] == "running"
    db = stack.root / "runtime/signals.db"
    with unwritable(db):
        t0 = time.monotonic()
        wait_for(lambda: signal_status(stack.root)["state"] == "failed", 5, "the status to say failed")
        took = time.monotonic() - t0
        rc = stack.procs["signal"].wait(10)
    status = signal_status(stack.root)
    assert took < 1.0, f"the failure reached the status file after {took:.2f} s"
    assert rc == 1
    assert status["error"] == f"sqlite sink: {db} is not writable"
    assert f"ERROR sqlite sink: {db} is not writable" in stack.log("signal").read_text()


# -- one run per root ----------------------------------------------------------------------------
def test_a_second_orchestrator_on_the_same_root_exits_2_naming_the_holder(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.yaml", FAST)
    root = tmp_path / "root"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.run", "--config", str(cfg), "--root", str(root),
         "--minutes", "0", "--enable", "harvest"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: all_ready(root, ("harvest",)), 60, "the first run")
        run_id = manifest(root)["run_id"]
        t0 = time.monotonic()
        second = run_module("orchestrator.run", "--config", str(cfg), "--root", str(root), "--minutes", "1",
                            cwd=tmp_path)  # fmt: skip
        took = time.monotonic() - t0
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"orchestrator pid {first.pid}, run {run_id}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert took < 10
        # the second run touched nothing of the first: one manifest, one run in the log
        assert len(list((root / "artifacts/run_logs").glob("*.json"))) == 1
        assert orjson.loads((root / "runtime/health/harvest.json").read_bytes())["run_id"] == run_id
        # a stage started by hand with another run id refuses the root too
        foreign = subprocess.run(
            [sys.executable, "-m", "mcp.signal_server.app", "--config", str(cfg), "--root", str(root)],
            env={**env, "V13_RUN_ID": "20260101T000000Z-000000"}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert foreign.returncode == 2 and f"pid {first.pid}, run {run_id}" in foreign.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 143


def test_stages_by_hand_join_the_run_that_holds_the_root(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "root", "jsonl", {**FAST})
    env = {k: v for k, v in stack.env().items() if k != "V13_RUN_ID"}
    procs = []
    try:
        for name, module in (("harvest", "mcp.harvest_server.app"), ("signal", "mcp.signal_server.app")):
            stack.log(name).parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", module, "--config", str(stack.config)]
            with open(stack.log(name), "ab") as err:
                procs.append(
                    subprocess.Popen(argv, cwd=stack.root, env=env, stderr=err, stdout=subprocess.DEVNULL)
                )
            wait_for(lambda n=name: "Server started" in stack.log(n).read_text(), 60, f"{name} started")
        ids = {n: orjson.loads((stack.root / f"runtime/health/{n}.json").read_bytes())["run_id"]
               for n in ("harvest", "signal")}  # fmt: skip
        assert ids["harvest"] == ids["signal"]
        assert orjson.loads((stack.root / "runtime/run.lock").read_bytes())["what"] == "stage harvest"
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


# -- a finite source -------------------------------------------------------------------------------
def replay_run(tmp_path: Path, sink: str, *sim_args: str) -> tuple[Path, dict]:
    """Record 3 simulated minutes of two symbols, replay them through the orchestrator until
    drained; the root and the manifest of a run that ended completed, without a restart."""
    data = tmp_path / "recorded"
    sim = run_module("v13.sim", "--symbols", "BTCUSDT,ETHUSDT", "--minutes", "3", "--seed", "5",
                     *sim_args, "--out", str(data))  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    cfg = write_config(tmp_path / "config.yaml", {**FAST, "symbols": ["BTCUSDT", "ETHUSDT"],
                                                  "source.kind": "replay", "source.replay.path": str(data),
                                                  "orchestrator.health_interval_s": 1})  # fmt: skip
    root = tmp_path / "root"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.run", "--config", str(cfg), "--root", str(root),
         "--minutes", "0", "--sink", sink],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = manifest(root)
    assert (m["status"], m["ended_by"]) == ("completed", "drained")
    assert all(c["restarts"] == 0 for c in m["children"].values())
    return root, m


def test_a_finite_replay_ends_completed_when_drained_with_every_feature_row_signalled(tmp_path: Path) -> None:
    root, m = replay_run(tmp_path, "sqlite")
    run_id = m["run_id"]
    harvest = orjson.loads((root / "runtime/health/harvest.json").read_bytes())
    assert harvest["exhausted_ts_ms"] is not None
    features = feature_keys(root, run_id)
    assert len(features) == 2 * 180  # 3 simulated minutes of two symbols, one row a second each
    assert sorted(sqlite_keys(root / "runtime/signals.db", run_id)) == sorted(features)
    report = orjson.loads(Path(m["report_paths"]["json"]).read_bytes())
    assert (report["rows"], report["unprocessed_tail"], report["missing_signals"]) == (360, 0, 0)
    orders = [orjson.loads(x) for x in (root / "runtime/mock_orders.jsonl").read_bytes().splitlines()]
    assert report["orders"]["count"] == len(orders) > 0


def test_a_replay_across_midnight_utc_loses_nothing_and_leaves_no_spare_or_part(tmp_path: Path) -> None:
    """00:00 UTC: every stream opens a segment in the new day's partition (directories made ahead,
    spare files linked into place, features sealed before raw rows); the run must not notice."""
    root, m = replay_run(tmp_path, "jsonl", "--start", "2025-01-01T23:58:30Z")
    features = feature_keys(root, m["run_id"])
    assert len(features) == len(set(features)) == 2 * 180
    midnight = 1_735_776_000_000
    assert sum(ts <= midnight for _, ts in features) == 2 * 90  # 23:58:31 .. 00:00:00, per symbol
    assert sorted(p.name for p in (root / "data/preview").iterdir()) == ["20250101", "20250102"]
    signals = [orjson.loads(x) for p in (root / "runtime/ready/signal").rglob("*.jsonl")
               for x in p.read_bytes().splitlines()]  # fmt: skip
    assert sorted((r["symbol"], r["ts_ms"]) for r in signals) == sorted(features)
    report = orjson.loads(Path(m["report_paths"]["json"]).read_bytes())
    assert (report["rows"], report["unprocessed_tail"], report["missing_signals"]) == (360, 0, 0)
    assert list(root.rglob("*.spare")) == [] and list(root.rglob("*.part")) == []


# -- a corrupt checkpoint --------------------------------------------------------------------------
def test_a_checkpoint_of_the_wrong_shape_is_one_warning_and_a_fresh_start(make_stack) -> None:
    stack = make_stack("sqlite")
    state = stack.root / "runtime/state/signal.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(orjson.dumps({"run_id": stack.run_id, "state": {"positions": {"BTCUSDT/features": 7}}}))
    stack.start("harvest")
    stack.wait_started("harvest")
    stack.start("signal")
    stack.wait_started("signal")
    wait_for(lambda: signal_status(stack.root)["counters"]["out"] >= 6, 60, "signal rows")
    assert stack.stop("signal")[0] == 0
    log = stack.log("signal").read_text()
    assert log.count("WARNING checkpoint") == 1 and "has the wrong shape" in log
    assert "Traceback" not in log


# -- bad roots and values --------------------------------------------------------------------------
def test_bad_roots_exit_2_with_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    cases = [(Path("/etc/hostname"), "is not a directory")]
    with unwritable(locked):
        cases.append((locked, "is not writable by this user"))
        for root, needle in cases:
            proc = run_module("orchestrator.run", "--root", str(root), "--minutes", "1", cwd=tmp_path)
            assert proc.returncode == 2, (root, proc.stderr)
            assert needle in proc.stderr and str(root) in proc.stderr and "Traceback" not in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("changes", "args", "needle"),
    [
        (
            {"signal.queue_max": True},
            (),
            "key 'signal.queue_max': Input should be a valid integer (got True)",
        ),
        ({"features.ofi_weights": [1.0]}, (), "key 'features.ofi_weights': Value error, 1 weight(s) for"),
        ({}, ("--minutes", "nan"), "--minutes must be 0 (until stopped) or a positive number, got nan"),
        ({}, ("--minutes", "inf"), "--minutes must be 0 (until stopped) or a positive number, got inf"),
        ({}, ("--symbols", "btc-usdt"), "--symbols 'btc-usdt' must be comma-separated symbols"),
    ],
)
def test_bad_values_exit_2_naming_the_key_or_option(tmp_path: Path, changes, args, needle) -> None:
    cfg = write_config(tmp_path / "config.yaml", changes)
    proc = run_module(
        "orchestrator.run", "--config", str(cfg), "--root", str(tmp_path / "r"), *args, cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists(), "a usage error must not leave files behind"


def test_lower_case_symbols_are_upper_cased(tmp_path: Path) -> None:
    proc = run_module("orchestrator.run", "--symbols", "btcusdt,ethusdt", "--enable", "harvest",
                      "--minutes", "0.05", "--root", str(tmp_path / "r"), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = manifest(tmp_path / "r")
    assert m["symbols"] == ["BTCUSDT", "ETHUSDT"]
