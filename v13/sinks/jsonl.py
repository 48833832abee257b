"""JSONL signal sink: one segment stream per symbol, runtime/spool/signal -> runtime/ready/signal.

Idempotent on (run_id, symbol, ts_ms): signal rows of a symbol are written in increasing ts_ms,
so on open the backend reads the last ts_ms this run already wrote per symbol (after sealing any
segment a crashed writer left) and skips rows at or before it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from v13.contracts import SignalRow, decode_row, encode_row
from v13.errors import ContractError
from v13.segments import SEALED, NextDayDirs, Sealer, SegmentWriter, discover_tails, recover_parts

__all__ = ["JsonlBackend", "last_row_ts"]


class JsonlBackend:
    """Segment-stream backend of :class:`v13.sinks.base.SignalSink`."""

    kind = "jsonl"

    def __init__(
        self, spool: Path, ready: Path, run_id: str, *, options: dict[str, Any] | None = None
    ) -> None:
        """``options``: :class:`SegmentWriter` keyword arguments (see ``writer_options``)."""
        self.spool, self.ready, self.run_id = Path(spool), Path(ready), run_id
        # the sink's writer thread decides when to flush
        self._opts = {**(options or {}), "flush_s": 3600.0}
        self._writers: dict[str, SegmentWriter] = {}
        self._unflushed: set[SegmentWriter] = set()  # a flush touches the files that took rows only
        self._last_ts: dict[str, int] = {}
        self._latest_ts = 0  # event time of the latest row written
        self._sealer: Sealer | None = None
        self._next_day: NextDayDirs | None = None

    def open(self) -> dict[str, int]:
        for directory in (self.spool, self.ready):
            directory.mkdir(parents=True, exist_ok=True)
        self._sealer = Sealer()
        self._next_day = NextDayDirs(self._sealer)
        for tail in discover_tails(self.spool, self.ready):
            recover_parts(self.spool, self.ready, tail)
            last = last_row_ts(self.ready, tail, self.run_id)
            if last is not None:
                self._last_ts[tail] = last
        return dict(self._last_ts)

    def problem(self) -> str | None:
        for writer in list(self._writers.values()):
            problem = writer.problem()
            if problem is not None:
                return problem
        return None

    def write_batch(self, rows: Sequence[SignalRow]) -> int:
        new = 0
        for row in rows:
            if row.ts_ms <= self._last_ts.get(row.symbol, -1):
                continue
            writer = self._writer(row.symbol)
            writer.write(encode_row(row), row.ts_ms)
            self._unflushed.add(writer)
            self._last_ts[row.symbol] = self._latest_ts = row.ts_ms
            new += 1
        return new

    def flush(self) -> None:
        for writer in self._unflushed:
            writer.flush()
        self._unflushed.clear()

    def tick(self) -> None:
        now = time.monotonic()
        for writer in self._writers.values():
            writer.tick(now)
        if self._next_day is not None:
            self._next_day.tick(self._latest_ts, self._writers.values())

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        if self._sealer is not None:
            self._sealer.close()
        if self._next_day is not None:
            self._next_day.close(self._latest_ts)

    def _writer(self, symbol: str) -> SegmentWriter:
        writer = self._writers.get(symbol)
        if writer is None:
            writer = SegmentWriter(
                self.spool,
                self.ready,
                symbol,
                writer_id=f"{self.run_id}-{os.getpid()}",
                sealer=self._sealer,
                **self._opts,
            )
            self._writers[symbol] = writer
            if self._next_day is not None:
                self._next_day.add([writer], self._latest_ts)
        return writer


def last_row_ts(ready: Path, tail: str, run_id: str) -> int | None:
    """ts_ms of the last row of ``run_id`` in the sealed segments of one stream, or None."""
    candidates: list[tuple[str, str, Path]] = []
    if not ready.is_dir():
        return None
    for partition in os.listdir(ready):
        directory = ready / partition / tail
        if not directory.is_dir():
            continue
        for name in os.listdir(directory):
            if name.endswith(SEALED) and run_id in name:
                candidates.append((partition, name, directory / name))
    for _partition, _name, path in sorted(candidates, reverse=True):
        for line in reversed(path.read_bytes().splitlines()):
            try:
                return int(decode_row("signal", line).ts_ms)
            except ContractError:
                continue
    return None
