"""Shared command-line plumbing: user mistakes print one line and exit 2, never a traceback; the
process's garbage-collector and memory policy."""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable
from pathlib import Path

from v13.errors import BatchFailure, UsageError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "check_output", "gc_policy", "release_free_memory", "run_main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Rows are freed by reference counting the moment they are done with; what trips the collector is
# their count, not cycles. At the default (700) a harvest of 1,000 symbols spent 7% of a core in
# collections that free nothing; at this threshold they are rare. Garbage cycles still go.
GC_YOUNG_THRESHOLD = 50_000


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """A full collection, then the C heap's free pages handed back to the system (glibc's
    ``malloc_trim``; nothing more elsewhere). For a long-lived process that now and then makes
    many short-lived objects (a report refresh, its chart): freed memory scattered between live
    blocks otherwise stays in the process and its RSS creeps up with every refresh."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def check_output(out: Path, *inputs: tuple[str, Path]) -> None:
    """A batch command's ``--out``: the name of a file to write, neither a directory nor one of the
    files it reads (``inputs``: option and path)."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the name of the file to write")
    for option, path in inputs:
        if out.resolve() == path.resolve():
            raise UsageError(f"--out {out} is also {option}: writing it would replace what is read")


def gc_policy() -> None:
    """The collector's settings of every process of the project (see ``GC_YOUNG_THRESHOLD``)."""
    gc.freeze()  # what the imports made lives as long as the process: no collection looks at it
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)


def run_main(prog: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main(argv)``; a UsageError becomes ``<prog>: error: ...`` on stderr and exit code 2,
    a BatchFailure the same line and exit code 1."""
    gc_policy()
    try:
        return main(argv)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except BatchFailure as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
