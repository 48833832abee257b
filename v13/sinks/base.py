"""The signal sink front: a bounded queue drained by a writer thread into a backend.

``put`` never blocks the engine: a full queue drops the row and counts it (``dropped``; the
signal stage reports it, the acceptance run requires 0). ``durable_seq`` tells which rows have
reached the backend durably, so the caller checkpoints its input only up to there.

A failed writer thread, or a sink file deleted, replaced or made unwritable under the writer,
is a :class:`~v13.errors.StageFailure` from :meth:`SignalSink.check`, which the caller runs every
loop: nothing is written into a file nobody will read.

Example::

    sink = SignalSink(SqliteBackend(path), queue_max=20000, flush_s=0.2)
    seq = sink.put(row)            # None when dropped
    taken = sink.put_many(rows)    # the first `taken` rows are queued, the rest dropped
    ...
    if sink.durable_seq >= seq: reader.commit()
    sink.close()                   # drains, flushes, closes
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from v13.contracts import SignalRow
from v13.errors import StageFailure

__all__ = ["CHECK_FILES_S", "SignalSink", "SinkBackend", "SinkCounters"]

CHECK_FILES_S = 0.5


class SinkBackend(Protocol):
    """Where rows end up; called from the sink's writer thread only."""

    kind: str

    def open(self) -> dict[str, int]:
        """Open the sink; returns the ts_ms of the last row of this run per symbol already in it."""
        ...

    def problem(self) -> str | None:
        """Why rows written now would be lost (file deleted, replaced or unwritable), or None.
        Called from another thread than the writer: stat-based checks only."""
        ...

    def write_batch(self, rows: Sequence[SignalRow]) -> int:
        """Write rows (idempotent on run_id, symbol, ts_ms); returns how many were new."""
        ...

    def flush(self) -> None:
        """Make everything written durable and visible to readers."""
        ...

    def tick(self) -> None:
        """Periodic housekeeping (time-based rotation), called while idle too."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SinkCounters:
    """What a health check needs from a sink."""

    written: int
    duplicates: int
    dropped: int
    queue_size: int
    flushes: int


class SignalSink:
    """Bounded, non-blocking front of a :class:`SinkBackend`."""

    def __init__(
        self, backend: SinkBackend, *, queue_max: int, flush_s: float = 0.2, batch_rows: int = 500
    ) -> None:
        self.backend = backend
        self.kind = backend.kind
        self.queue_max = queue_max
        self.flush_s = flush_s
        self.batch_rows = batch_rows
        self._queue: deque[tuple[int, SignalRow]] = deque()
        self._cond = threading.Condition(threading.Lock())  # never re-entered; cheaper than an RLock
        self._seq = 0
        self._durable_seq = 0
        self._written = 0
        self._duplicates = 0
        self._dropped = 0
        self._flushes = 0
        self._closing = False
        self._error: BaseException | None = None
        self.last_ts: dict[str, int] = {}  # per symbol, what the sink held when it was opened
        self._files_checked = float("-inf")
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.kind}", daemon=True)
        self._thread.start()
        self._opened.wait()
        self._raise_if_failed()

    def check(self) -> None:
        """Raise StageFailure when the writer thread failed or the sink's files are not what it
        writes to any more (deleted, replaced, unwritable); the files are looked at every
        ``CHECK_FILES_S`` at most, the writer at every call."""
        self._raise_if_failed()
        now = time.monotonic()
        if now - self._files_checked < CHECK_FILES_S:
            return
        self._files_checked = now
        problem = self.backend.problem()
        if problem is not None:
            raise StageFailure(f"{self.kind} sink: {problem}")

    def put(self, row: SignalRow) -> int | None:
        """Queue a row; returns its sequence number, or None when the queue was full (dropped)."""
        return self.last_seq if self.put_many((row,)) else None

    def put_many(self, rows: Sequence[SignalRow]) -> int:
        """Queue rows in order under one lock; returns how many were taken: the first n, the
        rest found the queue full and are dropped (counted). Sequence numbers follow ``last_seq``."""
        with self._cond:
            self._raise_if_failed()
            was_idle = not self._queue
            room = max(0, self.queue_max - len(self._queue))
            taken = rows if len(rows) <= room else rows[:room]
            first = self._seq + 1
            self._seq += len(taken)
            self._queue.extend(zip(range(first, self._seq + 1), taken, strict=True))
            self._dropped += len(rows) - len(taken)
            if taken and (was_idle or len(self._queue) >= self.batch_rows):
                self._cond.notify()  # an idle writer starts at once; a busy one at a full batch
            return len(taken)

    @property
    def durable_seq(self) -> int:
        """Highest sequence number whose row (and every earlier one) is durable."""
        with self._cond:
            return self._durable_seq

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def counters(self) -> SinkCounters:
        with self._cond:
            return SinkCounters(
                written=self._written,
                duplicates=self._duplicates,
                dropped=self._dropped,
                queue_size=len(self._queue),
                flushes=self._flushes,
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is durable; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._seq
            self._cond.notify_all()
            while self._durable_seq < target:
                self._raise_if_failed()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Drain the queue, flush the backend, stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        error = self._error
        if error is not None:
            raise StageFailure(f"{self.kind} sink writer failed: {type(error).__name__}: {error}") from error

    def _run(self) -> None:
        try:
            self.last_ts = self.backend.open()
        except BaseException as exc:
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            self._loop()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            self.backend.close()

    def _loop(self) -> None:
        """Write batches as they come; flush as soon as the queue is drained (a reader sees the
        rows at once), and at least every ``flush_s`` while rows keep coming."""
        last_flush = time.monotonic()
        pending_seq = 0
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.flush_s)  # idle: wake on the next row, or for housekeeping
                batch = [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]
                drained = not self._queue
                closing = self._closing and drained
            if batch:
                new = self.backend.write_batch([row for _, row in batch])
                pending_seq = batch[-1][0]
                with self._cond:
                    self._written += new
                    self._duplicates += len(batch) - new
            self.backend.tick()
            now = time.monotonic()
            if pending_seq > self._durable_seq and (closing or drained or now - last_flush >= self.flush_s):
                self.backend.flush()
                last_flush = now
                with self._cond:
                    self._durable_seq = pending_seq
                    self._flushes += 1
                    self._cond.notify_all()
            if closing:
                return
