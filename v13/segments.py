"""Segment streams: how one process hands rows to the next through files (DESIGN.md section 4).

A stream lives under two roots, ``spool`` (open ``*.part`` files) and ``ready`` (sealed
``*.jsonl``), partitioned by UTC day: ``<root>/<partition>/<tail>/<name>``, where ``tail`` is the
stream inside the partition (``BTCUSDT/trades``, ``BTCUSDT``) and ``name`` is
``<first event ts_ms:013d>-<writer id>-<seq:05d>``, so names sort in write order and are unique
across restarts. Under disk pressure (too many shards, or a too-large file) a writer moves early
to the partition ``<YYYYMMDD>_<nn>``, which sorts after ``<YYYYMMDD>``. Next to its open segment a
writer with a :class:`Sealer` keeps ``<writer id>.spare``, an empty file made in the sealer's
thread that becomes its next segment; followers pass it over.

Writer::

    w = SegmentWriter(spool, ready, "BTCUSDT/trades", writer_id=f"{run_id}-{os.getpid()}", ...)
    w.write(line_bytes, ts_ms)   # buffered; reaches the .part within flush_s
    w.tick()                     # call often: flushes and rotates on time
    w.close()                    # seals the open segment

Follower::

    f = SegmentFollower(spool, ready, "BTCUSDT/trades", position=saved)
    for line, pos in f.read(1000): ...   # complete lines only, in order; f.position to save
    for chunk in f.read_chunks(1000): ...   # the same lines by segment, without a Position each
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import os
import queue
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import accumulate, islice
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from v13 import sealwork
from v13.config import SegmentsConfig
from v13.fsutil import utc_day
from v13.sealwork import seal_file

__all__ = [
    "MAX_LINE_BYTES",
    "PART",
    "SEALED",
    "NextDayDirs",
    "Position",
    "PressureLimits",
    "Reject",
    "Sealer",
    "SegmentFollower",
    "SegmentWriter",
    "discover_tails",
    "recover_parts",
    "seal_file",
    "writer_options",
]

PART = ".part"
SEALED = ".jsonl"
SPARE = ".spare"  # an empty file made ahead that becomes a writer's next segment; followers pass it
_PARTITION_RE = re.compile(r"^\d{8}(_\d{2,})?$")
MAX_LINE_BYTES = 8 * 1024 * 1024  # a longer line is rejected; reads are done in chunks of this
_SNIPPET = 200
DAY_MS = 86_400_000


class Position(NamedTuple):
    """A place in a stream: segment (partition, stem) and the byte offset of the next line.
    (A named tuple: one is made per line read, and a tuple is the cheapest object to make.)"""

    partition: str
    stem: str
    offset: int

    def to_list(self) -> list[str | int]:
        return [self.partition, self.stem, self.offset]

    @classmethod
    def from_list(cls, value: list[str | int]) -> Position:
        partition, stem, offset = value
        return cls(str(partition), str(stem), int(offset))


class Chunk(NamedTuple):
    """Lines read from one segment in one go: ``lines[i]`` starts at byte ``offsets[i]``. A line
    may be empty (a blank line in the file): readers skip those."""

    partition: str
    stem: str
    lines: list[bytes]
    offsets: list[int]

    def position(self, i: int) -> Position:
        return Position(self.partition, self.stem, self.offsets[i])


@dataclass(frozen=True)
class Reject:
    """A line the follower could not hand out, with why and where: it belongs in the deadletter."""

    reason: str
    position: Position
    snippet: bytes


@dataclass(frozen=True)
class PressureLimits:
    """Disk-pressure roll: more shards than this in a partition, or a sealed file larger."""

    max_shards: int = 5000
    max_file_bytes: int = 200 * 1024 * 1024


def writer_options(seg: SegmentsConfig) -> dict[str, Any]:
    """:class:`SegmentWriter` keyword arguments from the ``segments`` config section."""
    mb = 1024 * 1024
    return {
        "rotate_s": seg.rotate_seconds,
        "max_bytes": int(seg.rotate_max_mb * mb),
        "flush_s": seg.flush_ms / 1000,
        "pressure": PressureLimits(seg.pressure_max_shards, int(seg.pressure_max_file_mb * mb)),
    }


def _partitions(*roots: str | Path) -> list[str]:
    names: set[str] = set()
    for root in roots:
        try:
            names.update(n for n in os.listdir(root) if _PARTITION_RE.match(n))
        except FileNotFoundError:
            continue
    return sorted(names)


def _stems(directory: str | Path, suffix: str) -> list[str]:
    try:
        return [n[: -len(suffix)] for n in os.listdir(directory) if n.endswith(suffix)]
    except FileNotFoundError:
        return []


def discover_tails(spool: Path, ready: Path, known: Collection[str] = ()) -> list[str]:
    """Every stream (tail) that has a segment in any partition of either root, and the ``known``
    ones. The directories of known streams are not listed: that is where segments pile up over a
    run, so a follower's look for new streams costs the directories, not the files."""
    tails: set[str] = set(known)
    for root in (spool, ready):
        for partition in _partitions(root):
            base = os.path.join(root, partition)
            for dirpath, dirs, files in os.walk(base):
                rel = os.path.relpath(dirpath, base).replace(os.sep, "/")
                if any(f.endswith((PART, SEALED)) for f in files):
                    tails.add(rel)
                if tails:
                    prefix = "" if rel == "." else f"{rel}/"
                    dirs[:] = [d for d in dirs if prefix + d not in tails]
    return sorted(tails)


