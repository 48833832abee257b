"""Follow every stream under a spool/ready pair, decode rows by contract, checkpoint the lot.

Example (the broker following the JSONL signal sink)::

    reader = StreamReader(layout.signal_spool, layout.signal_ready, "signal",
                          checkpoint=Checkpoint(layout.state_file("broker"), run_id),
                          deadletter=Deadletter(layout.deadletter_dir, "broker", run_id),
                          stem_filter=run_id)
    for tail, row in reader.poll(): ...
    reader.commit()      # after the rows' effects are durable
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from v13.checkpoint import Checkpoint
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
        checkpoint: Checkpoint | None = None,
        deadletter: Deadletter | None = None,
        stem_filter: str | None = None,
        tails: list[str] | None = None,
        rediscover_s: float = 1.0,
    ) -> None:
        self.spool, self.ready, self.kind = Path(spool), Path(ready), kind
        self.checkpoint = checkpoint
        self.deadletter = deadletter
        self.stem_filter = stem_filter
        self._fixed_tails = tails
        self._rediscover_s = rediscover_s
        self._last_discover = float("-inf")
        saved = (checkpoint.load() if checkpoint else None) or {}
        self._saved = {t: Position.from_list(v) for t, v in saved.get("positions", {}).items()}
        self.followers: dict[str, SegmentFollower] = {}
        self.rows = 0
        self.rejected = 0

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
                    self.rejected += 1
                    if self.deadletter is not None:
                        source = f"{self.ready}/{pos.partition}/{tail}/{pos.stem}"
                        self.deadletter.write(str(exc), source, line, pos.to_list())
        self.rows += len(out)
        return out

    def positions(self) -> dict[str, list[str | int]]:
        return {t: f.position.to_list() for t, f in self.followers.items() if f.position is not None}

    def commit(self, extra: dict[str, Any] | None = None) -> None:
        """Save every tail's position (call once what was read is safely handled), with
        ``extra`` state of the consumer in the same atomic file."""
        if self.checkpoint is not None:
            self.checkpoint.save({"positions": self.positions(), **(extra or {})})

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
