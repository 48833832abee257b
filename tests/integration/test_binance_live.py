"""The live Binance source against a local websocket server (127.0.0.1, both routes), and the
replay sources; harvest runs as a real process. No test touches the internet."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import orjson
import pytest

from tests.integration.binance_server import FakeBinance, Faults
from tests.integration.stack import Stack, wait_for
from v13.config import load_config
from v13.contracts import decode_row
from v13.signals import SignalEngine

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def live_changes(server: FakeBinance, **extra: object) -> dict[str, object]:
    return {
        "symbols": SYMBOLS,
        "source.kind": "binance",
        "source.binance.market_url": server.url("/market/stream"),
        "source.binance.public_url": server.url("/public/stream"),
        "source.binance.backoff_initial_s": 0.5,
        "source.binance.silence_timeout_s": 3,
        **extra,
    }


def features(root: Path) -> list[dict]:
    rows = [
        orjson.loads(x)
        for p in sorted((root / "data/preview").rglob("*.jsonl"))
        for x in p.read_bytes().splitlines()
    ]
    return sorted(rows, key=lambda r: (r["symbol"], r["ts_ms"]))


def status(stack: Stack) -> dict:
    return orjson.loads((stack.root / "runtime/health/harvest.json").read_bytes())


def run_harvest(stack: Stack, seconds: float) -> None:
    stack.start("harvest")
    stack.wait_started("harvest")
    time.sleep(seconds)
    rc, _ = stack.stop("harvest")
    log = stack.log("harvest").read_text()
    assert rc == 0 and "Traceback" not in log, log[-2000:]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A live run with recording on, then the harvest replaying that recording as fast as possible."""
    base = tmp_path_factory.mktemp("binance")
    with FakeBinance(SYMBOLS) as server:
        live = Stack(base / "live", "jsonl", live_changes(server, **{"source.binance.record": True}))
        run_harvest(live, 8.0)
    recording = next((live.root / "data/recordings").glob("*.frames.jsonl"))
    replay = Stack(base / "replay", "jsonl", {"symbols": SYMBOLS, "source.kind": "replay",
                                             "source.replay.path": str(recording)})  # fmt: skip
    replay.start("harvest")
    wait_for(lambda: "Source exhausted" in replay.log("harvest").read_text(), 60, "the replay to finish")
    assert replay.stop("harvest")[0] == 0
    return {"live": live, "replay": replay, "recording": recording}


def test_live_features_equal_the_replay_of_the_recording(recorded) -> None:
    live, replayed = features(recorded["live"].root), features(recorded["replay"].root)
    assert len(live) >= 2 * 6
    assert {r["symbol"] for r in live} == set(SYMBOLS)
    assert live == replayed
    assert all(r["mid"] is not None and r["trade_count"] >= 0 for r in live)


def test_live_status_reports_exchange_lag_and_no_faults(recorded) -> None:
    counters = status(recorded["live"])["counters"]
    assert counters["reconnects"] == 0 and counters["depth_gaps"] == 0 and counters["deadletter"] == 0
    assert 0 <= counters["exchange_lag_ms"] < 1000
    assert counters["trades"] > 0 and counters["books"] > 0


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> dict:
    faults = Faults(drop_at_s=4.0, malformed_at_s=2.5, depth_gap_at_s=7.0, id_jump_at_s=7.5,
                    silent={"ethusdt@aggTrade"})  # fmt: skip
    with FakeBinance(SYMBOLS, faults) as server:
        stack = Stack(tmp_path_factory.mktemp("faulty"), "jsonl", live_changes(server))
        run_harvest(stack, 10.0)
        connections = list(server.connections)
    return {"stack": stack, "connections": connections, "dropped_at": server.dropped_at}


def test_reconnects_within_the_backoff_after_the_server_drops(faulty) -> None:
    counters = status(faulty["stack"])["counters"]
    assert counters["reconnects"] >= 2  # both routes
    dropped = faulty["dropped_at"]
    assert dropped is not None
    back = [t - dropped for t, path in faulty["connections"] if path == "/public/stream" and t > dropped]
    assert back and back[0] < 0.5 * 1.2 + 0.5, f"reconnected {back[0] if back else None} s after the drop"


def test_a_dropped_connection_and_a_depth_gap_show_in_status_and_features(faulty) -> None:
    counters = status(faulty["stack"])["counters"]
    assert counters["depth_gaps"] >= 2  # the reconnect and the skipped update
    rows = features(faulty["stack"].root)
    assert sum(r["gap"] for r in rows if r["symbol"] == "BTCUSDT") >= 2


def test_an_aggtrade_id_jump_is_counted(faulty) -> None:
    assert status(faulty["stack"])["counters"]["trade_gaps"] >= 1


