"""Wake a consumer when files under some directories change, instead of sleeping between polls.

On Linux this is inotify (``inotify_simple``), watching every directory under the roots (new
directories are added as they appear): a write to a segment or a rename into ready/ wakes
:meth:`ChangeWatch.wait` at once and says which directories changed. Elsewhere, or when inotify
cannot be used, ``wait`` sleeps its timeout and answers None: "poll everything".

Example::

    watch = ChangeWatch([layout.preview_spool, layout.preview_ready])
    changed = watch.wait(stop=rt.stop_event)   # set of directories, or None
"""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

__all__ = ["LOOK_AGAIN_S", "ChangeWatch"]

LOOK_AGAIN_S = 0.5  # a consumer looks this often even when no change was notified
_SLICE_S = 0.1  # a stop request is seen within this


class ChangeWatch:
    """Directories under ``roots`` (created if missing) that changed since the last ``wait``;
    ``recursive=False`` watches the roots themselves only."""

    def __init__(self, roots: list[Path], *, recursive: bool = True) -> None:
        self.roots = [Path(r) for r in roots]
        self.recursive = recursive
        self._inotify = None
        self._dirs: dict[int, Path] = {}
        try:
            from inotify_simple import INotify, flags

            self._flags = flags
            self._mask = flags.MODIFY | flags.MOVED_TO | flags.CREATE | flags.CLOSE_WRITE
            self._inotify = INotify()
            for root in self.roots:
                root.mkdir(parents=True, exist_ok=True)
                self._add_tree(root)
        except (ImportError, OSError):
            self.close()
            self._inotify = None

    @property
    def active(self) -> bool:
        return self._inotify is not None

    def wait(self, timeout: float = LOOK_AGAIN_S, stop: threading.Event | None = None) -> set[Path] | None:
        """Block until something changes (the directories), the timeout (an empty set), or a
        stop request; None when changes cannot be watched (poll everything)."""
        if self._inotify is None:
            if stop is not None:
                stop.wait(timeout)
            else:
                threading.Event().wait(timeout)
            return None
        left = timeout
        while True:
            ready, _, _ = select.select([self._inotify.fd], [], [], min(left, _SLICE_S))
            if ready:
                return self._changes()
            left -= _SLICE_S
            if left <= 0 or (stop is not None and stop.is_set()):
                return set()

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()

    def _changes(self) -> set[Path] | None:
        assert self._inotify is not None
        changed: set[Path] = set()
        overflowed = False
        for event in self._inotify.read(timeout=0):
            if event.mask & self._flags.Q_OVERFLOW:
                overflowed = True  # events were lost: the caller must look everywhere
                continue
            if event.mask & self._flags.IGNORED:
                self._dirs.pop(event.wd, None)  # the directory was removed
                continue
            directory = self._dirs.get(event.wd)
            if directory is None:
                continue
            changed.add(directory)
            if self.recursive and event.mask & self._flags.ISDIR and event.mask & self._flags.CREATE:
                # a new partition or stream directory: what it already holds is news too
                changed.update(self._add_tree(directory / event.name))
        return None if overflowed else changed

    def _add_tree(self, top: Path) -> list[Path]:
        """Watch ``top`` (and, when recursive, the directories below it); the directories added.
        Each directory is watched before it is listed, so a subdirectory created meanwhile is
        either in the listing or announced by an event."""
        assert self._inotify is not None
        added: list[Path] = []
        todo = [top]
        while todo:
            path = todo.pop()
            try:
                wd = self._inotify.add_watch(path, self._mask)
            except OSError:
                continue  # gone again, or not readable
            self._dirs[wd] = path
            added.append(path)
            if self.recursive:
                try:
                    todo.extend(Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
                except OSError:
                    continue
        return added
