"""The supervisor of the V13 stack: ``python -m orchestrator.run`` or :func:`run_stack`."""

from orchestrator.api import ChildSummary, RunOptions, RunResult, run_stack
from orchestrator.spec import MODULES, ProcessSpec, RestartPolicy
from orchestrator.status import RunStatus
from orchestrator.supervisor import ChildStatus, ProcState, Supervisor

__all__ = [
    "MODULES",
    "ChildStatus",
    "ChildSummary",
    "ProcState",
    "ProcessSpec",
    "RestartPolicy",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "Supervisor",
    "run_stack",
]
