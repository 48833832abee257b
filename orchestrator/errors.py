"""Errors of the orchestrator.

Tree::

    V13Error (v13.errors)
    ├── UsageError          bad CLI arguments or config: one line on stderr, exit 2
    └── OrchestratorError   the supervisor itself cannot go on (e.g. cannot start a child)
"""

from __future__ import annotations

from v13.errors import UsageError, V13Error

__all__ = ["OrchestratorError", "UsageError"]


class OrchestratorError(V13Error):
    """The supervisor cannot continue."""
