"""Follow every stream under a spool/ready pair, decode rows by contract, send bad lines to the
deadletter.

Example (the signal stage following the feature streams)::

    reader = StreamReader(layout.preview_spool, layout.preview_ready, "feature",
                          positions=saved, deadletter=Deadletter(...), stem_filter=run_id)
    for tail, row in reader.poll(): ...
    checkpoint.save(State(positions=reader.positions()))   # after the rows' effects are durable

With ``changed`` (directories a :class:`v13.watch.ChangeWatch` saw change), a poll reads only the
streams in them and those that still had rows to give; a sweep re-lists the directories and reads
every stream every ``sweep_s`` anyway, as a safety net (a change the watch cannot explain, such as
a new stream, or a lost notification, makes ``changed`` None: a sweep at once). So the cost of a
poll follows the rows, not the number of streams.
"""

from __future__ import annotations

import time
from itertools import repeat
from pathlib import Path
from typing import Any

from v13.checkpoint import StreamPositions
from v13.contracts import decode_row, decode_rows
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
        sweep_s: float = 5.0,
    ) -> None:
        self.spool, self.ready, self.kind = Path(spool), Path(ready), kind
        self.deadletter = deadletter
        self.stem_filter = stem_filter
        self._fixed_tails = tails
        self._rediscover_s = rediscover_s
        self._sweep_s = sweep_s
        self._last_discover = float("-inf")
        self._saved = {t: Position(*v) for t, v in (positions or {}).items()}
        self.followers: dict[str, SegmentFollower] = {}
        # kept as followers move: a checkpoint per poll costs no pass over every follower
        self._positions: StreamPositions = {}
        self.rows = 0
        self.rejected = 0
        self._unfinished: set[str] = set()  # streams that filled their share of the last poll
        self._last_sweep = float("-inf")
        self._tail_of: dict[Path, str] = {}  # a stream's directory -> its tail ("": above streams)
        self._above_streams: set[str] = {""}  # a partition, and the directories between it and streams

    def rewind(self) -> None:
        """Start again from the first segment of every stream (of ``stem_filter``)."""
        self._saved = {}
        self.followers = {}
        self._positions = {}
        self._tail_of = {}
        self._above_streams = {""}
        self._last_discover = float("-inf")

    def poll(self, max_rows: int = 5000, changed: set[Path] | None = None) -> list[tuple[str, Any]]:
        """New valid rows as (tail, row); invalid lines go to the deadletter and are counted.
        ``changed``: only these directories changed (None: look at every stream)."""
        now = time.monotonic()
        tails = (
            None if changed is None or now - self._last_sweep >= self._sweep_s else self._tails_in(changed)
        )
        if tails is None:
            self._last_sweep = now
            self._discover(force=changed is not None)
            todo = list(self.followers.items())
        else:
            todo = [(t, self.followers[t]) for t in tails | self._unfinished if t in self.followers]
        out: list[tuple[str, Any]] = []
        per_tail = max(1, max_rows // max(1, len(todo)))
        self._unfinished = set()
        for tail, follower in todo:
            taken = 0
            for chunk in follower.read_chunks(per_tail):
                taken += len(chunk.lines)
                lines = chunk.lines if b"" not in chunk.lines else [x for x in chunk.lines if x]
                rows = decode_rows(self.kind, lines)
                if rows is not None:
                    out.extend(zip(repeat(tail), rows))
                    continue
                for i, line in enumerate(chunk.lines):
                    if not line:
                        continue
                    try:
                        out.append((tail, decode_row(self.kind, line)))
                    except ContractError as exc:
                        self._deadletter(tail, str(exc), chunk.position(i), line)
            self._note_position(tail, follower)
            if taken == per_tail:
                self._unfinished.add(tail)
            for reject in follower.rejects:
                self._deadletter(tail, reject.reason, reject.position, reject.snippet)
            follower.rejects.clear()
        self.rows += len(out)
        return out

    def positions(self) -> StreamPositions:
        return dict(self._positions)

    def _note_position(self, tail: str, follower: SegmentFollower) -> None:
        if (pos := follower.position) is not None:
            self._positions[tail] = (pos.partition, pos.stem, pos.offset)

    def _deadletter(self, tail: str, reason: str, pos: Position, line: bytes) -> None:
        self.rejected += 1
        if self.deadletter is not None:
            source = f"{self.ready}/{pos.partition}/{tail}/{pos.stem}"
            self.deadletter.write(reason, source, line, pos.to_list())

    def _tails_in(self, changed: set[Path]) -> set[str] | None:
        """The streams the changed directories hold; None when one is not a known stream's
        (a new partition or stream: look everywhere).

        A partition directory, or one between a partition and known streams (``BTCUSDT`` above
        ``BTCUSDT/trades``), changes when a directory is made in it: the first segment a stream
        seals into a new partition makes its directories in ready/. The watch reports the new
        directories too, so they are judged themselves: known streams' directories explain the
        change, a new stream's does not. Otherwise the first rotation of a thousand streams would
        make a thousand walks of the whole tree."""
        tails: set[str] = set()
        for directory in changed:
            tail = self._tail_of.get(directory)
            if tail is None:
                for root in (self.spool, self.ready):
                    try:
                        parts = directory.relative_to(root).parts
                    except ValueError:
                        continue
                    if not parts:
                        return None  # a root: a new partition
                    tail = "/".join(parts[1:])
                    if tail in self._above_streams:
                        tail = ""
                    elif tail not in self.followers:
                        return None
                    self._tail_of[directory] = tail  # one entry per stream and partition
            if tail:
                tails.add(tail)
        return tails

    def _discover(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._fixed_tails is None and now - self._last_discover < self._rediscover_s:
            return
        self._last_discover = now
        tails = self._fixed_tails or discover_tails(self.spool, self.ready, known=self.followers.keys())
        for tail in tails:
            if tail not in self.followers:
                parts = tail.split("/")
                self._above_streams.update("/".join(parts[:i]) for i in range(1, len(parts)))
                follower = self.followers[tail] = SegmentFollower(
                    self.spool,
                    self.ready,
                    tail,
                    position=self._saved.get(tail),
                    stem_filter=self.stem_filter,
                )
                self._note_position(tail, follower)
