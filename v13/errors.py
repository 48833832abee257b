"""Exceptions raised by the v13 library.

Tree::

    V13Error                 base of everything the library raises on purpose
    ├── UsageError           a user mistake (bad argument, bad config); CLIs print it and exit 2
    │   ├── ConfigError      the config file is missing, unreadable or invalid
    │   └── RootBusy         another run holds the work root (v13.runlock)
    ├── BatchFailure         a batch command cannot finish (a worker process ended, a file it
    │                        may not write): its CLI prints one line and exits 1
    ├── ContractError        a row does not match its contract (field, type or value)
    └── StageFailure         a stage cannot go on (its sink failed or vanished): it records the
                             reason in its status file and exits 1, so the supervisor acts

Messages say what was wrong, where it came from and how to fix it, in one sentence.
"""

from __future__ import annotations

__all__ = ["BatchFailure", "ConfigError", "ContractError", "StageFailure", "UsageError", "V13Error"]


class V13Error(Exception):
    """Base class of the library's own errors."""


class UsageError(V13Error):
    """A mistake of the user's: command-line entry points print it on one line and exit 2."""


class ConfigError(UsageError):
    """The config file is missing, not YAML, or does not validate."""


class BatchFailure(V13Error):
    """A batch command cannot finish; the message says why, and that no output was written."""


class ContractError(V13Error):
    """A row breaks its contract; the reason names the field."""


class StageFailure(V13Error):
    """A stage cannot continue; the message is the one-line reason put in its status file."""
