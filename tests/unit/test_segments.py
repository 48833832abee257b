"""Segment streams: rotation, flushing, sealing, crash recovery, resume, pressure roll, deadletter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import orjson
import pytest

from v13.checkpoint import Checkpoint, StreamPositions
from v13.deadletter import Deadletter
from v13.reader import StreamReader
from v13.segments import MAX_LINE_BYTES, PressureLimits, SegmentFollower, SegmentWriter, discover_tails

DAY0 = 1_764_300_000_000  # 2025-11-28, UTC
TAIL = "BTCUSDT/trades"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def trade_line(i: int, ts: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "ts_ms": ts if ts is not None else DAY0 + i,
            "recv_ts_ms": DAY0 + i,
            "symbol": "BTCUSDT",
            "price": 100.0 + i % 7,
            "qty": 0.5,
            "side": "buy" if i % 2 else "sell",
            "trade_id": i,
            "src": "sim",
        }
    )


def roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "spool", tmp_path / "ready"


def files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern))


def test_rotation_on_time_seals_into_ready_in_write_order(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    clock = Clock()
    w = SegmentWriter(spool, ready, TAIL, writer_id="run1-1", rotate_s=60, clock=clock)
    for i in range(30):
        w.write(trade_line(i), DAY0 + i * 10_000)
        w.tick()  # the owner ticks its writers every loop; a write alone never rotates on time
        clock.t += 10  # 10 s per row: a seal every 6 rows
    w.close()
    sealed = files(ready, "*.jsonl")
    assert len(sealed) == 5
    assert files(spool, "*.part") == []
    lines = [orjson.loads(line)["trade_id"] for f in sealed for line in f.read_bytes().splitlines()]
    assert lines == list(range(30))
    assert [f.parent.relative_to(ready).as_posix() for f in sealed] == ["20251128/BTCUSDT/trades"] * 5


def test_rotation_on_size(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", max_bytes=1000, clock=Clock())
    for i in range(100):
        w.write(trade_line(i), DAY0 + i)
    w.close()
    sealed = files(ready, "*.jsonl")
    assert len(sealed) >= 10
    assert all(f.stat().st_size < 1000 + 200 for f in sealed)


def test_lines_reach_the_part_file_within_the_flush_interval(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    clock = Clock()
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", flush_s=0.2, clock=clock)
    w.write(trade_line(0), DAY0)
    w.write(trade_line(1), DAY0 + 1)
    follower = SegmentFollower(spool, ready, TAIL)
    before = len(follower.read())
    clock.t += 0.2
    w.tick()
    after = follower.read()
    assert before == 0
    assert [orjson.loads(line)["trade_id"] for line, _ in after] == [0, 1]
    w.close()


def test_rows_of_a_new_utc_day_go_to_a_new_partition(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", clock=Clock())
    w.write(trade_line(0), DAY0)
    w.write(trade_line(1), DAY0 + 86_400_000)
    w.close()
    assert sorted(p.name for p in ready.iterdir()) == ["20251128", "20251129"]


def test_pressure_starts_a_new_partition_early_and_restart_stays_there(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    limits = PressureLimits(max_shards=3, max_file_bytes=10**9)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", max_bytes=1, pressure=limits, clock=Clock())
    for i in range(5):
        w.write(trade_line(i), DAY0 + i)  # max_bytes=1: one row per segment
    w.close()
    restarted = SegmentWriter(spool, ready, TAIL, writer_id="w2", max_bytes=1, pressure=limits, clock=Clock())
    restarted.write(trade_line(5), DAY0 + 5)
    restarted.close()
    per_partition = {p.name: len(list(p.rglob("*.jsonl"))) for p in ready.iterdir()}
    assert per_partition == {"20251128": 3, "20251128_01": 3}
    got = [orjson.loads(line)["trade_id"] for line, _ in SegmentFollower(spool, ready, TAIL).read()]
    assert got == list(range(6))


def test_large_sealed_file_starts_a_new_partition(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    limits = PressureLimits(max_shards=1000, max_file_bytes=500)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", max_bytes=600, pressure=limits, clock=Clock())
    for i in range(12):
        w.write(trade_line(i), DAY0 + i)
    w.close()
    assert sorted(p.name for p in ready.iterdir())[:2] == ["20251128", "20251128_01"]


def test_writer_restart_seals_a_dead_writers_part_without_its_torn_line(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="dead", clock=Clock())
    for i in range(3):
        w.write(trade_line(i), DAY0 + i)
    w.flush()
    (part,) = files(spool, "*.part")
    with open(part, "ab") as fh:
        fh.write(b'{"ts_ms": 17643')  # the crash tore the last line
    follower = SegmentFollower(spool, ready, TAIL)
    assert len(follower.read()) == 3  # complete lines only
    del w  # dropped without close: the crash
    w2 = SegmentWriter(spool, ready, TAIL, writer_id="next", clock=Clock())
    assert w2.recovered == 1
    assert files(spool, "*.part") == []
    w2.write(trade_line(3), DAY0 + 3)
    w2.close()
    assert [orjson.loads(line)["trade_id"] for line, _ in follower.read()] == [3]


def test_follower_crash_resume_reads_every_row_exactly_once_in_order(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    clock = Clock()
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", max_bytes=20_000, clock=clock)
    n = 5000
    for i in range(n):
        w.write(trade_line(i), DAY0 + i)
    w.close()
    assert len(files(ready, "*.jsonl")) >= 10
    ckpt = Checkpoint(tmp_path / "state" / "reader.json", run_id="run1")
    seen: list[int] = []
    reader = StreamReader(spool, ready, "trade")
    for size in (7, 300, 1111):
        seen += [row.trade_id for _t, row in reader.poll(size)]
    ckpt.save(Positions(reader.positions()))
    committed = len(seen)
    lost_in_crash = [row.trade_id for _t, row in reader.poll(500)]  # read, never committed
    assert lost_in_crash
    del reader  # crash: no commit, no close
    saved = ckpt.load(Positions)
    assert saved is not None
    resumed = StreamReader(spool, ready, "trade", positions=saved.positions)
    while batch := resumed.poll(997):
        seen += [row.trade_id for _t, row in batch]
    assert committed == 1418
    assert seen == list(range(n))


class Positions(msgspec.Struct):
    positions: StreamPositions


class RowId(msgspec.Struct):
    rowid: int


def test_checkpoint_of_another_run_is_ignored_silently(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    warnings: list[str] = []
    Checkpoint(path, "run-a").save(RowId(5))
    assert Checkpoint(path, "run-a", warn=warnings.append).load(RowId) == RowId(5)
    assert Checkpoint(path, "run-b", warn=warnings.append).load(RowId) is None
    assert warnings == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"run_id": "run-a", "state": {"rowid": "five"}}', "has the wrong shape"),
        (b'{"run_id": "run-a", "state": {"positions": {"BTC/trades": [1, 2]}}}', "has the wrong shape"),
        (b'{"run_id": "run-a", "state": [1, 2, 3]}', "has the wrong shape"),
        (b'["run-a"]', "is not a JSON object"),
        (b'{"run_id": "run-a", "sta', "is not JSON"),
    ],
)
def test_a_corrupt_checkpoint_of_this_run_warns_once_and_starts_over(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    warnings: list[str] = []
    schema = Positions if b"positions" in content else RowId
    assert Checkpoint(path, "run-a", warn=warnings.append).load(schema) is None
    assert len(warnings) == 1 and why in warnings[0] and "starting from the run's start" in warnings[0]


def test_malformed_rows_go_to_the_deadletter_and_reading_goes_on(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", clock=Clock())
    w.write(trade_line(0), DAY0)
    w.write(b'{"not": "a trade"}', DAY0 + 1)
    w.write(b"{broken json", DAY0 + 2)
    w.write(orjson.dumps({**orjson.loads(trade_line(3)), "price": -1}), DAY0 + 3)
    w.write(trade_line(4), DAY0 + 4)
    w.close()
    dl = Deadletter(tmp_path / "deadletter" / "signal", "signal", "run1")
    reader = StreamReader(spool, ready, "trade", deadletter=dl)
    rows = [row.trade_id for _t, row in reader.poll()]
    assert rows == [0, 4]
    assert reader.rejected == 3 and dl.count == 3
    dl_files = (tmp_path / "deadletter/signal").glob("*.jsonl")
    entries = [orjson.loads(x) for f in dl_files for x in f.read_bytes().splitlines()]
    assert [e["line"] for e in entries] == ['{"not": "a trade"}', "{broken json", entries[2]["line"]]
    assert "price" in entries[2]["reason"]
    assert all(e["source"].endswith(TAIL + "/" + e["position"][1]) for e in entries)
    assert len(deadletter_entries(tmp_path / "deadletter")) == 3


def test_blank_lines_are_passed_over_and_a_line_of_spaces_goes_to_the_deadletter(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", clock=Clock())
    for line in (trade_line(0), b"", trade_line(1), b"", b"", trade_line(2), b"   ", trade_line(3)):
        w.write(line, DAY0)
    w.close()
    dl = Deadletter(tmp_path / "deadletter" / "signal", "signal", "run1")
    reader = StreamReader(spool, ready, "trade", deadletter=dl)
    assert [row.trade_id for _t, row in reader.poll()] == [0, 1, 2, 3]
    assert [e["line"] for e in deadletter_entries(tmp_path / "deadletter")] == ["   "]
    assert reader.rejected == 1


def deadletter_entries(root: Path) -> list[dict]:
    return [orjson.loads(x) for f in sorted(root.rglob("*.jsonl")) for x in f.read_bytes().splitlines()]


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "open"])
def test_a_line_longer_than_the_limit_goes_to_the_deadletter_and_reading_goes_on(
    tmp_path: Path, sealed: bool
) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", flush_s=0, clock=Clock())
    w.write(trade_line(0), DAY0)
    huge = b'{"pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}'
    w.write(huge, DAY0 + 1)
    w.write(trade_line(2), DAY0 + 2)
    w.flush()
    if sealed:
        w.close()
    dl = Deadletter(tmp_path / "deadletter" / "signal", "signal", "run1")
    reader = StreamReader(spool, ready, "trade", deadletter=dl)
    got = []
    for _ in range(4):  # the over-long line costs a poll or two; it never blocks the stream
        got += [row.trade_id for _t, row in reader.poll()]
    assert got == [0, 2]
    entries = deadletter_entries(tmp_path / "deadletter")
    assert len(entries) == 1 and reader.rejected == 1
    assert entries[0]["reason"] == f"line longer than {MAX_LINE_BYTES} bytes"
    assert entries[0]["position"][2] == len(trade_line(0)) + 1  # where the long line starts
    assert entries[0]["line"].startswith('{"pad": "xxx')


def test_a_torn_last_line_of_a_sealed_segment_goes_to_the_deadletter(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", clock=Clock())
    w.write(trade_line(0), DAY0)
    w.write(trade_line(1), DAY0 + 1)
    w.close()
    sealed = files(ready, "*.jsonl")[0]
    with open(sealed, "ab") as fh:
        fh.write(b'{"ts_ms": 17643')  # damage: a line cut short after the seal
    w2 = SegmentWriter(spool, ready, TAIL, writer_id="w2", clock=Clock())
    w2.write(trade_line(2), DAY0 + 2)
    w2.close()
    dl = Deadletter(tmp_path / "deadletter" / "signal", "signal", "run1")
    reader = StreamReader(spool, ready, "trade", deadletter=dl)
    assert [row.trade_id for _t, row in reader.poll()] == [0, 1, 2]
    entries = deadletter_entries(tmp_path / "deadletter")
    assert [(e["reason"], e["line"]) for e in entries] == [
        ("torn last line of a sealed segment", '{"ts_ms": 17643')
    ]
    assert entries[0]["position"][1] == sealed.name.removesuffix(".jsonl")


def test_a_segment_deleted_under_the_follower_is_skipped_not_waited_for(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    clock = Clock()
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", rotate_s=1, flush_s=0, clock=clock)
    follower = SegmentFollower(spool, ready, TAIL)
    w.write(trade_line(0), DAY0)
    w.flush()
    assert [orjson.loads(x)["trade_id"] for x, _ in follower.read()] == [0]  # inside the open part
    w.write(trade_line(1), DAY0 + 1)
    clock.t += 1
    w.tick()  # the first segment sealed with rows 0 and 1
    w.write(trade_line(2), DAY0 + 2)  # a second one opened
    w.close()
    first = files(ready, "*.jsonl")[0]
    first.unlink()
    assert [orjson.loads(x)["trade_id"] for x, _ in follower.read()] == [2]
    assert follower.vanished == 1


WRITER_CHILD = textwrap.dedent(
    """
    import sys, orjson
    from pathlib import Path
    from v13.segments import SegmentWriter
    spool, ready, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    w = SegmentWriter(spool, ready, "BTCUSDT/trades", writer_id="child", rotate_s=0.02,
                      max_bytes=3000, flush_s=0.001)
    for i in range(n):
        w.write(orjson.dumps({"seq": i, "pad": "x" * (i % 50)}), 1764300000000 + i)
    w.close()
    """
)


def test_concurrent_reader_never_sees_partial_lines_or_partial_sealed_files(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    script = tmp_path / "writer.py"
    script.write_text(WRITER_CHILD)
    n = 30_000
    child = subprocess.Popen([sys.executable, str(script), str(spool), str(ready), str(n)])
    follower = SegmentFollower(spool, ready, TAIL)
    seqs: list[int] = []
    checked: set[Path] = set()
    try:
        while True:
            done = child.poll() is not None
            for line, _pos in follower.read(2000):
                seqs.append(orjson.loads(line)["seq"])  # a partial line would not parse
            for sealed in ready.rglob("*.jsonl"):
                if sealed not in checked:
                    data = sealed.read_bytes()
                    assert data.endswith(b"\n"), f"partial sealed file {sealed}"
                    for line in data.splitlines():
                        orjson.loads(line)
                    checked.add(sealed)
            if done:
                break
        seqs += [orjson.loads(line)["seq"] for line, _ in follower.read(n)]
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0
    assert seqs == list(range(n))
    assert len(checked) > 20


def test_stem_filter_keeps_one_runs_segments(tmp_path: Path) -> None:
    spool, ready = roots(tmp_path)
    for run, base in (("runA", 0), ("runB", 100)):
        w = SegmentWriter(spool, ready, TAIL, writer_id=f"{run}-{os.getpid()}", clock=Clock())
        for i in range(base, base + 3):
            w.write(trade_line(i), DAY0 + i)
        w.close()
    follower = SegmentFollower(spool, ready, TAIL, stem_filter="runB")
    got = [orjson.loads(line)["trade_id"] for line, _ in follower.read()]
    assert got == [100, 101, 102]


def test_writer_rejects_a_tail_with_the_name_separator(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tail"):
        SegmentWriter(tmp_path / "s", tmp_path / "r", "BAD-TAIL", writer_id="w")


def test_a_rotation_between_the_followers_two_listings_skips_nothing(tmp_path: Path, monkeypatch) -> None:
    """Seal B and open C exactly between the follower's two directory listings (real files)."""
    import v13.segments as segments

    spool, ready = roots(tmp_path)
    clock = Clock()
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", rotate_s=1, flush_s=0, clock=clock)
    w.write(trade_line(0), DAY0)
    w.seal()  # A sealed, nothing after it
    follower = SegmentFollower(spool, ready, TAIL)
    assert [orjson.loads(x)["trade_id"] for x, _ in follower.read()] == [0]  # at the end of A
    w.write(trade_line(1), DAY0 + 1)  # B open
    real_stems = segments._stems
    calls = 0

    def stems_with_a_rotation_in_between(directory: Path, suffix: str) -> list[str]:
        nonlocal calls
        out = real_stems(directory, suffix)
        calls += 1
        if calls == 1:
            clock.t += 1
            w.write(trade_line(2), DAY0 + 2)  # B sealed with rows 1 and 2
            w.write(trade_line(3), DAY0 + 3)  # C open
        return out

    monkeypatch.setattr(segments, "_stems", stems_with_a_rotation_in_between)
    got = [orjson.loads(x)["trade_id"] for x, _ in follower.read()]
    monkeypatch.undo()
    w.close()
    got += [orjson.loads(x)["trade_id"] for x, _ in follower.read()]
    assert calls >= 2
    assert got == [1, 2, 3]


