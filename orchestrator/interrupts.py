"""Stop signals to the orchestrator: the first SIGINT/SIGTERM/SIGHUP (a closed terminal) asks
for a graceful stop; a second one forces the kill path."""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["Interrupts"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """Records the first stop signal and counts them; handlers only in the main thread."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = self.signum or signum
        self.count += 1
