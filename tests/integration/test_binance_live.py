"""The live Binance source against a local websocket server (127.0.0.1, both routes), and the
replay sources; harvest runs as a real process. No test touches the internet."""

from __future__ import annotations

import gzip
import time
import zipfile
from pathlib import Path

import orjson
import pytest

from tests.integration.binance_server import FakeBinance, Faults
from tests.integration.stack import FAST, Stack, wait_for
from tests.integration.test_stages import assert_batch_features_equal_the_harvests
from tests.unit.helpers import write_config
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
        "source.binance.rest_url": server.rest_url(),
        "source.binance.snapshot_limit": 100,
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


def replay_of(recording: Path, root: Path) -> Stack:
    """The harvest replaying a recording as fast as possible, until it says the source is used up."""
    replay = Stack(root, "jsonl", {"symbols": SYMBOLS, "source.kind": "replay",
                                   "source.replay.path": str(recording)})  # fmt: skip
    replay.start("harvest")
    wait_for(lambda: "Source exhausted" in replay.log("harvest").read_text(), 60, "the replay to finish")
    assert replay.stop("harvest")[0] == 0
    return replay


def recorded_run(
    base: Path, faults: Faults | None = None, seconds: float = 8.0, silence_s: float = 3, **server: object
) -> dict:
    """A live run with recording on, then the harvest replaying that recording."""
    with FakeBinance(SYMBOLS, faults, **server) as fake:  # type: ignore[arg-type]
        extra: dict[str, object] = {
            "source.binance.record": True,
            "source.binance.silence_timeout_s": silence_s,
        }
        if fake.diff:
            extra |= {"source.binance.depth_mode": "diff", "source.binance.diff_stream": fake.depth_stream}
        live = Stack(base / "live", "jsonl", live_changes(fake, **extra))
        run_harvest(live, seconds)
        injected = dict(fake.injected)
    recording = next((live.root / "data/recordings").iterdir())
    replay = replay_of(recording, base / "replay")
    return {"live": live, "replay": replay, "recording": recording, "injected": injected}


def assert_one_row_per_second(rows: list[dict]) -> None:
    keys = [(r["symbol"], r["ts_ms"]) for r in rows]
    assert len(keys) == len(set(keys)), "two feature rows for one (symbol, second)"
    assert all(ts % 1000 == 0 for _sym, ts in keys)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return recorded_run(tmp_path_factory.mktemp("binance"))


def test_live_features_equal_the_replay_of_the_recording(recorded) -> None:
    assert_batch_features_equal_the_harvests(recorded["live"])
    live, replayed = features(recorded["live"].root), features(recorded["replay"].root)
    assert len(live) >= 2 * 6
    assert {r["symbol"] for r in live} == set(SYMBOLS)
    assert live == replayed
    assert_one_row_per_second(live)
    assert all(r["mid"] is not None and not r["stale_book"] for r in live)


def test_the_recording_is_in_the_collector_format_one_gzip_file_per_symbol(recorded) -> None:
    files = sorted(p.name for p in recorded["recording"].iterdir())
    assert [f.split("_")[0] for f in files] == ["btcusdt", "ethusdt"] and all(
        f.endswith(".gz") for f in files
    )
    with gzip.open(recorded["recording"] / files[0], "rb") as fh:
        first = fh.readline()
    ns, _, raw = first.partition(b" ")
    assert ns.isdigit() and len(ns) == 19 and orjson.loads(raw)["v13"] == "connected"


def test_live_and_replay_report_the_same_counters(recorded) -> None:
    live, replay = status(recorded["live"])["counters"], status(recorded["replay"])["counters"]
    keys = ("trades", "books", "depth_gaps", "trade_gaps", "resyncs", "reconnects", "late_rows", "deadletter")
    assert {k: live[k] for k in keys} == {k: replay[k] for k in keys}
    assert live["reconnects"] == 0 and live["depth_gaps"] == 0 and live["deadletter"] == 0
    assert 0 <= live["exchange_lag_ms"] < 1000
    assert live["trades"] > 0 and live["books"] > 0


def test_replay_lag_is_held_against_the_recorded_clock(recorded) -> None:
    lag = status(recorded["replay"])["lag_ms"]
    assert lag is not None and 0 <= lag < 1000  # the recording's receive time, not today's wall clock


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> dict:
    faults = Faults(drop_at_s=3.0, malformed_at_s=2.0, depth_gap_at_s=5.5, id_jump_at_s=6.0)
    return recorded_run(tmp_path_factory.mktemp("faulty"), faults, seconds=8.0)


def test_fault_counters_equal_the_faults_injected(faulty) -> None:
    """Exact counts: one drop of both connections, one skipped depth update and one trade id
    jump per symbol, three malformed frames; live and in the replay of its recording."""
    injected = faulty["injected"]
    assert injected == {"drops": 1, "depth_gaps": 2, "id_jumps": 1, "malformed": 3}
    for run in ("live", "replay"):
        c = status(faulty[run])["counters"]
        counts = (c["reconnects"], c["depth_gaps"], c["trade_gaps"], c["deadletter"])
        assert counts == (2, 2, 2, 3), f"{run}: (reconnects, depth_gaps, trade_gaps, deadletter) {counts}"


