"""The supervisor of the V13 stack: ``python -m orchestrator.run`` or :func:`run_stack`."""

from orchestrator.api import EXIT_CODES, ChildSummary, RunOptions, RunResult, run_stack
from orchestrator.spec import MODULES, ProcessSpec, RestartPolicy
from orchestrator.supervisor import ChildStatus, ProcState, Supervisor

__all__ = [
    "EXIT_CODES",
    "MODULES",
    "ChildStatus",
    "ChildSummary",
    "ProcState",
    "ProcessSpec",
    "RestartPolicy",
    "RunOptions",
    "RunResult",
    "Supervisor",
    "run_stack",
]
