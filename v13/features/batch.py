"""Feature rows of raw segments, each symbol in a worker process, merged into one file.

Symbols are independent (one engine each), so ``jobs`` worker processes each take the next
symbol when free and write its rows (in event time, as the engine closes them) to a file of its
own; the files are then merged by (ts_ms, symbol) into ``out``. The bytes of ``out`` do not
depend on ``jobs``. ``out`` appears complete or not at all (``v13.fsutil.atomic_output``). A
worker that fails or is killed stops the run with an error; Ctrl-C stops the workers too.
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import os
import queue
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from v13.cli import gc_policy
from v13.config import FeaturesConfig
from v13.contracts import FeatureRow, encode_row
from v13.deadletter import Deadletter
from v13.errors import BatchFailure
from v13.features.engine import FeatureEngine
from v13.fsutil import atomic_output
from v13.progress import Progress
from v13.sources.replay import symbol_rows

__all__ = ["WorkerFailed", "default_jobs", "recompute"]

_COUNT_EVERY = 1000  # feature rows written between two looks at the progress


class WorkerFailed(BatchFailure):
    """A worker process ended before its symbols were done (an error, or killed)."""


@dataclass(frozen=True)
class _Input:
    cfg: FeaturesConfig
    spool: Path
    ready: Path
    deadletter_dir: Path
    tmp: Path  # the symbols' files
    symbols: tuple[str, ...]


def _symbol_features(
    engine: FeatureEngine, spool: Path, ready: Path, symbol: str, deadletter: Deadletter
) -> Iterator[FeatureRow]:
    """Features of one symbol: its trades and books merged in the order they were received."""
    for row in symbol_rows(spool, ready, symbol, deadletter):
        yield from engine.on_row(row)
    yield from engine.finish()


def default_jobs(symbols: int) -> int:
    """The CPUs this process may run on, at most one per symbol."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, symbols))


def recompute(cfg: FeaturesConfig, spool: Path, ready: Path, symbols: list[str], out: Path,
              deadletter_dir: Path, jobs: int) -> tuple[int, int]:  # fmt: skip
    """Write the feature rows of ``symbols`` to ``out``; returns (rows, rows sent to the deadletter)."""
    progress = Progress("v13.features", total=len(symbols), unit="symbols")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".v13-features-", dir=out.parent) as tmp:
        inp = _Input(cfg, spool, ready, deadletter_dir, Path(tmp), tuple(symbols))
        deadletter, total = _run_workers(inp, jobs, progress)
        merging = Progress("v13.features: merging", total=total, unit="rows")
        rows = 0
        with atomic_output(out) as fh:
            for _ts, _symbol, line in heapq.merge(*(_rows_of(inp, s) for s in symbols)):
                fh.write(line)
                rows += 1
                if not rows % _COUNT_EVERY:
                    merging.update(rows)
    progress.done(len(symbols), rows=rows, deadletter=deadletter, jobs=jobs)
    return rows, deadletter


def _rows_of(inp: _Input, symbol: str) -> Iterator[tuple[int, str, bytes]]:
    with open(inp.tmp / f"{symbol}.jsonl", "rb") as fh:
        for line in fh:
            yield orjson.loads(line)["ts_ms"], symbol, line


def _run_workers(inp: _Input, jobs: int, progress: Progress) -> tuple[int, int]:
    """Each symbol's rows into ``inp.tmp/<symbol>.jsonl``; returns the deadletter rows and the rows."""
    # fork: a worker starts in milliseconds with the parent's imports (no thread runs yet here)
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    taken = ctx.Value("q", 0)  # symbols handed out so far: a worker takes the next one when free
    results: Any = ctx.Queue()
    written = [ctx.RawValue("q", 0) for _ in range(jobs)]
    workers = [ctx.Process(target=_worker, args=(inp, taken, results, n)) for n in written]
    try:
        for w in workers:
            w.start()
        done = deadletter = 0
        while done < len(inp.symbols):
            try:
                symbol, rejected, error = results.get(timeout=0.5)
            except queue.Empty:
                if failed := [w.exitcode for w in workers if w.exitcode not in (None, 0)]:
                    raise WorkerFailed(
                        f"a worker process ended with exit code {failed[0]}"
                        f"{' (killed by a signal)' if failed[0] < 0 else ''} before its symbols were done; "
                        f"no output was written"
                    ) from None
            else:
                if error is not None:
                    raise WorkerFailed(f"{symbol}: {error}; no output was written")
                done += 1
                deadletter += rejected
            progress.update(done, rows=sum(n.value for n in written))
        return deadletter, sum(n.value for n in written)
    finally:  # the workers ignore SIGINT: after an error or Ctrl-C they are stopped here
        for w in workers:
            if w.is_alive():
                w.kill()
        for w in workers:
            if w.pid is not None:
                w.join()


def _worker(inp: _Input, taken: Any, results: Any, written: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    gc_policy()
    deadletter = Deadletter(inp.deadletter_dir, "features", "batch")
    rows = 0
    while True:
        with taken.get_lock():
            i = taken.value
            taken.value = i + 1
        if i >= len(inp.symbols):
            return
        symbol = inp.symbols[i]
        rejected = deadletter.count
        engine = FeatureEngine(inp.cfg)
        try:
            with open(inp.tmp / f"{symbol}.jsonl", "wb") as fh:
                for row in _symbol_features(engine, inp.spool, inp.ready, symbol, deadletter):
                    fh.write(encode_row(row) + b"\n")
                    rows += 1
                    if rows % _COUNT_EVERY == 0:
                        written.value = rows
        except OSError as exc:  # a full disk, a deadletter directory it may not write, a file gone
            results.put((symbol, 0, str(exc)))
            return
        written.value = rows
        results.put((symbol, deadletter.count - rejected, None))