def test_a_reconnect_leaves_the_book_stale_until_the_next_snapshot_and_rows_stay_one_a_second(faulty) -> None:
    rows = features(faulty["live"].root)
    assert_one_row_per_second(rows)
    assert rows == features(faulty["replay"].root)
    assert sum(r["gap"] for r in rows if r["symbol"] == "BTCUSDT") >= 2  # the reconnect and the trade id jump


def test_malformed_frames_go_to_the_deadletter_without_a_crash(faulty) -> None:
    files = (faulty["live"].root / "artifacts/deadletter/harvest").glob("*.jsonl")
    entries = [orjson.loads(x) for p in files for x in p.read_bytes().splitlines()]
    assert len(entries) == 3
    assert all(e["reason"] for e in entries)


def test_reconnects_within_the_backoff_after_the_server_drops(tmp_path: Path) -> None:
    with FakeBinance(SYMBOLS, Faults(drop_at_s=2.0)) as server:
        stack = Stack(tmp_path, "jsonl", live_changes(server))
        run_harvest(stack, 4.0)
        dropped, connections = server.dropped_at, list(server.connections)
    assert dropped is not None
    back = [t - dropped for t, path in connections if path == "/public/stream" and t > dropped]
    assert back and back[0] < 0.5 * 1.2 + 0.5, f"reconnected {back[0] if back else None} s after the drop"


def test_a_silent_stream_is_a_fault_not_a_quiet_market(tmp_path: Path) -> None:
    with FakeBinance(SYMBOLS, Faults(silent={"ethusdt@aggTrade"})) as server:
        stack = Stack(tmp_path, "jsonl", live_changes(server))
        run_harvest(stack, 7.0)
        market = [t for t, path in server.connections if path == "/market/stream"]
    c = status(stack)["counters"]
    assert c["silent_streams"] >= 1
    assert c["reconnects"] == len(market) - 1  # exactly the connections the server saw reopen
    # every recycle reopens; the stop may fall between the last recycle and its reopen
    assert c["silent_streams"] - c["reconnects"] in (0, 1)


@pytest.fixture(scope="module")
def bursts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    # the silence watchdog must outlast the bursts, or it recycles the connections in between
    return recorded_run(tmp_path_factory.mktemp("bursts"), Faults(burst_s=3.0), seconds=10.0, silence_s=10)


def test_frames_in_3_second_bursts_give_one_row_per_second_and_the_same_rows_in_replay(bursts) -> None:
    live = features(bursts["live"].root)
    assert_one_row_per_second(live)
    for sym in SYMBOLS:
        seconds = [r["ts_ms"] for r in live if r["symbol"] == sym]
        assert len(seconds) >= 6 and seconds == list(range(seconds[0], seconds[-1] + 1000, 1000))
    assert live == features(bursts["replay"].root)
    assert (
        status(bursts["live"])["counters"]["late_rows"] == status(bursts["replay"])["counters"]["late_rows"]
    )


@pytest.fixture(scope="module")
def diff_mode(tmp_path_factory: pytest.TempPathFactory) -> dict:
    faults = Faults(depth_gap_at_s=3.0, drop_at_s=5.5)
    return recorded_run(tmp_path_factory.mktemp("diff"), faults, seconds=8.0,
                        depth_stream="depth@100ms", levels=10)  # fmt: skip


def test_diff_mode_resyncs_exactly_once_per_broken_chain_and_snapshots_after_each_connect(diff_mode) -> None:
    assert diff_mode["injected"]["depth_gaps"] == 2
    for run in ("live", "replay"):
        c = status(diff_mode[run])["counters"]
        counts = (c["resyncs"], c["reconnects"], c["snapshots"], c["depth_gaps"], c["stale_snapshots"])
        # snapshots: one per symbol at the start, after the resync and after the reconnect
        assert counts == (2, 2, 6, 0, 0), f"{run}: (resyncs, reconnects, snapshots, gaps, stale) {counts}"
    rows = features(diff_mode["live"].root)
    assert rows == features(diff_mode["replay"].root)
    assert_one_row_per_second(rows)
    for sym in SYMBOLS:
        mine = [r for r in rows if r["symbol"] == sym]
        # trades may come before the first snapshot: no book yet is no_book, not stale; from the
        # first book on, a row without one says so (a resync or reconnect makes the book stale)
        first_book = next(i for i, r in enumerate(mine) if r["mid"] is not None)
        assert first_book <= 1, f"{sym}: no book in the first {first_book} seconds"
        assert all(r["mid"] is not None for r in mine[first_book:] if not r["stale_book"])


def test_a_sigterm_stops_the_live_harvest_in_under_a_second_20_times_in_20(tmp_path: Path) -> None:
    took = []
    with FakeBinance(SYMBOLS) as server:
        for i in range(20):
            stack = Stack(tmp_path / f"r{i}", "jsonl", live_changes(server))
            stack.start("harvest")
            stack.wait_started("harvest")
            rc, seconds = stack.stop("harvest")
            assert rc == 0, stack.log("harvest").read_text()[-2000:]
            took.append(seconds)
    print(f"harvest SIGTERM -> exit (s): max {max(took):.3f}, all {[round(t, 2) for t in took]}")
    assert max(took) < 1.0, took


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
