"""Shared command-line plumbing: user mistakes print one line and exit 2, never a traceback; the
process's garbage-collector policy."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

from v13.errors import UsageError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "run_main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Rows are freed by reference counting the moment they are done with; what trips the collector is
# their count, not cycles. At the default (700) a harvest of 1,000 symbols spent 7% of a core in
# collections that free nothing; at this threshold they are rare. Garbage cycles still go.
GC_YOUNG_THRESHOLD = 50_000


def run_main(prog: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main(argv)``; a UsageError becomes ``<prog>: error: ...`` on stderr and exit code 2."""
    gc.freeze()  # what the imports made lives as long as the process: no collection looks at it
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)
    try:
        return main(argv)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
