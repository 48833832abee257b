"""One run per root: an exclusive ``flock`` on ``runtime/run.lock``, held for the whole run.

The holder writes who it is (pid, run id, what) into the file, so a second process that cannot
take the lock can say exactly who holds the root. The kernel drops the lock when the holder's
process ends, however it ends (kill -9 included), so a stale lock cannot block the next run.

Example::

    lock = RunLock(layout.lock_file)
    lock.acquire(run_id, "orchestrator")      # RootBusy (a UsageError) when another run holds it
    ...
    lock.release()
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from v13.errors import UsageError

__all__ = ["LockHolder", "RootBusy", "RunLock"]


@dataclass(frozen=True)
class LockHolder:
    """Who holds a root: read from the lock file."""

    pid: int | None
    run_id: str | None
    what: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it has not written its name yet)"
        return f"{self.what or 'a process'} pid {self.pid}, run {self.run_id}"


class RootBusy(UsageError):
    """Another run holds the root's lock."""

    def __init__(self, path: Path, holder: LockHolder) -> None:
        super().__init__(
            f"the work root of {path} is in use by {holder.describe()}; "
            "wait for that run to end, stop it, or pass another --root"
        )
        self.holder = holder


class RunLock:
    """An exclusive, non-blocking flock on one file; released on :meth:`release` or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, run_id: str, what: str) -> bool:
        """Take the lock and write the holder record; False when someone else holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        record = orjson.dumps({"pid": os.getpid(), "run_id": run_id, "what": what})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        self._fd = fd
        return True

    def acquire(self, run_id: str, what: str) -> None:
        """Take the lock or raise :class:`RootBusy` naming the holder."""
        if not self.try_acquire(run_id, what):
            raise RootBusy(self.path, self.holder())

    def holder(self) -> LockHolder:
        """The holder record; a holder that has just taken the lock gets a moment to write it."""
        for _ in range(20):
            try:
                doc = orjson.loads(self.path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("pid"), int):
                run_id, what = doc.get("run_id"), doc.get("what")
                return LockHolder(
                    doc["pid"],
                    run_id if isinstance(run_id, str) else None,
                    what if isinstance(what, str) else None,
                )
            time.sleep(0.01)
        return LockHolder(None, None, None)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
