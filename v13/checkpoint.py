"""A consumer's checkpoint in runtime/state/<name>.json, written atomically, scoped to a run.

The state is a typed msgspec Struct, checked when loaded. A checkpoint of another run is
ignored: a new run starts with its own data, a child restarted within the run resumes where it
stopped. A checkpoint of this run that is not JSON, or not of the expected shape, is corrupt:
one warning, and the consumer starts from the run's start (sinks and the broker ignore rows
they already have, so re-reading is safe).

Example::

    cp = Checkpoint(layout.state_file("signal"), run_id, warn=rt.log)
    state = cp.load(SignalState) or SignalState()
    if cp.due():                   # at most one save per cp.every_s while busy
        cp.save(state)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import orjson

from v13.fsutil import atomic_write_bytes

__all__ = ["SAVE_EVERY_S", "Checkpoint", "StreamPositions"]

S = TypeVar("S", bound=msgspec.Struct)

StreamPositions = dict[str, tuple[str, str, int]]  # tail -> (partition, stem, offset)

SAVE_EVERY_S = 0.25


class Checkpoint:
    """Load and save one consumer's typed state. ``due()`` paces the saves of a busy consumer to
    one per ``every_s``: each is an fsync, and a crash replays at most that much, which the
    consumers' idempotent writes absorb."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        *,
        warn: Callable[[str], None] | None = None,
        every_s: float = SAVE_EVERY_S,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.every_s = every_s
        self._warn = warn or (lambda _message: None)
        self._saved_at = float("-inf")

    def due(self) -> bool:
        """True when ``every_s`` has passed since the last save."""
        return time.monotonic() - self._saved_at >= self.every_s

    def load(self, schema: type[S]) -> S | None:
        """The saved state of this run, or None (no file, another run's, or corrupt: warned)."""
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._corrupt(f"cannot be read ({exc.strerror})")
            return None
        except orjson.JSONDecodeError:
            self._corrupt("is not JSON")
            return None
        if not isinstance(doc, dict):
            self._corrupt("is not a JSON object")
            return None
        if doc.get("run_id") != self.run_id:
            return None
        try:
            return msgspec.convert(doc.get("state"), schema)
        except msgspec.ValidationError as exc:
            self._corrupt(f"has the wrong shape ({exc})")
            return None

    def save(self, state: msgspec.Struct) -> None:
        """Replace the checkpoint; durable, so a crash right after keeps it."""
        data = msgspec.json.encode({"run_id": self.run_id, "state": state})
        atomic_write_bytes(self.path, data, durable=True)
        self._saved_at = time.monotonic()

    def _corrupt(self, why: str) -> None:
        self._warn(f"WARNING checkpoint {self.path} {why}: ignored, starting from the run's start")
