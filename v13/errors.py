"""Exceptions raised by the v13 library.

Tree::

    V13Error                 base of everything the library raises on purpose
    ├── UsageError           a user mistake (bad argument, bad config); CLIs print it and exit 2
    │   └── ConfigError      the config file is missing, unreadable or invalid
    └── ContractError        a row does not match its contract (field, type or value)

Messages say what was wrong, where it came from and how to fix it, in one sentence.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ContractError", "UsageError", "V13Error"]


class V13Error(Exception):
    """Base class of the library's own errors."""


class UsageError(V13Error):
    """A mistake of the user's: command-line entry points print it on one line and exit 2."""


class ConfigError(UsageError):
    """The config file is missing, not YAML, or does not validate."""


class ContractError(V13Error):
    """A row breaks its contract; the reason names the field."""
