"""Shared command-line plumbing: user mistakes print one line and exit 2, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from v13.errors import UsageError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "run_main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def run_main(prog: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main(argv)``; a UsageError becomes ``<prog>: error: ...`` on stderr and exit code 2."""
    try:
        return main(argv)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
