"""A consumer's checkpoint in runtime/state/<name>.json, written atomically, scoped to a run.

A checkpoint of another run is ignored: a new run starts with its own data, a child restarted
within the run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from v13.fsutil import atomic_write_bytes

__all__ = ["Checkpoint"]


class Checkpoint:
    """Load and save one consumer's position state (any JSON mapping)."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run, or None (no file, another run, or an unreadable file)."""
        try:
            doc = orjson.loads(self.path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        if not isinstance(doc, dict) or doc.get("run_id") != self.run_id:
            return None
        state = doc.get("state")
        return state if isinstance(state, dict) else None

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint; durable, so a crash right after keeps it."""
        data = orjson.dumps({"run_id": self.run_id, "state": state})
        atomic_write_bytes(self.path, data, durable=True)
