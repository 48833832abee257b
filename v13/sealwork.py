"""The file work of segment writers that need not hold up the loop writing rows: sealing a segment
(fsync, rename into ready/, fsync the directory), making directories ahead, making and removing
spare files.

Run as a script, it is the sealer's own process (:class:`v13.segments.Sealer`): it reads batches
of jobs from stdin, one JSON list a line (``[["seal", src, dst], ["spare", path], ...]``), does
them in order (seals next to each other at once, on a few threads) and answers each batch with a
JSON list of the same length (null, or what went wrong), until stdin ends. SIGINT and SIGTERM do
not stop it: its writers' process does, by closing stdin or by ending.

Why a process: a seal mostly waits for the disk, and a thread of the writers' own process that
waits on every system call has to win the interpreter lock back each time from a busy loop,
about 5 ms a call and some 25 ms a seal (see docs/performance.md). In a process of its own it
waits only for the disk.

It imports the standard library only, so the process starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["JOBS", "fsync_dir", "run_batch", "seal_file"]

SEAL_THREADS = 4  # 1,000 fsyncs on the test host: 225–253 ms one by one, 112–139 ms on 4 threads


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal_file(src: str | Path, dst: str | Path) -> None:
    """Make ``src`` durable and move it to ``dst`` atomically."""
    fd = os.open(src, os.O_WRONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    parent = os.path.dirname(dst)
    try:
        os.replace(src, dst)
    except FileNotFoundError:  # the stream's first segment in this partition: a new directory
        os.makedirs(parent, exist_ok=True)
        os.replace(src, dst)
    fsync_dir(parent)


def make_dirs(directories: list[str]) -> None:
    with contextlib.suppress(OSError):  # only saves time: a writer that finds none makes its own
        for directory in directories:
            os.makedirs(directory, exist_ok=True)


def make_spare(path: str) -> None:
    with contextlib.suppress(OSError):  # only saves time: a writer that finds none creates its file
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))


def remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


JOBS: dict[str, Callable[..., None]] = {
    "seal": seal_file,
    "dirs": make_dirs,
    "spare": make_spare,
    "remove": remove_file,
}


def run_batch(batch: list[list[Any]]) -> list[str | None]:
    """Do the jobs of ``batch`` in order, seals next to each other at once (an fsync mostly waits
    for the disk, which does several at once much faster than one after another); per job None,
    or why it failed."""
    results: list[str | None] = []
    while len(results) < len(batch):
        start = end = len(results)
        while end < len(batch) and batch[end][0] == "seal":
            end += 1
        if end - start > 1:
            results += _pool().map(_run, batch[start:end])
        else:
            results.append(_run(batch[start]))
    return results


def _run(job: list[Any]) -> str | None:
    name, *args = job
    try:
        JOBS[name](*args)
    except Exception as exc:  # reported to the writers' process, which raises it
        return f"{name} {args}: {exc}"
    return None


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(SEAL_THREADS)


def main() -> None:
    # Its writers' process decides when it ends (stdin closed, or that process gone): a Ctrl-C
    # sent to the whole process group must not kill it before the writers' last seals.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):  # the writers' process is gone: nobody to answer
        for line in sys.stdin.buffer:
            sys.stdout.write(json.dumps(run_batch(json.loads(line))) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
