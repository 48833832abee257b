"""Signal sinks: idempotent writes, timer flush seen by another process, real drop counting."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.unit.helpers import REPO, signal_row, write_config
from v13.checkpoint import Checkpoint
from v13.config import load_config
from v13.layout import Layout
from v13.segments import SegmentWriter
from v13.sinks import ReaderState, open_signal_reader, open_sink
from v13.sinks.base import SignalSink
from v13.sinks.jsonl import JsonlBackend
from v13.sinks.sqlite import SqliteBackend

T0 = 1_764_300_000_000
SINKS = ["jsonl", "sqlite"]


def layout_and_cfg(tmp_path: Path, sink: str, **changes: object):
    cfg_path = write_config(tmp_path / "cfg.yaml", {"signal.sink": sink, **changes})
    cfg = load_config(cfg_path, environ={})
    return cfg, Layout.from_config(cfg, tmp_path)


def read_all(cfg, layout, run_id, state=None):
    reader = open_signal_reader(cfg, layout, run_id, state=state)
    rows = []
    while batch := reader.poll(1000):
        rows += batch
    return reader, rows


@pytest.mark.parametrize("sink", SINKS)
def test_writing_the_same_rows_twice_leaves_one_copy(tmp_path: Path, sink: str) -> None:
    cfg, layout = layout_and_cfg(tmp_path, sink)
    rows = [signal_row("run1", sym, T0 + i * 1000) for sym in ("BTCUSDT", "ETHUSDT") for i in range(100)]
    first = open_sink(cfg, layout, "run1")
    for row in rows:
        assert first.put(row) is not None
    first.close()
    again = open_sink(cfg, layout, "run1")  # a restarted stage replaying its tail
    for row in rows[50:] + rows[:10]:
        again.put(row)
    again.close()
    counters = again.counters()
    assert counters.written == 0 and counters.duplicates == 160 and counters.dropped == 0
    _reader, got = read_all(cfg, layout, "run1")
    assert sorted((r.symbol, r.ts_ms) for r in got) == sorted((r.symbol, r.ts_ms) for r in rows)


@pytest.mark.parametrize("sink", SINKS)
def test_reader_sees_only_its_run_and_resumes_from_its_checkpoint(tmp_path: Path, sink: str) -> None:
    cfg, layout = layout_and_cfg(tmp_path, sink)
    for run in ("old-run", "new-run"):
        s = open_sink(cfg, layout, run)
        for i in range(50):
            s.put(signal_row(run, "BTCUSDT", T0 + i * 1000))
        s.close()
    ckpt = Checkpoint(layout.state_file("broker"), "new-run")
    reader = open_signal_reader(cfg, layout, "new-run")
    first = reader.poll(20)
    ckpt.save(reader.state())
    reader.close()
    _again, rest = read_all(cfg, layout, "new-run", state=ckpt.load(ReaderState))
    got = first + rest
    assert {r.run_id for r in got} == {"new-run"}
    assert [r.ts_ms for r in got] == [T0 + i * 1000 for i in range(50)]


SQLITE_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from v13.sinks.base import SignalSink
    from v13.sinks.sqlite import SqliteBackend
    from tests.unit.helpers import signal_row
    sink = SignalSink(SqliteBackend(Path(sys.argv[1]), "run1"), queue_max=1000, flush_s=0.2, batch_rows=500)
    for i in range(3):
        sink.put(signal_row("run1", "BTCUSDT", 1764300000000 + i * 1000))
        print(f"WROTE {i} {time.monotonic()}", flush=True)
        sys.stdin.readline()   # hold: no close, no explicit flush; only the timer can commit
    sink.close()
    """
)


