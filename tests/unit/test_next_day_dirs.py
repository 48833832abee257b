"""The next UTC day's directories are made ahead of 00:00, off the loop that writes rows, and
removed again when the day is not reached; crossing midnight loses and reorders nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from tests.unit.helpers import signal_row
from v13.config import load_config
from v13.features import FeatureEngine
from v13.segments import NextDayDirs, Sealer, SegmentFollower, SegmentWriter
from v13.sinks.jsonl import JsonlBackend
from v13.sources.sim import SimMarket
from v13.streams import StreamSet

MIDNIGHT = 1_764_374_400_000  # 2025-11-29 00:00 UTC
TODAY, TOMORROW = "20251128", "20251129"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def line(i: int, ts: int) -> bytes:
    return orjson.dumps({"i": i, "ts_ms": ts})


def dirs_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()} if root.is_dir() else set()


def wait_for(condition, what: str) -> None:
    """The directories are made by another thread: wait for them, a bounded time."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


@pytest.fixture
def sealer():
    s = Sealer()
    yield s
    s.close()


def writers(tmp_path: Path, sealer: Sealer, tails: list[str]) -> list[SegmentWriter]:
    return [
        SegmentWriter(tmp_path / "spool", tmp_path / "ready", t, writer_id="w", sealer=sealer) for t in tails
    ]


def test_directories_are_made_for_every_writer_only_within_the_last_minute(tmp_path: Path, sealer) -> None:
    ws = writers(tmp_path, sealer, ["BTCUSDT/trades", "BTCUSDT/book", "ETHUSDT"])
    ahead = NextDayDirs(sealer)
    ahead.add(ws, MIDNIGHT - 90_000)  # new writers, while no day is being prepared
    ahead.tick(MIDNIGHT - 60_001, ws)
    sealer.drain()
    assert not (tmp_path / "spool").exists()
    ahead.tick(MIDNIGHT - 60_000, ws)
    late = writers(tmp_path, sealer, ["SOLUSDT"])[0]  # a stream whose first row comes in the last minute
    ahead.add([late], MIDNIGHT - 30_000)
    sealer.drain()
    assert dirs_under(tmp_path / "spool" / TOMORROW) == {
        "BTCUSDT",
        "BTCUSDT/trades",
        "BTCUSDT/book",
        "ETHUSDT",
        "SOLUSDT",
    }
    assert not (tmp_path / "ready").exists()  # sealing makes ready/'s directories; nothing was sealed


def test_a_day_not_reached_leaves_no_directory_and_a_reached_one_keeps_them(tmp_path: Path, sealer) -> None:
    spool = tmp_path / "spool"
    ws = writers(tmp_path, sealer, ["BTCUSDT/trades", "ETHUSDT"])
    ws[0].write(line(0, MIDNIGHT - 50_000), MIDNIGHT - 50_000)
    ahead = NextDayDirs(sealer)
    ahead.tick(MIDNIGHT - 50_000, ws)
    sealer.drain()
    assert dirs_under(spool / TOMORROW) == {"BTCUSDT", "BTCUSDT/trades", "ETHUSDT"}
    ws[0].close()
    sealer.drain()
    ahead.close(MIDNIGHT - 1)
    assert dirs_under(spool) == {TODAY, f"{TODAY}/BTCUSDT", f"{TODAY}/BTCUSDT/trades"}  # today's stay

    again = NextDayDirs(sealer)
    again.tick(MIDNIGHT - 40_000, ws)
    sealer.drain()
    ws[1].write(line(1, MIDNIGHT + 5), MIDNIGHT + 5)
    again.add(writers(tmp_path, sealer, ["SOLUSDT"]), MIDNIGHT + 5)  # the day has come: nothing to make
    sealer.drain()
    again.close(MIDNIGHT + 5)
    assert not (spool / TOMORROW / "SOLUSDT").exists()
    assert [p.name for p in (spool / TOMORROW / "ETHUSDT").glob("*.part")] == [
        f"{MIDNIGHT + 5:013d}-w-00001.part"
    ]
    assert (spool / TOMORROW / "BTCUSDT" / "trades").is_dir()  # a reached day is the writers' to keep


def test_a_failure_to_make_them_ahead_is_left_to_the_writer_to_report(tmp_path: Path, sealer) -> None:
    ws = writers(tmp_path, sealer, ["BTCUSDT/trades"])
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / TOMORROW).write_text("a file where the partition should be")
    NextDayDirs(sealer).tick(MIDNIGHT - 10_000, ws)
    sealer.drain()
    assert sealer.error is None  # sealing goes on
    with pytest.raises(NotADirectoryError):
        ws[0].write(line(0, MIDNIGHT), MIDNIGHT)


