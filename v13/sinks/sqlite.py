"""SQLite signal sink (runtime/signals.db, table ``signals``) and its reader.

Primary key (run_id, symbol, ts_ms) makes re-writes idempotent (INSERT OR IGNORE); WAL lets the
broker and report read while the signal stage writes; rows are inserted in batches and committed
by the sink's flush timer, so readers see them within the flush interval.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from v13.checkpoint import Checkpoint
from v13.contracts import SignalRow
from v13.deadletter import Deadletter

__all__ = ["COLUMNS", "SqliteBackend", "SqliteSignalReader", "connect"]

COLUMNS: tuple[str, ...] = SignalRow.__struct_fields__
_BOOL_COLUMNS = ("confirm", "gating")
_SQL_TYPES = {
    "run_id": "TEXT NOT NULL",
    "symbol": "TEXT NOT NULL",
    "ts_ms": "INTEGER NOT NULL",
    "emit_ts_ms": "INTEGER NOT NULL",
    "regime": "TEXT",
    "div_type": "TEXT",
    "signal_type": "TEXT NOT NULL",
    "guard_reason": "TEXT",
    "confirm": "INTEGER NOT NULL",
    "gating": "INTEGER NOT NULL",
}
_CREATE = (
    "CREATE TABLE IF NOT EXISTS signals ("
    + ", ".join(f"{c} {_SQL_TYPES.get(c, 'REAL')}" for c in COLUMNS)
    + ", PRIMARY KEY (run_id, symbol, ts_ms))"
)
_INDEX = "CREATE INDEX IF NOT EXISTS idx_signals_symbol_ts ON signals (symbol, ts_ms)"
_INSERT = f"INSERT OR IGNORE INTO signals ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (explicit BEGIN/COMMIT) with WAL and a busy timeout."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, isolation_level=None)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class SqliteBackend:
    """SQLite backend of :class:`v13.sinks.base.SignalSink`."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._in_tx = False

    def open(self) -> None:
        self._conn = connect(self.path)
        self._conn.execute(_CREATE)
        self._conn.execute(_INDEX)

    def write_batch(self, rows: Sequence[SignalRow]) -> int:
        assert self._conn is not None, "open() first"
        if not self._in_tx:
            self._conn.execute("BEGIN")
            self._in_tx = True
        before = self._conn.total_changes
        self._conn.executemany(_INSERT, [_as_tuple(r) for r in rows])
        return self._conn.total_changes - before

    def flush(self) -> None:
        if self._conn is not None and self._in_tx:
            self._conn.execute("COMMIT")
            self._in_tx = False

    def tick(self) -> None:
        return None

    def close(self) -> None:
        if self._conn is not None:
            self.flush()
            self._conn.close()
            self._conn = None


def _as_tuple(row: SignalRow) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in COLUMNS)


class SqliteSignalReader:
    """Follows the ``signals`` table of one run by rowid; the checkpoint holds the last rowid."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        *,
        checkpoint: Checkpoint | None = None,
        deadletter: Deadletter | None = None,
    ) -> None:
        self.path, self.run_id = Path(path), run_id
        self.checkpoint = checkpoint
        self.deadletter = deadletter
        saved = (checkpoint.load() if checkpoint else None) or {}
        self.rowid = int(saved.get("rowid", 0))
        self._conn: sqlite3.Connection | None = None
        self.rows = 0
        self.rejected = 0

    def poll(self, max_rows: int = 5000) -> list[SignalRow]:
        conn = self._connection()
        if conn is None:
            return []
        try:
            cur = conn.execute(
                f"SELECT rowid, {', '.join(COLUMNS)} FROM signals WHERE run_id = ? AND rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (self.run_id, self.rowid, max_rows),
            )
            fetched = cur.fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return []
        out: list[SignalRow] = []
        for rowid, *values in fetched:
            self.rowid = rowid
            doc = dict(zip(COLUMNS, values, strict=True))
            for name in _BOOL_COLUMNS:
                doc[name] = bool(doc[name])
            try:
                out.append(msgspec.convert(doc, SignalRow))
            except msgspec.ValidationError as exc:
                self.rejected += 1
                if self.deadletter is not None:
                    self.deadletter.write(f"signal row invalid: {exc}", f"{self.path}#rowid", str(doc), rowid)
        self.rows += len(out)
        return out

    def commit(self, extra: dict[str, Any] | None = None) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save({"rowid": self.rowid, **(extra or {})})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.exists():
            self._conn = connect(self.path, readonly=True)
        return self._conn