def test_looking_for_new_streams_lists_no_known_streams_directory(tmp_path: Path, monkeypatch) -> None:
    """Segments pile up in a stream's directories over a run: the readers' periodic look for new
    streams must not list them."""
    spool, ready = roots(tmp_path)
    for tail in ("BTCUSDT/trades", "BTCUSDT/book", "ETHUSDT/trades"):
        w = SegmentWriter(spool, ready, tail, writer_id="w", clock=Clock())
        w.write(trade_line(0), DAY0)
        w.seal()
        w.write(trade_line(1), DAY0 + 1)
        w.flush()  # one segment in ready/, one open in spool/
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        listed.append(os.path.relpath(os.fspath(path), tmp_path))  # type: ignore[arg-type]
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)

    def streams_listed() -> list[str]:
        return sorted(x.split("/", 2)[2] for x in listed if x.count("/") == 3)

    assert discover_tails(spool, ready) == ["BTCUSDT/book", "BTCUSDT/trades", "ETHUSDT/trades"]
    assert streams_listed() == ["BTCUSDT/book", "BTCUSDT/trades", "ETHUSDT/trades"]  # once each
    listed.clear()
    found = discover_tails(spool, ready, known={"BTCUSDT/trades", "BTCUSDT/book"})
    assert found == ["BTCUSDT/book", "BTCUSDT/trades", "ETHUSDT/trades"]
    assert streams_listed() == ["ETHUSDT/trades"]


