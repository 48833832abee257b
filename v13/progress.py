"""Progress lines for long batch work, on stderr, at most one every ``every_s`` seconds."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``Progress("sim", total=36000, unit="steps").update(done, rows=...)``; ``.done()`` at the end."""

    def __init__(self, label: str, *, total: float | None = None, unit: str = "", every_s: float = 2.0):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.start = self._last = time.monotonic()

    def update(self, done: float, **counts: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(done, counts, now)

    def done(self, done: float, **counts: int) -> None:
        self._print(done, counts, time.monotonic(), final=True)

    def _print(self, done: float, counts: dict[str, int], now: float, final: bool = False) -> None:
        pct = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        of = f"/{self.total:g}" if self.total else ""
        extra = "".join(f", {k}={v:,}" for k, v in counts.items())
        word = "done" if final else "progress"
        print(
            f"{self.label}: {word} {done:g}{of} {self.unit}{pct}{extra}, {now - self.start:.1f} s",
            file=sys.stderr,
            flush=True,
        )
