"""The signal stage's sink probes: ready once the sink is open, before any row has reached it
(the first row waits for the harvest's first interval; that is the harvest's readiness, not the
signal stage's)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from orchestrator.probes import SqliteTable, WritableDirs
from v13.sinks.jsonl import JsonlBackend
from v13.sinks.sqlite import SqliteBackend

NO_CHILD = None  # these probes look at files only


def test_sqlite_probe_waits_for_the_table_not_for_a_row(tmp_path: Path) -> None:
    db = tmp_path / "signals.db"
    probe = SqliteTable(db)
    assert not probe.ready(NO_CHILD)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE other (x)")
        conn.commit()
    assert not probe.ready(NO_CHILD)
    backend = SqliteBackend(db, "run-1")
    assert backend.open() == {}
    try:
        assert probe.ready(NO_CHILD)
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM signals").fetchone() == (0,)
    finally:
        backend.close()


def test_jsonl_probe_is_ready_once_the_sink_is_open(tmp_path: Path) -> None:
    spool, ready = tmp_path / "runtime/spool/signal", tmp_path / "runtime/ready/signal"
    probe = WritableDirs((spool, ready))
    assert not probe.ready(NO_CHILD)
    spool.mkdir(parents=True)
    assert not probe.ready(NO_CHILD)
    spool.rmdir()
    backend = JsonlBackend(spool, ready, "run-1")
    assert backend.open() == {}
    try:
        assert probe.ready(NO_CHILD)
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    finally:
        backend.close()


def test_a_file_where_the_jsonl_directory_should_be_is_not_ready(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    spool.mkdir()
    ready.write_text("not a directory")
    assert not WritableDirs((spool, ready)).ready(NO_CHILD)
