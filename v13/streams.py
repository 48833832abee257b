"""The harvest's output streams: raw trades and books, and feature rows, one segment stream each
per symbol under the layout of DESIGN.md section 3::

    data/raw/<YYYYMMDD>/<SYMBOL>/trades/*.jsonl     data/raw/<YYYYMMDD>/<SYMBOL>/book/*.jsonl
    data/preview/<YYYYMMDD>/<SYMBOL>/features/*.jsonl
    data/spool/{raw,preview}/...                    (the open *.part segments)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from v13.config import SegmentsConfig
from v13.contracts import BookRow, FeatureRow, TradeRow, encode_row
from v13.segments import SegmentWriter, writer_options

__all__ = ["StreamSet", "raw_tail"]

_RAW_KIND = {TradeRow: "trades", BookRow: "book"}


def raw_tail(symbol: str, kind: str) -> str:
    """Stream name inside a partition: ``BTCUSDT/trades``, ``BTCUSDT/book``, ``BTCUSDT/features``."""
    return f"{symbol}/{kind}"


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
        self.data_dir = Path(data_dir)
        self.writer_id = writer_id
        self.seg = seg
        self.write_raw = write_raw
        self._clock = clock
        self.writers: dict[tuple[str, str], SegmentWriter] = {}
        self.rows = {"trades": 0, "book": 0, "features": 0}

    def write(self, row: TradeRow | BookRow | FeatureRow) -> None:
        if isinstance(row, FeatureRow):
            kind, root = "features", "preview"
        else:
            if not self.write_raw:
                return
            kind, root = _RAW_KIND[type(row)], "raw"
        self._writer(root, row.symbol, kind).write(encode_row(row), row.ts_ms)
        self.rows[kind] += 1

    def tick(self) -> None:
        for writer in self.writers.values():
            writer.tick()

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    @property
    def segments_sealed(self) -> int:
        return sum(w.segments_sealed for w in self.writers.values())

    def _writer(self, root: str, symbol: str, kind: str) -> SegmentWriter:
        key = (symbol, kind)
        writer = self.writers.get(key)
        if writer is None:
            writer = SegmentWriter(
                self.data_dir / "spool" / root,
                self.data_dir / root,
                raw_tail(symbol, kind),
                writer_id=self.writer_id,
                clock=self._clock or time.monotonic,
                **writer_options(self.seg),
            )
            self.writers[key] = writer
        return writer
