"""SQLite signal sink (runtime/signals.db, table ``signals``) and its reader.

Primary key (run_id, symbol, ts_ms) makes re-writes idempotent (INSERT OR IGNORE); WAL lets the
broker and report read while the signal stage writes; rows are inserted in batches and committed
by the sink's flush timer, so readers see them within the flush interval.

The file is known by its inode: the writer fails when the path stops naming the file it opened
(deleted or replaced) or it is not writable, and the reader starts over on a new file.
"""

from __future__ import annotations

import os
import sqlite3
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import msgspec

from v13.contracts import SignalRow
from v13.deadletter import Deadletter
from v13.watch import ChangeWatch

__all__ = ["COLUMNS", "SqliteBackend", "SqliteSignalReader", "connect", "file_id"]

COLUMNS: tuple[str, ...] = SignalRow.__struct_fields__
_BOOL_COLUMNS = ("confirm", "gating")


def _column(name: str, hint: Any) -> str:
    """``name TYPE [NOT NULL]`` from the contract's type: int/bool INTEGER, float REAL, else TEXT."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    args = typing.get_args(hint)
    nullable = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if nullable else hint
    affinity = "INTEGER" if base in (int, bool) else "REAL" if base is float else "TEXT"
    return f"{name} {affinity}" + ("" if nullable else " NOT NULL")


_HINTS = typing.get_type_hints(SignalRow, include_extras=True)
_CREATE = (
    "CREATE TABLE IF NOT EXISTS signals ("
    + ", ".join(_column(c, _HINTS[c]) for c in COLUMNS)
    + ", PRIMARY KEY (run_id, symbol, ts_ms))"
)
_INDEX = "CREATE INDEX IF NOT EXISTS idx_signals_symbol_ts ON signals (symbol, ts_ms)"
_INSERT = f"INSERT OR IGNORE INTO signals ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def file_id(path: Path) -> int | None:
    """The inode the path names now, or None when there is no file."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


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

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self._conn: sqlite3.Connection | None = None
        self._in_tx = False
        self._ino: int | None = None

    def open(self) -> dict[str, int]:
        if not self.path.exists():
            # a WAL left beside a deleted database belongs to that database, not to a new one
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._conn = connect(self.path)
        self._conn.execute(_CREATE)
        self._conn.execute(_INDEX)
        self._ino = file_id(self.path)
        cur = self._conn.execute(
            "SELECT symbol, MAX(ts_ms) FROM signals WHERE run_id = ? GROUP BY symbol", (self.run_id,)
        )
        return {symbol: int(ts) for symbol, ts in cur.fetchall()}

    def problem(self) -> str | None:
        if self._ino is None:
            return None
        ino = file_id(self.path)
        if ino is None:
            return f"{self.path} was deleted"
        if ino != self._ino:
            return f"{self.path} was replaced by another file"
        if not os.access(self.path, os.W_OK):
            return f"{self.path} is not writable"
        return None

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
    """Follows the ``signals`` table of one run by rowid. Its position is (file inode, rowid): on
    a different file at the path (the old one deleted and the sink recreated) it starts over."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        *,
        file_ino: int | None = None,
        rowid: int = 0,
        deadletter: Deadletter | None = None,
    ) -> None:
        self.path, self.run_id = Path(path), run_id
        self.deadletter = deadletter
        self.file_ino = file_ino
        self.rowid = rowid
        self._conn: sqlite3.Connection | None = None
        self.rows = 0
        self.rejected = 0
        self.started_over = 0

    def change_watch(self) -> ChangeWatch:
        return ChangeWatch([self.path.parent], recursive=False)  # a commit writes the -wal file

    def poll(self, max_rows: int = 5000, changed: set[Path] | None = None) -> list[SignalRow]:
        """Rows after the last rowid (one indexed query: ``changed`` does not narrow it)."""
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

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection | None:
        ino = file_id(self.path)
        if ino is None:
            return self._conn  # gone for now: what is open still answers until a new file comes
        if ino != self.file_ino:
            self.close()
            if self.file_ino is not None:
                self.rowid = 0  # a new file: its rowids start over
                self.started_over += 1
            self.file_ino = ino
        if self._conn is None:
            self._conn = connect(self.path, readonly=True)
        return self._conn