def test_a_silent_stream_is_a_fault_not_a_quiet_market(faulty) -> None:
    assert status(faulty["stack"])["counters"]["silent_streams"] >= 1


def test_malformed_frames_go_to_the_deadletter_without_a_crash(faulty) -> None:
    files = (faulty["stack"].root / "artifacts/deadletter/harvest").glob("*.jsonl")
    entries = [orjson.loads(x) for p in files for x in p.read_bytes().splitlines()]
    assert len(entries) == 3
    assert all(e["reason"] for e in entries)
    assert status(faulty["stack"])["counters"]["deadletter"] == 3


def write_aggtrades(path: Path, header: bool, micros: bool) -> None:
    rows = (
        ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
        if header
        else []
    )
    t0 = 1_735_689_600_000
    for i in range(240):
        ts = (t0 + i * 250) * (1000 if micros else 1)
        maker = "true" if i % 3 == 0 else "false"
        rows.append(f"{1000 + i},{95000 + i % 7 * 0.1:.1f},{0.01 + i % 3 * 0.01:.3f},{i},{i},{ts},{maker}")
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(("header", "micros", "zipped"), [(True, False, False), (False, True, True)])
def test_an_aggtrades_replay_gives_cvd_features_and_signals_gated_for_no_book(
    tmp_path: Path, header, micros, zipped
) -> None:
    csv_path = tmp_path / "BTCUSDT-aggTrades-2025-01-01.csv"
    write_aggtrades(csv_path, header, micros)
    source = csv_path
    if zipped:
        source = tmp_path / "BTCUSDT-aggTrades-2025-01-01.zip"
        with zipfile.ZipFile(source, "w") as zf:
            zf.write(csv_path, csv_path.name)
    stack = Stack(tmp_path / "root", "jsonl", {"symbols": ["BTCUSDT"], "source.kind": "replay",
                                               "source.replay.path": str(source)})  # fmt: skip
    stack.start("harvest")
    wait_for(lambda: "Source exhausted" in stack.log("harvest").read_text(), 60, "the replay")
    assert stack.stop("harvest")[0] == 0
    rows = features(stack.root)
    assert len(rows) == 60  # 240 trades, 4 per second
    assert rows[0]["ts_ms"] == 1_735_689_601_000
    assert all(r["mid"] is None and r["spread_bps"] is None for r in rows)
    assert all(r["trade_count"] == 4 for r in rows)
    assert rows[-1]["cvd"] == pytest.approx(sum(r["cvd_delta"] for r in rows))
    assert any(r["cvd_delta"] != 0 for r in rows)
    engine = SignalEngine(load_config(environ={}), "replay")
    signals = [engine.on_feature(decode_row("feature", orjson.dumps(r))) for r in rows]
    assert all(s.gating and "no_book" in (s.guard_reason or "") and not s.confirm for s in signals)


def test_connections_are_recycled_before_their_maximum_age(tmp_path: Path) -> None:
    from v13.sources.live import LiveFeed

    with FakeBinance(SYMBOLS) as server:
        cfg = load_config(environ={}, overrides={f"source.binance.{k}": v for k, v in {
            "market_url": server.url("/market/stream"), "public_url": server.url("/public/stream"),
            "max_connection_age_s": 1.5, "backoff_initial_s": 0.2}.items()})  # fmt: skip
        feed = LiveFeed(cfg.source.binance, SYMBOLS)
        feed.start()
        frames = []
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            frames += feed.frames(timeout=0.1)
        feed.stop()
    assert feed.counters["age_reconnects"] >= 2  # each route at least once
    assert feed.counters["reconnects"] >= 2
    assert len(frames) > 40  # the feed kept delivering across the recycles


def test_the_whole_supervised_stack_runs_on_the_live_source(tmp_path: Path) -> None:
    from orchestrator.api import RunOptions, run_stack
    from orchestrator.printer import Printer
    from tests.integration.stack import FAST
    from tests.unit.helpers import write_config

    with FakeBinance(SYMBOLS) as server:
        cfg = write_config(
            tmp_path / "live.yaml", {**FAST, **live_changes(server), "orchestrator.health_interval_s": 2}
        )
        result = run_stack(
            RunOptions(config=cfg, sink="sqlite", minutes=0.6, root=tmp_path / "root"),
            printer=Printer(live=False),
        )
    assert result.status == "completed", result.early_stop
    assert all(c.restarts == 0 and c.exit_codes == [0] for c in result.children.values())
    assert result.report is not None and result.report.rows >= 2 * 20
    assert result.report.dropped == 0 and "DEADLETTER" not in result.report.warnings
    harvest = orjson.loads((tmp_path / "root/runtime/health/harvest.json").read_bytes())["counters"]
    assert harvest["reconnects"] == 0 and harvest["trades"] > 0