def test_a_follower_waits_in_today_while_tomorrows_directory_is_empty(tmp_path: Path, sealer) -> None:
    """Between a rotation's seal and the next row no segment is open; the follower must not move
    on to the next day's (empty) partition and skip the rest of today."""
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    (w,) = writers(tmp_path, sealer, ["BTCUSDT/trades"])
    follower = SegmentFollower(spool, ready, "BTCUSDT/trades")
    ahead = NextDayDirs(sealer)
    ts = [MIDNIGHT - 30_000, MIDNIGHT - 20_000, MIDNIGHT - 10_000, MIDNIGHT + 10, MIDNIGHT + 20]
    got: list[int] = []
    for i, t in enumerate(ts):
        w.write(line(i, t), t)
        ahead.tick(t, [w])
        w.seal()  # one segment per row: a rotation after each
        sealer.drain()
        got += [orjson.loads(raw)["i"] for raw, _ in follower.read()]
        got += [orjson.loads(raw)["i"] for raw, _ in follower.read()]  # and once more with none open
    assert got == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in ready.iterdir()) == [TODAY, TOMORROW]


def run_harvest_streams(tmp_path: Path, start_ms: int, end_ms: int, at_last_step=None) -> StreamSet:
    """The harvest's own parts, in-process: the simulator, the feature engine, the streams."""
    cfg = load_config(environ={})
    market = SimMarket(SYMBOLS, seed=3, start_ms=start_ms)
    engine = FeatureEngine(cfg.features)
    streams = StreamSet(tmp_path / "data", "run1-1", cfg.segments)
    while market.next_ms < end_ms:
        t0 = market.next_ms
        if at_last_step is not None and t0 + market.dt_ms == MIDNIGHT:
            at_last_step(streams)
        for row in market.step():
            if closed := engine.on_row(row):
                for feature in closed:
                    streams.write(feature)
            streams.write(row)
        for feature in engine.advance(t0 + market.dt_ms):
            streams.write(feature)
        streams.tick()
    return streams


def next_day_dirs(streams: StreamSet) -> set[str]:
    d = streams.data
    return {
        f"{root}/{TOMORROW}/{tail}"
        for symbol in SYMBOLS
        for root, tail in (
            (d.raw_spool, symbol),
            (d.raw_spool, d.raw_tail(symbol, "trades")),
            (d.raw_spool, d.raw_tail(symbol, "book")),
            (d.preview_spool, symbol),
            (d.preview_spool, d.feature_tail(symbol)),
        )
    } | {f"{d.raw_spool}/{TOMORROW}", f"{d.preview_spool}/{TOMORROW}"}


def absolute_dirs(root: Path) -> set[str]:
    return {f"{root}/{d}" for d in dirs_under(root)}


def test_the_harvest_streams_find_the_new_days_directories_made_before_its_first_row(tmp_path: Path) -> None:
    seen: dict[str, set[str]] = {}

    def before_midnight(streams: StreamSet) -> None:
        expected = next_day_dirs(streams)
        wait_for(lambda: expected <= absolute_dirs(tmp_path), "the next day's directories made ahead")
        seen["made"] = {d for d in absolute_dirs(tmp_path) if f"/{TOMORROW}" in d}
        seen["expected"] = expected

    streams = run_harvest_streams(tmp_path, MIDNIGHT - 65_000, MIDNIGHT + 3_000, before_midnight)
    streams.close()
    assert seen["made"] == seen["expected"]
    d = streams.data
    for symbol in SYMBOLS:
        follower = SegmentFollower(d.preview_spool, d.preview_ready, d.feature_tail(symbol))
        seconds = [orjson.loads(raw)["ts_ms"] for raw, _ in follower.read(100_000)]
        assert seconds == sorted(set(seconds))  # in order, none twice
        assert seconds[0] < MIDNIGHT - 60_000 and seconds[-1] >= MIDNIGHT + 1_000
        assert {p.parent.parent.parent.name for p in d.preview_ready.rglob("*.jsonl")} == {TODAY, TOMORROW}


def test_harvest_streams_that_stop_before_midnight_leave_no_directory_of_the_next_day(tmp_path: Path) -> None:
    streams = run_harvest_streams(tmp_path, MIDNIGHT - 65_000, MIDNIGHT - 30_000)
    assert streams.rows["features"] >= 60  # the last minute was reached: the directories were made
    streams.close()
    assert not [d for d in absolute_dirs(tmp_path) if f"/{TOMORROW}" in d]
    assert f"{streams.data.raw_ready}/{TODAY}/BTCUSDT/trades" in absolute_dirs(tmp_path)


def test_the_jsonl_sink_makes_the_next_days_directories_ahead_and_removes_them_unused(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    sink = JsonlBackend(spool, ready, "run1")
    sink.open()
    sink.write_batch([signal_row("run1", s, MIDNIGHT - 20_000) for s in ("BTCUSDT", "ETHUSDT")])
    sink.tick()
    wait_for(
        lambda: {f"{TOMORROW}/BTCUSDT", f"{TOMORROW}/ETHUSDT"} <= dirs_under(spool), "the sink's directories"
    )
    sink.write_batch([signal_row("run1", "SOLUSDT", MIDNIGHT - 10_000)])  # a new symbol in the last minute
    wait_for(lambda: f"{TOMORROW}/SOLUSDT" in dirs_under(spool), "a new symbol's directory")
    sink.close()
    assert not [d for d in dirs_under(spool) if TOMORROW in d]
    assert len(list(ready.rglob("*.jsonl"))) == 3
    assert os.listdir(ready) == [TODAY]