def test_sqlite_rows_reach_a_reader_in_another_process_within_one_second(tmp_path: Path) -> None:
    db = tmp_path / "signals.db"
    child = subprocess.Popen(
        [sys.executable, "-c", SQLITE_CHILD, str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    delays = []
    try:
        for i in range(3):
            line = child.stdout.readline()
            assert line.startswith(f"WROTE {i}"), line
            wrote_at = float(line.split()[2])
            while True:
                if db.exists():
                    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                        try:
                            n = conn.execute("SELECT count(*) FROM signals").fetchone()[0]
                        except sqlite3.OperationalError:
                            n = 0
                    if n == i + 1:
                        break
                if time.monotonic() - wrote_at > 1.0:
                    pytest.fail(f"row {i} not visible to another process within 1 s")
            delays.append(time.monotonic() - wrote_at)
            child.stdin.write("\n")
            child.stdin.flush()
    finally:
        child.kill()
        child.communicate()
    print(f"sqlite timer-flush visibility delays (s): {[round(d, 3) for d in delays]}")


def test_sqlite_schema_primary_key_index_and_wal(tmp_path: Path) -> None:
    sink = SignalSink(SqliteBackend(tmp_path / "s.db", "r"), queue_max=10)
    sink.put(signal_row("r", "BTCUSDT", T0))
    sink.close()
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(signals)"), key=lambda r: r[5]) if r[5]]
        assert pk == ["run_id", "symbol", "ts_ms"]
        indexes = [r[1] for r in conn.execute("PRAGMA index_list(signals)")]
        columns = [[c[2] for c in conn.execute(f"PRAGMA index_info({name})")] for name in indexes]
        assert ["symbol", "ts_ms"] in columns


def test_put_many_takes_what_fits_in_order_and_counts_the_rest_dropped(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sink = SignalSink(SqliteBackend(db, "r"), queue_max=50, flush_s=0.05, batch_rows=10)
    assert sink.put(signal_row("r", "BTCUSDT", T0)) == 1
    assert sink.flush()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer thread now waits on the lock
    try:
        taken = sink.put_many([signal_row("r", "BTCUSDT", T0 + i) for i in range(1, 201)])
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    sink.close()
    assert taken == 50
    assert sink.last_seq == 51
    c = sink.counters()
    assert (c.dropped, c.written) == (150, 51)
    with closing(sqlite3.connect(db)) as conn:
        stored = [r[0] for r in conn.execute("SELECT ts_ms FROM signals ORDER BY ts_ms")]
    assert stored == [T0 + i for i in range(51)]


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sink = SignalSink(SqliteBackend(db, "r"), queue_max=50, flush_s=0.05, batch_rows=10)
    sink.put(signal_row("r", "BTCUSDT", T0))
    assert sink.flush()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer thread now waits on the lock
    try:
        accepted = sum(sink.put(signal_row("r", "BTCUSDT", T0 + i)) is not None for i in range(1, 500))
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    sink.close()
    c = sink.counters()
    assert c.dropped > 0
    assert c.dropped + accepted == 499
    assert c.written == accepted + 1
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM signals").fetchone()[0] == c.written


@pytest.mark.parametrize("sink", SINKS)
def test_write_rate_of_100k_rows(tmp_path: Path, sink: str) -> None:
    cfg, layout = layout_and_cfg(tmp_path, sink, **{"signal.queue_max": 200_000})
    rows = [signal_row("run1", f"SYM{i % 6}", T0 + (i // 6) * 1000) for i in range(100_000)]
    start = time.perf_counter()
    s = open_sink(cfg, layout, "run1")
    for row in rows:
        s.put(row)
    s.close()
    elapsed = time.perf_counter() - start
    assert s.counters().written == 100_000 and s.counters().dropped == 0
    print(f"{sink}: 100000 rows in {elapsed:.2f} s = {100_000 / elapsed:,.0f} rows/s")


def test_jsonl_sink_rotates_into_ready_and_leaves_no_part_after_close(tmp_path: Path) -> None:
    cfg, layout = layout_and_cfg(tmp_path, "jsonl", **{"segments.rotate_max_mb": 0.01})
    s = open_sink(cfg, layout, "run1")
    for i in range(300):
        s.put(signal_row("run1", "BTCUSDT", T0 + i * 1000))
    s.close()
    assert len(list(layout.signal_ready.rglob("*.jsonl"))) >= 5
    assert list(layout.signal_spool.rglob("*.part")) == []
    assert all(p.parent.name == "BTCUSDT" for p in layout.signal_ready.rglob("*.jsonl"))


def test_a_jsonl_flush_writes_every_symbol_that_took_rows_and_touches_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    backend = JsonlBackend(spool, ready, "run1")
    backend.open()
    symbols = [f"S{i:02d}USDT" for i in range(20)]
    flushed: list[str] = []
    real_flush = SegmentWriter.flush

    def flush(self: SegmentWriter) -> None:
        flushed.append(self.tail)
        real_flush(self)

    monkeypatch.setattr(SegmentWriter, "flush", flush)

    def on_disk() -> dict[str, int]:
        return {p.parent.name: len(p.read_bytes().splitlines()) for p in spool.rglob("*.part")}

    assert backend.write_batch([signal_row("run1", s, T0 + k) for k in range(2) for s in symbols]) == 40
    backend.flush()
    assert sorted(flushed) == symbols and on_disk() == dict.fromkeys(symbols, 2)
    flushed.clear()
    assert backend.write_batch([signal_row("run1", "S07USDT", T0 + 5)]) == 1
    backend.flush()
    assert flushed == ["S07USDT"] and on_disk() == {**dict.fromkeys(symbols, 2), "S07USDT": 3}
    flushed.clear()
    backend.flush()
    assert flushed == []
    backend.close()
    assert on_disk() == {}