def recover_parts(spool: Path, ready: Path, tail: str) -> int:
    """Seal ``.part`` files left by a writer that died: cut a torn last line, fsync, move to ready;
    remove its spare file.

    Only the stream's single writer may call this, before it opens a segment. Returns the count.
    """
    sealed = 0
    for partition in _partitions(spool):
        src_dir = spool / partition / tail
        for stem in _stems(src_dir, SPARE):
            (src_dir / f"{stem}{SPARE}").unlink()
        for stem in _stems(src_dir, PART):
            src = src_dir / f"{stem}{PART}"
            data = src.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]
            if not keep:
                src.unlink()
                continue
            if len(keep) != len(data):
                with open(src, "r+b") as fh:
                    fh.truncate(len(keep))
            seal_file(src, ready / partition / tail / f"{stem}{SEALED}")
            sealed += 1
    return sealed


_FIRST, _IN_TURN, _LAST = 0, 1, 2  # the Sealer's job priorities
_BATCH = 64  # jobs handed to the sealer's process at once: seals handed over meanwhile wait little
Job = tuple[Any, ...]  # a name in v13.sealwork.JOBS, then its arguments


class Sealer:
    """File work of segment writers that need not hold up the loop that writes rows: sealing
    segments (fsync, rename into ready/, fsync the directory), making the next day's directories
    and making spare files. A thread of this process hands the jobs, in batches, to a process of
    their own (:mod:`v13.sealwork`, started at the first job), where waiting for the disk never
    waits for this process's interpreter lock. Seals of the streams a reader follows as they are
    written go first (a follower moves on to a stream's next segment only once the last one is
    sealed, and at 00:00 UTC thousands of segments are sealed at once); otherwise jobs run in the
    order they were handed over.

    A failure (a job's, or the process's end) is raised by the next :meth:`submit`: the writer
    fails, and the stream's next writer seals what was left (:func:`recover_parts`).
    ``drain()`` waits for every handed-over job; ``close()`` drains and stops the thread and the
    process."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self._process: subprocess.Popen[bytes] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def submit(self, src: str, dst: str, *, followed: bool = True) -> None:
        """Seal ``src`` as ``dst``, before the other jobs if a reader ``followed`` its stream as it
        was written; a failure is raised by the next call."""
        if self.error is not None:
            raise RuntimeError(f"sealing segments failed: {self.error}") from self.error
        self._put(("seal", src, dst), _FIRST if followed else _IN_TURN)

    def make_dirs(self, directories: list[str]) -> None:
        """Make ``directories``: the ones writers will open segments in soon (the next UTC
        day's), so the loop that writes rows does not make them at 00:00."""
        self._put(("dirs", directories))

    def make_spare(self, path: str) -> None:
        """Create the empty file ``path``, for a writer to give its next segment's name."""
        self._put(("spare", path))

    def remove(self, path: str) -> None:
        """Remove ``path`` once the jobs handed over before are done (a spare no longer needed)."""
        self._put(("remove", path))

    def _put(self, job: Job, priority: int = _IN_TURN) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the sealer is closed: nothing would do this job")
            self._pending += 1
        self._queue.put((priority, next(self._order), job))

    def drain(self) -> None:
        with self._cond:
            while self._pending:
                self._cond.wait(0.1)

    def close(self) -> None:
        self.drain()
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._queue.put((_LAST, next(self._order), None))
        self._thread.join(10)

    def _run(self) -> None:
        held = None  # a job taken from the queue while gathering a batch: it starts the next one
        try:
            while True:
                priority, _, job = held or self._queue.get()
                held = None
                if job is None:
                    return
                batch = [job]
                while len(batch) < _BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item[0] != priority or item[2] is None:
                        held = item
                        break
                    batch.append(item[2])
                self._do(batch)
                with self._cond:
                    self._pending -= len(batch)
                    self._cond.notify_all()
        finally:
            self._stop_process()

    def _do(self, batch: list[Job]) -> None:
        try:
            process = self._process or self._start_process()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(orjson.dumps(batch) + b"\n")
                process.stdin.flush()
                answer = process.stdout.readline()
            except OSError:  # a broken pipe: the process is gone
                answer = b""
            if not answer:
                raise RuntimeError(f"the sealer's process ended (exit code {process.wait()})")
            problems = [p for p in orjson.loads(answer) if p is not None]
            if problems:
                raise RuntimeError("; ".join(problems))
        except Exception as exc:  # kept for the next submit; this thread must go on, or drain() waits forever
            self.error = exc

    def _start_process(self) -> subprocess.Popen[bytes]:
        # -I: the standard library only, whatever the environment or the current directory hold
        self._process = subprocess.Popen(
            [sys.executable, "-I", sealwork.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return self._process

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):
            process.stdin.close()  # its end of input: it exits after its last job
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


class NextDayDirs:
    """Makes the next UTC day's directories of a process's writers a minute of event time before
    00:00 UTC, in the :class:`Sealer`'s thread: at 00:00 every stream opens a segment in the new
    day's partition at once, and making thousands of directories then would hold up the rows of
    that moment by a second. Directories made for a day the process does not reach are removed.

    The owner calls :meth:`tick` with the event time of its latest row and its writers, and
    :meth:`add` with each writer it makes."""

    def __init__(self, sealer: Sealer, ahead_ms: int = 60_000) -> None:
        self._sealer = sealer
        self.ahead_ms = ahead_ms
        self.day_no = -1  # the UTC day number whose directories were made ahead
        self._made: list[tuple[str, str]] = []  # (partition directory, stream tail)

    def tick(self, ts_ms: int, writers: Iterable[SegmentWriter]) -> None:
        next_day = ts_ms // DAY_MS + 1
        if next_day != self.day_no and next_day * DAY_MS - ts_ms <= self.ahead_ms:
            self.day_no, self._made = next_day, []
            self.add(writers, ts_ms)

    def add(self, writers: Iterable[SegmentWriter], ts_ms: int) -> None:
        """Make the directories of ``writers`` too, if the day to come has been prepared."""
        if self.day_no <= ts_ms // DAY_MS:
            return
        day = _day_name(self.day_no)
        made = [(f"{w.spool}/{day}", w.tail) for w in writers]
        self._made += made
        self._sealer.make_dirs([f"{base}/{tail}" for base, tail in made])

    def close(self, ts_ms: int) -> None:
        """After the writers are sealed and the sealer drained: remove what was made for a day
        that ``ts_ms``, the last row's event time, did not reach."""
        if ts_ms < self.day_no * DAY_MS:
            for base, tail in self._made:
                _remove_empty(base, tail)
        self._made = []


def _remove_empty(base: str, tail: str) -> None:
    """Remove ``base/tail`` and the directories between, up to ``base``, as far as they are empty."""
    parts = tail.split("/")
    with contextlib.suppress(OSError):  # not empty (or gone already): the rest stays
        for n in range(len(parts), 0, -1):
            os.rmdir(os.path.join(base, *parts[:n]))
        os.rmdir(base)


class SegmentWriter:
    """Writes one stream as rotating JSONL segments; a single writer per (roots, tail).

    It holds no file open between flushes (each flush appends with its own open), so a process
    with thousands of streams keeps a handful of files open. The first segment's rotation time is
    shortened by a fixed fraction of ``rotate_s`` taken from the stream's name, so streams started
    together do not all seal in the same instant. With a :class:`Sealer`, the fsync and rename of a
    rotation happen off the caller's thread, before other streams' if the stream is ``followed``.
    """

    def __init__(
        self,
        spool: Path,
        ready: Path,
        tail: str,
        *,
        writer_id: str,
        rotate_s: float = 60.0,
        max_bytes: int = 64 * 1024 * 1024,
        flush_s: float = 0.2,
        pressure: PressureLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        sealer: Sealer | None = None,
        stagger: bool = True,
        followed: bool = True,
    ) -> None:
        if "-" in tail or not writer_id:
            raise ValueError(f"bad stream tail {tail!r} or writer id {writer_id!r}")
        self.spool, self.ready, self.tail = Path(spool), Path(ready), tail
        self._spool_s, self._ready_s = os.fspath(spool), os.fspath(ready)  # paths by string joins
        self.writer_id = writer_id
        self.rotate_s, self.max_bytes, self.flush_s = rotate_s, max_bytes, flush_s
        self.pressure = pressure or PressureLimits()
        self._clock = clock
        self._sealer = sealer
        self.followed = followed  # a reader follows the stream as it is written: seal it first
        phase = zlib.crc32(tail.encode()) / 2**32 if stagger else 0.0
        self._rotate_first = rotate_s * (1.0 - 0.5 * phase)
        self._path: str | None = None
        self._path_bytes = b""
        self._ino = 0
        self._partition: str | None = None
        self._day_no = -1  # UTC day number of the partition
        self._stem = ""
        self._seq = 0
        self._opened_at = 0.0
        self._last_flush = 0.0
        self._size = 0
        self._buf: list[bytes] = []
        self._spare: str | None = None  # asked of the sealer's thread; there once it has run
        self._spares = True  # False on a file system without hard links
        self._shards_in_partition = 0
        self._roll_early = False
        self.rows_written = 0
        self.segments_sealed = 0
        self.recovered = recover_parts(self.spool, self.ready, tail)

    @property
    def is_open(self) -> bool:
        return self._path is not None

    @property
    def part_path(self) -> Path | None:
        """The open segment's path, or None."""
        return None if self._path is None else Path(self._path)

    def problem(self) -> str | None:
        """Why rows written now would be lost (the open segment was deleted or replaced, or its
        directory is not writable), or None when all is well. Safe to call from another thread."""
        path = self._path
        if path is None:
            return None
        try:
            ino = os.stat(path).st_ino
        except OSError as exc:
            return f"open segment {path} is gone ({exc.strerror})"
        if ino != self._ino:
            return f"open segment {path} was replaced by another file"
        if not os.access(path, os.W_OK):
            return f"open segment {path} is not writable"
        return None

    def write(self, line: bytes, ts_ms: int) -> None:
        """Append one JSON line (without newline); ``ts_ms`` (event time) names a new segment.
        Buffered: it reaches the file at the next :meth:`flush`, or the first :meth:`tick` after
        ``flush_s`` (a writer of thousands of streams ticks them all once per loop, not per row)."""
        if self._path is None:
            self._open(ts_ms)
        elif ts_ms // DAY_MS != self._day_no:
            self.seal()
            self._open(ts_ms)
        self._buf.append(line)
        self._size += len(line) + 1
        self.rows_written += 1
        if self._size >= self.max_bytes:
            self.seal()

    def tick(self, now: float | None = None) -> None:
        """Flush when the flush interval has passed; seal on the rotation time or size. ``now``:
        the clock's reading, when the caller ticks many writers at once."""
        if self._path is None:
            return
        if now is None:
            now = self._clock()
        rotate = self._rotate_first if self.segments_sealed == 0 else self.rotate_s
        if now - self._opened_at >= rotate or self._size >= self.max_bytes:
            self.seal()
        elif self._buf and now - self._last_flush >= self.flush_s:
            self._flush(now)

    def flush(self) -> None:
        """Push buffered lines to the open segment now (readers can see them)."""
        if self._path is not None:
            self._flush(self._clock())

    def seal(self) -> None:
        """Flush, fsync and move the open segment to ready/ (by the sealer, if there is one);
        no-op when none is open."""
        if self._path is None or self._partition is None:
            return
        self._flush(self._clock())
        dst = f"{self._ready_s}/{self._partition}/{self.tail}/{self._stem}{SEALED}"
        if self._sealer is not None:
            self._sealer.submit(self._path, dst, followed=self.followed)
        else:
            seal_file(self._path, dst)
        self._path = None
        self.segments_sealed += 1
        self._shards_in_partition += 1
        if self._shards_in_partition >= self.pressure.max_shards or self._size > self.pressure.max_file_bytes:
            self._roll_early = True

    def close(self) -> None:
        self.seal()
        if self._spare is not None:
            if self._sealer is not None:
                self._sealer.remove(self._spare)  # after the job that makes it
            self._spare = None

    def _flush(self, now: float) -> None:
        if self._buf and self._path is not None:
            self._buf.append(b"")  # the last line's newline
            data = b"\n".join(self._buf)
            self._buf.clear()
            fd = os.open(self._path_bytes, os.O_WRONLY | os.O_APPEND)  # bytes: no conversion per flush
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        self._last_flush = now

    def _open(self, ts_ms: int) -> None:
        day_no = ts_ms // DAY_MS
        if self._partition is None or day_no != self._day_no:
            self._partition, self._shards_in_partition = self._latest_partition(_day_name(day_no))
            self._roll_early = self._shards_in_partition >= self.pressure.max_shards
        if self._roll_early:
            self._partition = _next_partition(self._partition)
            self._shards_in_partition = 0
            self._roll_early = False
        self._day_no = day_no
        self._seq += 1
        self._stem = f"{ts_ms:013d}-{self.writer_id}-{self._seq:05d}"
        directory = f"{self._spool_s}/{self._partition}/{self.tail}"
        path = f"{directory}/{self._stem}{PART}"
        if self._spare is not None and self._take_spare(self._spare, directory, path):
            self._ino = os.stat(path).st_ino
        else:
            self._ino = _create_file(directory, path)
        if self._sealer is not None and self._spare is None and self._spares:
            self._spare = f"{directory}/{self.writer_id}{SPARE}"
            self._sealer.make_spare(self._spare)
        self._path = path
        self._path_bytes = os.fsencode(path)
        self._opened_at = self._last_flush = self._clock()
        self._size = 0

    def _take_spare(self, spare: str, directory: str, path: str) -> bool:
        """Give the spare file the name ``path``; False when it is not made yet, or when the file
        system has no hard links. Creating a file can take a millisecond on a busy disk, and
        thousands of streams open one at 00:00 UTC; a hard link and an unlink take tens of
        microseconds, and never replace a file."""
        self._spare = None
        try:
            try:
                os.link(spare, path)
            except FileNotFoundError:
                if not os.path.exists(spare):  # not made yet (the sealer's thread is behind), or removed
                    if self._sealer is not None:
                        self._sealer.remove(spare)  # after the job that makes it: no spare left over
                    return False  # and ask again
                os.makedirs(directory, exist_ok=True)  # a partition whose directory was not made ahead
                os.link(spare, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links here (FAT, some network file systems): create files
            self._spares = False
            if self._sealer is not None:
                self._sealer.remove(spare)
            return False
        os.unlink(spare)
        return True

    def _latest_partition(self, day: str) -> tuple[str, int]:
        """The newest partition of ``day`` that holds this stream, so a restart never goes back,
        and how many sealed segments of it are there. It holds the stream once a segment of it
        is sealed there: ready/ is the one to list."""
        ready, tail = self._ready_s, self.tail
        mine = [p for p in _partitions(ready) if p.startswith(day) and os.path.isdir(f"{ready}/{p}/{tail}")]
        if not mine:
            return day, 0
        return mine[-1], len(_stems(f"{ready}/{mine[-1]}/{tail}", SEALED))


def _create_file(directory: str, path: str) -> int:
    """Create the empty file ``path`` (never an existing one), and ``directory`` if missing;
    returns its inode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:  # the first segment in this partition, unless it was made ahead
        os.makedirs(directory, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=4)
def _day_name(day_no: int) -> str:
    """YYYYMMDD of a UTC day number: every stream asks for the same one at 00:00."""
    return utc_day(day_no * DAY_MS)


def _next_partition(partition: str) -> str:
    day, _, n = partition.partition("_")
    return f"{day}_{int(n or 0) + 1:02d}"


class SegmentFollower:
    """Reads one stream in write order, complete lines only, resumable from a :class:`Position`.

    It never skips a segment that is still open: a ``.part`` left by a dead writer is sealed by
    that stream's next writer (:func:`recover_parts`), and reading resumes then. A segment that
    vanished (deleted by hand) is skipped and counted in ``vanished``. Lines it cannot hand out
    (longer than :data:`MAX_LINE_BYTES`, or the torn end of a sealed segment) are skipped and
    queued in ``rejects`` for the caller's deadletter. ``stem_filter`` keeps only segments whose
    name contains it (a run id).
    """

    def __init__(
        self,
        spool: Path,
        ready: Path,
        tail: str,
        *,
        position: Position | None = None,
        stem_filter: str | None = None,
    ) -> None:
        self.spool, self.ready, self.tail = Path(spool), Path(ready), tail
        self.position = position
        self.stem_filter = stem_filter
        self.rejects: list[Reject] = []
        self.vanished = 0
        self._skipping = False  # inside an over-long line: drop bytes up to its newline
        self._spool_s, self._ready_s = os.fspath(self.spool), os.fspath(self.ready)
        self._paths_of: tuple[tuple[str, str], tuple[str, str]] = (("", ""), ("", ""))

    def read(self, max_lines: int = 10_000) -> list[tuple[bytes, Position]]:
        """Up to ``max_lines`` new lines, each with the position it started at."""
        return [
            (line, Position(c.partition, c.stem, offset))
            for c in self.read_chunks(max_lines)
            for line, offset in zip(c.lines, c.offsets, strict=True)
            if line
        ]

    def read_chunks(self, max_lines: int = 10_000) -> list[Chunk]:
        """Up to ``max_lines`` new lines (blank ones included), by segment."""
        out: list[Chunk] = []
        budget = max_lines
        while budget > 0:
            if self.position is None:
                self.position = self._first()
                if self.position is None:
                    break
            pos = self.position
            finished, taken = self._read_segment(pos, budget, out)
            budget -= taken
            if not finished:
                break
            nxt = self._next_after(pos)
            if nxt is None:
                break
            self.position = nxt
        return out

    def _read_segment(self, pos: Position, budget: int, out: list[Chunk]) -> tuple[bool, int]:
        """Append a chunk of complete lines of ``pos``'s segment; (finished, lines taken), finished
        when it is sealed and read to the end (or vanished, so reading moves on)."""
        sealed_path, part_path = self._paths(pos)
        for _ in range(3):
            # the open name first: it is where a follower that keeps up finds its segment
            try:
                size, sealed = os.stat(part_path).st_size, False
            except FileNotFoundError:
                try:
                    size, sealed = os.stat(sealed_path).st_size, True
                except FileNotFoundError:
                    continue  # gone from both: vanished, or a look raced a rename; look again
            if size == pos.offset:  # nothing new: no need to open it
                if sealed:
                    self._skipping = False  # a line never runs into the next segment
                return sealed, 0
            try:
                # a bare descriptor and one pread: no file object, seek or tty check per read
                fd = os.open(sealed_path if sealed else part_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # renamed between the check and the open: look again
            try:
                # what the stat saw, not a full chunk: asking for 8 MiB allocates 8 MiB,
                # which moves glibc's mmap threshold and leaves the heap fragmented
                data = os.pread(fd, max(0, min(MAX_LINE_BYTES, size - pos.offset)), pos.offset)
            finally:
                os.close(fd)
            break
        else:
            self.vanished += 1
            self._skipping = False
            return True, 0
        at_eof = len(data) < MAX_LINE_BYTES
        consumed = 0
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                self.position = Position(pos.partition, pos.stem, pos.offset + len(data))
                self._skipping = not (sealed and at_eof)  # a line never runs into the next segment
                return not self._skipping, 0
            consumed = newline + 1
            self._skipping = False
        elif b"\n" not in data and not at_eof:
            self._reject(f"line longer than {MAX_LINE_BYTES} bytes", pos, data)
            self._skipping = True
            self.position = Position(pos.partition, pos.stem, pos.offset + len(data))
            return False, 0
        lines = data[consumed:].split(b"\n")
        fragment = lines.pop()  # bytes after the last newline: an incomplete line, or b""
        complete = len(lines)
        del lines[budget:]
        start = pos.offset + consumed
        offsets = [start + x for x in accumulate((len(line) + 1 for line in lines), initial=0)]
        end = offsets.pop()
        if lines:
            out.append(Chunk(pos.partition, pos.stem, lines, offsets))
        consumed = end - pos.offset
        finished = sealed and at_eof and len(lines) == complete
        if finished and fragment:
            # A sealed file ends mid-line only when damaged; the fragment cannot be completed.
            torn_at = Position(pos.partition, pos.stem, end)
            self._reject("torn last line of a sealed segment", torn_at, fragment)
            consumed += len(fragment)
        self.position = Position(pos.partition, pos.stem, pos.offset + consumed)
        return finished, len(lines)

    def _reject(self, reason: str, pos: Position, data: bytes) -> None:
        self.rejects.append(Reject(reason, pos, data[:_SNIPPET]))

    def _stems_in(self, partition: str) -> list[str]:
        """The stream's segments in ``partition``, of every run, in write order."""
        # spool first: a part sealed between the two listings is then found in ready/;
        # listed the other way round it would be in neither and skipped
        stems = set(_stems(self.spool / partition / self.tail, PART))
        stems.update(_stems(self.ready / partition / self.tail, SEALED))
        return sorted(stems)

    def _paths(self, pos: Position) -> tuple[str, str]:
        """The sealed and open paths of ``pos``'s segment, built once per segment (string joins:
        a poll of a stream that has not changed costs a stat, not path objects)."""
        key = (pos.partition, pos.stem)
        if self._paths_of[0] != key:
            sub = f"{pos.partition}/{self.tail}/{pos.stem}"
            self._paths_of = (key, (f"{self._ready_s}/{sub}{SEALED}", f"{self._spool_s}/{sub}{PART}"))
        return self._paths_of[1]

    def _first(self) -> Position | None:
        return self._next_after(None)

    def _next_after(self, pos: Position | None) -> Position | None:
        """The first segment after ``pos`` (None: the first of all). Earlier partitions are not
        listed, and within ``pos``'s a bisect finds the next: a stream's directories fill up
        with segments over a run, one per rotation."""
        for partition in _partitions(self.spool, self.ready):
            if pos is not None and partition < pos.partition:
                continue
            stems = self._stems_in(partition)
            i = bisect.bisect_right(stems, pos.stem) if pos is not None and partition == pos.partition else 0
            for stem in islice(stems, i, None):
                if self.stem_filter is None or self.stem_filter in stem:
                    return Position(partition, stem, 0)
        return None
