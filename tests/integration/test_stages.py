"""The four stage processes: start, readiness, outputs, clean SIGTERM, crash recovery, recount."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import orjson
import psutil
import pytest

from tests.integration.stack import Stack, wait_for
from tests.unit.helpers import run_module
from v13.config import load_config
from v13.layout import Layout
from v13.report import build_report

SINKS = ["jsonl", "sqlite"]


def jsonl_rows(root: Path, run_id: str | None = None) -> list[dict]:
    rows = [orjson.loads(x) for p in sorted(root.rglob("*.jsonl")) for x in p.read_bytes().splitlines()]
    return [r for r in rows if run_id is None or r.get("run_id", run_id) == run_id]


def sink_rows(stack: Stack) -> list[dict]:
    """Signal rows read straight from the sink's files, without the v13 readers."""
    if stack.sink == "jsonl":
        return jsonl_rows(stack.root / "runtime/ready/signal", stack.run_id)
    with closing(sqlite3.connect(stack.root / "runtime/signals.db")) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM signals WHERE run_id = ?", (stack.run_id,))]


def feature_keys(stack: Stack) -> list[tuple[str, int]]:
    return [(r["symbol"], r["ts_ms"]) for r in jsonl_rows(stack.root / "data/preview")]


def assert_batch_features_equal_the_harvests(stack: Stack) -> None:
    """``python -m v13.features`` on the harvest's raw rows gives its feature rows, byte for byte."""
    out = stack.root / "batch.jsonl"
    proc = run_module("v13.features", "--config", str(stack.config), "--raw", str(stack.root / "data"),
                      "--out", str(out), "--deadletter", str(stack.root / "batch-dl"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    harvest = sorted(
        x for p in (stack.root / "data/preview").rglob("*.jsonl") for x in p.read_bytes().splitlines()
    )
    assert sorted(out.read_bytes().splitlines()) == harvest


def assert_covered(signal_keys: list, feature_keys: list, tail_s: int = 0) -> None:
    """One signal row per feature row, except the features written after the signal stage
    stopped (harvest stops last): at most ``tail_s`` seconds per symbol."""
    assert [k for k, n in Counter(signal_keys).items() if n > 1] == [], "duplicated signal rows"
    assert set(signal_keys) <= set(feature_keys)
    last = {}
    for sym, ts in signal_keys:
        last[sym] = max(ts, last.get(sym, 0))
    missing = [(sym, ts) for sym, ts in feature_keys if (sym, ts) not in set(signal_keys)]
    assert all(ts > last.get(sym, 0) for sym, ts in missing), "a feature row inside the run has no signal"
    assert len(missing) <= tail_s * len(last)


@pytest.mark.parametrize("sink", SINKS)
def test_four_stages_run_stop_cleanly_and_the_report_matches_a_recount(make_stack, sink: str) -> None:
    stack = make_stack(sink)
    stack.start("harvest")
    stack.wait_started("harvest")
    for name in ("signal", "broker", "report"):
        stack.start(name)
    for name in ("signal", "broker", "report"):
        stack.wait_started(name)
    # the report's refreshes yield the CPU to the live stages (report.niceness)
    niceness = {name: psutil.Process(stack.procs[name].pid).nice() for name in stack.procs}
    base = psutil.Process().nice()
    assert niceness == {"harvest": base, "signal": base, "broker": base, "report": min(19, base + 10)}
    orders = stack.root / "runtime/mock_orders.jsonl"

    def both_sides() -> bool:
        sides = {r["side"] for r in jsonl_rows(orders.parent) if "side" in r} if orders.exists() else set()
        return sides == {"BUY", "SELL"}

    wait_for(both_sides, 90, "orders on both sides")
    wait_for(lambda: len(list((stack.root / "logs/report").glob("summary_*.png"))) == 1, 30, "the chart")
    for name in ("report", "broker", "signal", "harvest"):
        rc, took = stack.stop(name)
        assert rc == 0, stack.log(name).read_text()
        assert took < 5.0, f"{name} took {took:.1f} s to stop"
        assert "Stopped" in stack.log(name).read_text()
        assert "Traceback" not in stack.log(name).read_text()
    assert list(stack.root.rglob("*.part")) == []
    assert list(stack.root.rglob(".*.tmp")) == []
    for name in ("harvest", "signal", "broker", "report"):
        status = orjson.loads((stack.root / f"runtime/health/{name}.json").read_bytes())
        assert status["run_id"] == stack.run_id and status["counters"]["dropped"] == 0

    assert len(list((stack.root / "data/raw").rglob("trades/*.jsonl"))) >= 3
    assert len(list((stack.root / "data/preview").rglob("features/*.jsonl"))) >= 3
    assert_batch_features_equal_the_harvests(stack)
    if sink == "jsonl":
        assert len(list((stack.root / "runtime/ready/signal").rglob("*.jsonl"))) >= 3

    rows = sink_rows(stack)
    assert_covered([(r["symbol"], r["ts_ms"]) for r in rows], feature_keys(stack), tail_s=5)
    confirmed = Counter(r["signal_type"] for r in rows if r["confirm"])
    order_rows = [r for r in jsonl_rows(orders.parent) if "order_id" in r]

    cfg = load_config(stack.config, environ={"V13_SINK": sink, "V13_OUTPUT_DIR": "./runtime"})
    report = build_report(cfg, Layout.from_config(cfg, stack.root), stack.run_id)
    assert report.rows == len(rows)
    assert report.total == sum(confirmed.values()) > 0
    assert (report.buy_count, report.sell_count) == (confirmed["buy"], confirmed["sell"])
    assert (report.strong_buy_count, report.strong_sell_count) == (
        confirmed["strong_buy"],
        confirmed["strong_sell"],
    )
    assert report.orders.count == len(order_rows)
    assert report.orders.buy == sum(o["side"] == "BUY" for o in order_rows)
    assert sum(m.count for m in report.per_minute) == report.total
    assert report.dropped == 0 and report.warnings == []

    live = orjson.loads(next((stack.root / "logs/report").glob("summary_*.json")).read_bytes())
    for key in (
        "total",
        "buy_ratio",
        "strong_ratio",
        "per_minute",
        "dropped",
        "warnings",
        "last_5min",
        "orders",
    ):
        assert key in live
    assert live["run_id"] == stack.run_id and live["sink"] == sink


@pytest.mark.parametrize("sink", SINKS)
def test_kill_9_of_the_signal_stage_loses_and_duplicates_nothing(make_stack, sink: str) -> None:
    stack = make_stack(sink)
    stack.start("harvest")
    stack.wait_started("harvest")
    stack.start("signal")
    stack.wait_started("signal")
    health = stack.root / "runtime/health/signal.json"
    wait_for(
        lambda: health.exists() and orjson.loads(health.read_bytes())["counters"]["out"] >= 40, 60, "signals"
    )
    rc, _ = stack.stop("signal", signal.SIGKILL)
    assert rc == -signal.SIGKILL
    time.sleep(1.5)  # features keep arriving while the stage is down
    stack.start("signal")
    stack.wait_started("signal")
    time.sleep(4.0)
    assert stack.stop("harvest")[0] == 0
    n_features = len(feature_keys(stack))
    wait_for(lambda: len(sink_rows(stack)) >= n_features, 30, "the signal stage to catch up")
    assert stack.stop("signal")[0] == 0
    keys = [(r["symbol"], r["ts_ms"]) for r in sink_rows(stack)]
    assert_covered(keys, feature_keys(stack))
    assert sorted(keys) == sorted(feature_keys(stack))


def test_broker_refuses_anything_but_mock(tmp_path: Path) -> None:
    proc = run_module("mcp.broker_gateway_server.app", "--mock", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "only the mock broker exists" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "module", ["mcp.harvest_server.app", "mcp.signal_server.app", "mcp.report_server.app"]
)
def test_stages_exit_2_on_a_bad_config(tmp_path: Path, module: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("signal: {sink: parquet}\n")
    proc = run_module(module, "--config", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "invalid config file" in proc.stderr and "Traceback" not in proc.stderr
