"""The harvest's output streams: raw trades and books, and feature rows, one segment stream each
per symbol, where :class:`v13.layout.DataLayout` puts them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from v13.config import SegmentsConfig
from v13.contracts import BookRow, FeatureRow, TradeRow, encode_row
from v13.layout import DataLayout
from v13.segments import NextDayDirs, Sealer, SegmentWriter, writer_options

__all__ = ["StreamSet"]

_RAW_KIND = {TradeRow: "trades", BookRow: "book"}


class StreamSet:
    """Lazily opened writers for every (symbol, kind) the harvest produces."""

    def __init__(
        self,
        data_dir: Path,
        writer_id: str,
        seg: SegmentsConfig,
        *,
        write_raw: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.data = DataLayout(Path(data_dir))
        self.writer_id = writer_id
        self.seg = seg
        self.write_raw = write_raw
        self._clock = clock
        self.writers: dict[tuple[str, str], SegmentWriter] = {}
        self.rows = {"trades": 0, "book": 0, "features": 0}
        self._sealer = Sealer()  # rotations are sealed off the loop that writes rows
        self._next_day = NextDayDirs(self._sealer)
        self._feature_ts = 0  # event time of the latest feature row

    def write(self, row: TradeRow | BookRow | FeatureRow) -> None:
        """Raw rows are buffered (flushed every ``flush_ms``); a feature row goes to its file at
        once, since the signal stage is waiting for it."""
        if isinstance(row, FeatureRow):
            writer = self._writer(row.symbol, "features")
            writer.write(encode_row(row), row.ts_ms)
            writer.flush()
            self.rows["features"] += 1
            self._feature_ts = row.ts_ms
            return
        if not self.write_raw:
            return
        kind = _RAW_KIND[type(row)]
        self._writer(row.symbol, kind).write(encode_row(row), row.ts_ms)
        self.rows[kind] += 1

    def tick(self) -> None:
        now = (self._clock or time.monotonic)()
        for writer in self.writers.values():
            writer.tick(now)
        self._next_day.tick(self._feature_ts, self.writers.values())

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        """Seal every open segment and wait until all are in ready/; the streams take no row after."""
        for writer in self.writers.values():
            writer.close()
        self._sealer.close()
        self._next_day.close(self._feature_ts)

    @property
    def segments_sealed(self) -> int:
        return sum(w.segments_sealed for w in self.writers.values())

    def _writer(self, symbol: str, kind: str) -> SegmentWriter:
        key = (symbol, kind)
        writer = self.writers.get(key)
        if writer is None:
            d = self.data
            if kind == "features":
                spool, ready, tail = d.preview_spool, d.preview_ready, d.feature_tail(symbol)
            else:
                spool, ready, tail = d.raw_spool, d.raw_ready, d.raw_tail(symbol, kind)
            writer = SegmentWriter(
                spool,
                ready,
                tail,
                writer_id=self.writer_id,
                clock=self._clock or time.monotonic,
                sealer=self._sealer,
                followed=kind == "features",  # the signal stage follows features; raw rows wait
                **writer_options(self.seg),
            )
            self.writers[key] = writer
            self._next_day.add([writer], self._feature_ts)
        return writer
