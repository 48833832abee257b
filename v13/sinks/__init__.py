"""Signal sinks behind one interface, chosen by ``signal.sink`` (or ``V13_SINK``).

``open_sink`` gives the writer side (:class:`SignalSink`), ``open_signal_reader`` the follower
side used by the broker and the report; both work the same for ``jsonl`` and ``sqlite``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec

from v13.checkpoint import StreamPositions
from v13.config import Config, SinkKind
from v13.contracts import SignalRow
from v13.deadletter import Deadletter
from v13.layout import Layout
from v13.reader import StreamReader
from v13.segments import writer_options
from v13.sinks.base import SignalSink, SinkBackend, SinkCounters
from v13.sinks.jsonl import JsonlBackend
from v13.sinks.sqlite import SqliteBackend, SqliteSignalReader
from v13.watch import ChangeWatch

__all__ = [
    "JsonlSignalReader",
    "ReaderState",
    "SignalReader",
    "SignalSink",
    "SinkBackend",
    "SinkCounters",
    "open_signal_reader",
    "open_sink",
]


class ReaderState(msgspec.Struct, forbid_unknown_fields=True):
    """Where a signal reader is, for a checkpoint: segment positions (JSONL) or the database
    file and rowid (SQLite)."""

    positions: StreamPositions = msgspec.field(default_factory=dict)
    file_ino: int | None = None
    rowid: int = 0


class SignalReader(Protocol):
    """Follows the signal rows of one run, from a saved :class:`ReaderState`."""

    @property
    def rows(self) -> int: ...

    @property
    def rejected(self) -> int: ...

    @property
    def started_over(self) -> int:
        """How often the reader went back to the first row because its sink's file was replaced
        (whoever counts rows as they come must then count again)."""
        ...

    def poll(self, max_rows: int = 5000, changed: set[Path] | None = None) -> list[SignalRow]:
        """New rows; ``changed``: the directories of :meth:`watch_roots` that changed (None: any)."""
        ...

    def change_watch(self) -> ChangeWatch:
        """A watch on the files that announce new rows; its changes go to :meth:`poll`."""
        ...

    def state(self) -> ReaderState: ...

    def close(self) -> None: ...


class JsonlSignalReader:
    """Follows the JSONL signal sink's segments of one run."""

    started_over = 0  # segments are never replaced under a reader

    def __init__(
        self, layout: Layout, run_id: str, *, state: ReaderState | None, deadletter: Deadletter | None
    ) -> None:
        self._roots = [layout.signal_spool, layout.signal_ready]
        self._reader = StreamReader(
            layout.signal_spool,
            layout.signal_ready,
            "signal",
            positions=state.positions if state else None,
            deadletter=deadletter,
            stem_filter=run_id,
        )

    @property
    def rows(self) -> int:
        return self._reader.rows

    @property
    def rejected(self) -> int:
        return self._reader.rejected

    def poll(self, max_rows: int = 5000, changed: set[Path] | None = None) -> list[SignalRow]:
        return [row for _tail, row in self._reader.poll(max_rows, changed)]

    def change_watch(self) -> ChangeWatch:
        return ChangeWatch(self._roots)

    def state(self) -> ReaderState:
        return ReaderState(positions=self._reader.positions())

    def close(self) -> None:
        return None


class _SqliteReader(SqliteSignalReader):
    def state(self) -> ReaderState:
        return ReaderState(file_ino=self.file_ino, rowid=self.rowid)


def open_sink(cfg: Config, layout: Layout, run_id: str) -> SignalSink:
    """The configured sink, its writer thread started and its backend open."""
    backend: SinkBackend
    if cfg.signal.sink is SinkKind.SQLITE:
        backend = SqliteBackend(layout.signals_db, run_id)
    else:
        backend = JsonlBackend(
            layout.signal_spool, layout.signal_ready, run_id, options=writer_options(cfg.segments)
        )
    return SignalSink(
        backend,
        queue_max=cfg.signal.queue_max,
        flush_s=min(cfg.signal.sqlite_flush_ms, cfg.segments.flush_ms) / 1000,
        batch_rows=cfg.signal.sqlite_batch_rows,
    )


def open_signal_reader(
    cfg: Config,
    layout: Layout,
    run_id: str,
    *,
    state: ReaderState | None = None,
    deadletter: Deadletter | None = None,
) -> SignalReader:
    """A follower of the configured sink's rows of ``run_id``, from ``state`` (else the start)."""
    if cfg.signal.sink is SinkKind.SQLITE:
        saved = state or ReaderState()
        return _SqliteReader(
            layout.signals_db, run_id, file_ino=saved.file_ino, rowid=saved.rowid, deadletter=deadletter
        )
    return JsonlSignalReader(layout, run_id, state=state, deadletter=deadletter)
