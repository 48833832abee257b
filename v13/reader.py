"""Follow every stream under a spool/ready pair, decode rows by contract, send bad lines to the
deadletter.

Example (the signal stage following the feature streams)::

    reader = StreamReader(layout.preview_spool, layout.preview_ready, "feature",
                          positions=saved, deadletter=Deadletter(...), stem_filter=run_id)
    for tail, row in reader.poll(): ...
    checkpoint.save(State(positions=reader.positions()))   # after the rows' effects are durable
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from v13.checkpoint import StreamPositions
from v13.contracts import decode_row
from v13.deadletter import Deadletter
from v13.errors import ContractError
from v13.segments import Position, SegmentFollower, discover_tails

__all__ = ["StreamReader"]


class StreamReader:
    """Reads rows of contract ``kind`` from all tails of a stream root, in order per tail."""

    def __init__(
        self,
        spool: Path,
        ready: Path,
        kind: str,
        *,
        positions: StreamPositions | None = None,
        deadletter: Deadletter | None = None,
        stem_filter: str | None = None,
        tails: list[str] | None = None,
        rediscover_s: float = 1.0,
    ) -> None:
        self.spool, self.ready, self.kind = Path(spool), Path(ready), kind
        self.deadletter = deadletter
        self.stem_filter = stem_filter
        self._fixed_tails = tails
        self._rediscover_s = rediscover_s
        self._last_discover = float("-inf")
        self._saved = {t: Position(*v) for t, v in (positions or {}).items()}
        self.followers: dict[str, SegmentFollower] = {}
        self.rows = 0
        self.rejected = 0

    def rewind(self) -> None:
        """Start again from the first segment of every stream (of ``stem_filter``)."""
        self._saved = {}
        self.followers = {}
        self._last_discover = float("-inf")

    def poll(self, max_rows: int = 5000) -> list[tuple[str, Any]]:
        """New valid rows as (tail, row); invalid lines go to the deadletter and are counted."""
        self._discover()
        out: list[tuple[str, Any]] = []
        per_tail = max(1, max_rows // max(1, len(self.followers)))
        for tail, follower in self.followers.items():
            for line, pos in follower.read(per_tail):
                try:
                    out.append((tail, decode_row(self.kind, line)))
                except ContractError as exc:
                    self._deadletter(tail, str(exc), pos, line)
            for reject in follower.rejects:
                self._deadletter(tail, reject.reason, reject.position, reject.snippet)
            follower.rejects.clear()
        self.rows += len(out)
        return out

    def positions(self) -> StreamPositions:
        return {
            t: (f.position.partition, f.position.stem, f.position.offset)
            for t, f in self.followers.items()
            if f.position is not None
        }

    def _deadletter(self, tail: str, reason: str, pos: Position, line: bytes) -> None:
        self.rejected += 1
        if self.deadletter is not None:
            source = f"{self.ready}/{pos.partition}/{tail}/{pos.stem}"
            self.deadletter.write(reason, source, line, pos.to_list())

    def _discover(self) -> None:
        now = time.monotonic()
        if self._fixed_tails is None and now - self._last_discover < self._rediscover_s:
            return
        self._last_discover = now
        tails = self._fixed_tails or discover_tails(self.spool, self.ready)
        for tail in tails:
            if tail not in self.followers:
                self.followers[tail] = SegmentFollower(
                    self.spool,
                    self.ready,
                    tail,
                    position=self._saved.get(tail),
                    stem_filter=self.stem_filter,
                )
