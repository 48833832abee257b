"""The V13 acceptance harness as a pytest plugin (entry point ``pytest11: v13``)."""

from pytest_v13.run import V13Run
from pytest_v13.settings import Settings
from pytest_v13.thresholds import Thresholds

__all__ = ["Settings", "Thresholds", "V13Run"]