def test_the_next_segment_is_found_without_listing_earlier_partitions(tmp_path: Path, monkeypatch) -> None:
    spool, ready = roots(tmp_path)
    w = SegmentWriter(spool, ready, TAIL, writer_id="w", clock=Clock())
    ids = iter(range(100))
    for day in (DAY0, DAY0 + 86_400_000):
        for seg in range(3):
            for _ in range(2):
                w.write(trade_line(next(ids)), day + seg)
            w.seal()
    follower = SegmentFollower(spool, ready, TAIL)
    assert [orjson.loads(line)["trade_id"] for line, _ in follower.read()] == list(range(12))
    listed: list[str] = []
    real_listdir = os.listdir

    def listdir(path: object) -> list[str]:
        listed.append(os.path.relpath(os.fspath(path), tmp_path))  # type: ignore[arg-type]
        return real_listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", listdir)
    w.write(trade_line(next(ids)), DAY0 + 86_400_000 + 3)
    w.seal()
    assert [orjson.loads(line)["trade_id"] for line, _ in follower.read()] == [12]
    assert listed and not [x for x in listed if "20251128" in x]


def test_positions_follow_every_stream_through_polls_of_changed_directories(tmp_path: Path) -> None:
    """The reader keeps each stream's position as it moves; what it hands to a checkpoint after
    polls of some streams only is where every follower is, and a stream resumed from a saved
    position that has not been read yet keeps that position."""
    spool, ready = roots(tmp_path)
    tails = ["BTCUSDT/trades", "ETHUSDT/trades", "SOLUSDT/trades"]
    writers = {t: SegmentWriter(spool, ready, t, writer_id="w", clock=Clock()) for t in tails}
    for i, w in enumerate(writers.values()):
        for j in range(3):
            w.write(trade_line(10 * i + j), DAY0 + j)
        w.flush()
    reader = StreamReader(spool, ready, "trade")
    assert len(reader.poll(100)) == 9

    def where_followers_are() -> StreamPositions:
        return {t: tuple(f.position) for t, f in reader.followers.items() if f.position is not None}

    assert reader.positions() == where_followers_are() and len(reader.positions()) == 3
    writers["ETHUSDT/trades"].write(trade_line(13), DAY0 + 3)
    writers["ETHUSDT/trades"].seal()
    writers["ETHUSDT/trades"].write(trade_line(14), DAY0 + 4)
    writers["ETHUSDT/trades"].flush()
    changed = {spool / writers["ETHUSDT/trades"].part_path.parent.relative_to(spool)}  # type: ignore[union-attr]
    assert [row.trade_id for _t, row in reader.poll(100, changed)] == [13, 14]
    assert reader.positions() == where_followers_are()
    assert reader.positions()["ETHUSDT/trades"][2] == len(trade_line(14)) + 1

    saved = reader.positions()
    del saved["SOLUSDT/trades"]
    resumed = StreamReader(spool, ready, "trade", positions=saved)
    resumed.poll(0)  # finds the streams; reads at most a row of each
    assert {t: p for t, p in resumed.positions().items() if t != "SOLUSDT/trades"} == saved
