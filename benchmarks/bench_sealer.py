"""What sealing costs while the loop that writes rows is busy, as at 00:00 UTC.

N segments (one per stream directory, as after a day's rotation) are sealed while a thread of
this process runs pure Python without pause, the way a busy harvest loop holds the interpreter
lock. Two ways, one after the other:

* ``thread``: ``seal_file`` called in a thread of this process, one seal after another;
* ``sealer``: :class:`v13.segments.Sealer`, which hands the seals to a process of its own.

Prints the time until every segment is sealed. (What sealing costs the loop itself is measured
with the whole stack: ``bench_pipeline.py`` and ``bench_midnight.py``.)

    python benchmarks/bench_sealer.py --segments 1000 --dir /tmp
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from v13.sealwork import seal_file
from v13.segments import Sealer


def segments(base: Path, n: int) -> list[tuple[str, str]]:
    jobs = []
    for i in range(n):
        src = base / "spool" / f"s{i}" / "a.part"
        src.parent.mkdir(parents=True)
        (base / "ready" / f"s{i}").mkdir(parents=True)
        src.write_bytes(b'{"row": 1}\n' * 400)
        jobs.append((str(src), str(base / "ready" / f"s{i}" / "a.jsonl")))
    return jobs


def busy(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        for _ in range(1000):
            n += 1


def with_busy_loop(work: Callable[[], object]) -> float:
    """Seconds until ``work()`` returns, with a thread running pure Python meanwhile."""
    stop = threading.Event()
    thread = threading.Thread(target=busy, args=(stop,))
    thread.start()
    t0 = time.perf_counter()
    work()
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    return elapsed


def in_a_thread(jobs: list[tuple[str, str]]) -> None:
    sealing = threading.Thread(target=lambda: [seal_file(src, dst) for src, dst in jobs])
    sealing.start()
    sealing.join()


def by_the_sealer(jobs: list[tuple[str, str]]) -> None:
    sealer = Sealer()
    for src, dst in jobs:
        sealer.submit(src, dst)
    sealer.drain()
    sealer.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (the disk matters)")
    args = parser.parse_args()
    for mode, seal_all in (("thread", in_a_thread), ("sealer", by_the_sealer)):
        base = Path(tempfile.mkdtemp(prefix="bench-sealer-", dir=args.dir))
        try:
            jobs = segments(base, args.segments)
            elapsed = with_busy_loop(lambda: seal_all(jobs))  # noqa: B023 (called at once)
            sealed = sum(1 for _ in (base / "ready").glob("*/a.jsonl"))
            print(f"{mode:7s} {sealed:,} of {len(jobs):,} sealed in {elapsed * 1000:8,.0f} ms")
        finally:
            shutil.rmtree(base)


if __name__ == "__main__":
    main()
