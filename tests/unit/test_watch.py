"""ChangeWatch (inotify) and the reader's change-driven polls: a change anywhere under the roots is
announced, also in directories created while the watch was being set up, and a poll given the
changed directories reads those streams only, the others at the next full look."""

from __future__ import annotations

import sys
import time
from collections.abc import Collection
from pathlib import Path

import orjson
import pytest

from v13.reader import StreamReader
from v13.segments import SegmentWriter
from v13.watch import ChangeWatch

inotify_simple = pytest.importorskip("inotify_simple")

DAY0 = 1_764_300_000_000


def announced(watch: ChangeWatch, want: Path, seconds: float = 5.0) -> set[Path]:
    """Every directory announced until ``want`` is among them (or ``seconds`` passed)."""
    seen: set[Path] = set()
    deadline = time.monotonic() + seconds
    while want not in seen and time.monotonic() < deadline:
        changed = watch.wait(0.2)
        assert changed is not None
        seen |= changed
    return seen


def test_a_write_in_a_directory_created_after_the_start_is_announced(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    watch = ChangeWatch([root])
    deep = root / "20251128" / "BTCUSDT" / "features"
    deep.mkdir(parents=True)
    (deep / "a.part").write_bytes(b"x\n")
    assert deep in announced(watch, deep)
    with open(deep / "a.part", "ab") as fh:
        fh.write(b"y\n")
    assert watch.wait(2.0) == {deep}
    assert watch.wait(0.2) == set()  # nothing else changed: the timeout answers an empty set
    watch.close()


def test_a_directory_created_while_its_parent_is_being_watched_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "spool"
    parent = root / "20251128"
    parent.mkdir(parents=True)
    real = inotify_simple.INotify.add_watch

    def add_watch(self, path, mask):  # the stream directory appears just as its parent is watched
        if Path(path) == parent:
            (parent / "ETHUSDT").mkdir(exist_ok=True)
        return real(self, path, mask)

    monkeypatch.setattr(inotify_simple.INotify, "add_watch", add_watch)
    watch = ChangeWatch([root])
    (parent / "ETHUSDT" / "a.part").write_bytes(b"x\n")
    assert parent / "ETHUSDT" in announced(watch, parent / "ETHUSDT")
    watch.close()


def test_a_flat_watch_does_not_announce_subdirectories(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    sub = root / "spool"
    sub.mkdir(parents=True)
    watch = ChangeWatch([root], recursive=False)
    (sub / "a.part").write_bytes(b"x\n")
    assert watch.wait(0.3) == set()
    (root / "signals.db-wal").write_bytes(b"x")
    assert watch.wait(2.0) == {root}
    watch.close()


def test_without_inotify_the_wait_says_look_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "inotify_simple", None)  # the import fails
    watch = ChangeWatch([tmp_path / "spool"])
    assert not watch.active
    assert watch.wait(0.01) is None


def trade_line(symbol: str, i: int) -> bytes:
    ts = DAY0 + i * 1000
    row = {"ts_ms": ts, "symbol": symbol, "price": 1.0 + i, "qty": 1.0, "side": "buy"}
    return orjson.dumps(row | {"trade_id": i, "recv_ts_ms": ts, "src": "sim"})


def test_a_poll_given_the_changed_directories_reads_those_streams_only(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    writers = {s: SegmentWriter(spool, ready, f"{s}/trades", writer_id="w", flush_s=0.0) for s in ("A", "B")}
    for s, w in writers.items():
        w.write(trade_line(s, 0), DAY0)
        w.flush()
    reader = StreamReader(spool, ready, "trade")
    assert sorted(row.symbol for _t, row in reader.poll()) == ["A", "B"]
    for i in (1, 2):
        for s, w in writers.items():
            w.write(trade_line(s, i), DAY0 + i * 1000)
            w.flush()
    a_dir = spool / "20251128" / "A" / "trades"
    assert [(row.symbol, row.trade_id) for _t, row in reader.poll(changed={a_dir})] == [("A", 1), ("A", 2)]
    assert reader.poll(changed=set()) == []  # B's rows wait for their change or a full look
    assert [(row.symbol, row.trade_id) for _t, row in reader.poll()] == [("B", 1), ("B", 2)]
    c = SegmentWriter(spool, ready, "C/trades", writer_id="w", flush_s=0.0)
    c.write(trade_line("C", 0), DAY0)
    c.flush()
    new_stream = {spool / "20251128" / "C" / "trades"}  # not followed yet: the poll looks for it
    assert [row.symbol for _t, row in reader.poll(changed=new_stream)] == ["C"]
    for w in (*writers.values(), c):
        w.close()


def test_first_seals_into_new_ready_directories_do_not_make_the_reader_walk_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stream's first seal makes its directories in ready/ (the partition's listing changes);
    the watch announces them, and the reader explains them by the streams it follows. A new
    partition, or a new stream's directory, is not explained: one walk each."""
    import v13.reader

    walks: list[int] = []
    real = v13.reader.discover_tails

    def counting(spool: Path, ready: Path, known: Collection[str] = ()) -> list[str]:
        walks.append(1)
        return real(spool, ready, known)

    monkeypatch.setattr(v13.reader, "discover_tails", counting)
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    symbols = [f"S{i}" for i in range(5)]
    writers = {s: SegmentWriter(spool, ready, f"{s}/trades", writer_id="w", flush_s=0.0) for s in symbols}
    for s, w in writers.items():
        w.write(trade_line(s, 0), DAY0)
        w.flush()
    watch = ChangeWatch([spool, ready])
    reader = StreamReader(spool, ready, "trade")
    assert len(reader.poll()) == 5
    assert len(walks) == 1

    def seal_and_read(names: list[str], wait_for: Path) -> list[tuple[str, int]]:
        for s in names:
            writers[s].seal()  # into ready/20251128/<s>/trades, made now
            writers[s].write(trade_line(s, 1), DAY0 + 1000)
            writers[s].flush()
        rows: list = []
        seen: set[Path] = set()
        deadline = time.monotonic() + 5
        while (len(rows) < len(names) or wait_for not in seen) and time.monotonic() < deadline:
            changed = watch.wait(0.2)
            assert changed is not None
            seen |= changed
            rows += reader.poll(changed=changed)
        assert ready / "20251128" in seen  # the partition's listing changed
        return sorted((row.symbol, row.trade_id) for _t, row in rows)

    assert seal_and_read(symbols[:1], ready / "20251128" / "S0" / "trades") == [("S0", 1)]
    assert len(walks) == 2  # the partition is new in ready/
    leaf = ready / "20251128" / symbols[-1] / "trades"
    assert seal_and_read(symbols[1:], leaf) == [(s, 1) for s in symbols[1:]]
    assert len(walks) == 2  # four new stream directories in a known partition: no walk
    new = SegmentWriter(spool, ready, "NEW/trades", writer_id="w", flush_s=0.0)
    new.write(trade_line("NEW", 0), DAY0)
    new.flush()
    rows: list = []
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        changed = watch.wait(0.2)
        assert changed is not None
        rows += reader.poll(changed=changed)
    assert [row.symbol for _t, row in rows] == ["NEW"]
    assert len(walks) == 3  # a stream it did not know
    for w in (*writers.values(), new):
        w.close()
    watch.close()
