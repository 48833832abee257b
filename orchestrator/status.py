"""How a run ends, and the exit code that goes with it (``python -m orchestrator.run``).

| status | exit code | when |
|---|---|---|
| ``completed`` | 0 | the time ran out, or a finite source was used up and everything drained |
| ``degraded`` | 1 | a stage used up its restarts and the run went on without it |
| (usage error) | 2 | a bad option, config or root: raised as ``UsageError`` before anything starts |
| ``early_stop`` | 3 | rows were dropped, or JSONL rotation stalled while the source was live |
| ``interrupted_SIGHUP`` / ``_SIGINT`` / ``_SIGTERM`` | 129 / 130 / 143 | a stop signal (128 + its number) |
| ``failed`` | 1 | the orchestrator itself raised; the manifest records it |

The status is decided once, after the stages stopped, from what happened during the run (first
matching row above, interrupts first); shutdown never changes it.
"""

from __future__ import annotations

import signal
from enum import StrEnum

__all__ = ["RunStatus"]


class RunStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    DEGRADED = "degraded"
    EARLY_STOP = "early_stop"
    INTERRUPTED_SIGHUP = "interrupted_SIGHUP"
    INTERRUPTED_SIGINT = "interrupted_SIGINT"
    INTERRUPTED_SIGTERM = "interrupted_SIGTERM"
    FAILED = "failed"

    @classmethod
    def interrupted(cls, signum: int) -> RunStatus:
        return cls(f"interrupted_{signal.Signals(signum).name}")

    @property
    def final(self) -> bool:
        return self not in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.STOPPING)

    @property
    def exit_code(self) -> int | None:
        """The process exit code of a final status; None while the run is still going."""
        if self.name.startswith("INTERRUPTED_"):
            return 128 + int(signal.Signals[self.name.removeprefix("INTERRUPTED_")])
        return _EXIT_CODES.get(self)


_EXIT_CODES = {
    RunStatus.COMPLETED: 0,
    RunStatus.DEGRADED: 1,
    RunStatus.FAILED: 1,
    RunStatus.EARLY_STOP: 3,
}
