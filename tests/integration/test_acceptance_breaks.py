"""Breaking one thing fails the matching DoD test(s) with a readable message (pytester, real runs)."""

from __future__ import annotations

import re

import pytest

from tests.unit.helpers import REPO, write_config

DOD = (REPO / "tests/acceptance/test_dod.py").read_text()


def run_dod(
    pytester: pytest.Pytester, changes: dict[str, object], minutes: str
) -> tuple[pytest.RunResult, set[str]]:
    pytester.makepyfile(test_dod=DOD)
    cfg = write_config(pytester.path / "broken.yaml", changes)
    result = pytester.runpytest_subprocess(
        "--v13-sink=sqlite", f"--v13-minutes={minutes}", f"--v13-config={cfg}",
        "-p", "no:cacheprovider", "-rf",
        timeout=400,
    )  # fmt: skip
    failed = set(re.findall(r"FAILED test_dod\.py::(test_dod\d+)", result.stdout.str()))
    return result, failed


def test_a_too_low_open_files_limit_fails_only_that_item(pytester: pytest.Pytester) -> None:
    result, failed = run_dod(pytester, {"acceptance.open_files_max": 5}, "1")
    assert failed == {"test_dod11"}, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*peak (RSS MB, open files) over 600.0 / 5*"])
    result.stdout.fnmatch_lines(["*v13 sqlite orchestrator log (last 20 lines)*"])


def test_a_sink_queue_that_drops_fails_dropped_and_ends_the_run_early(pytester: pytest.Pytester) -> None:
    result, failed = run_dod(pytester, {"signal.queue_max": 1}, "1")
    assert "test_dod09" in failed
    result.stdout.fnmatch_lines(["*rows were dropped: the signal queue overflowed*"])
    # seed section 8: dropped > 0 ends the run early (exit 3), so it is not "completed" either
    assert "test_dod01" in failed
    result.stdout.fnmatch_lines(["*run status early_stop (exit code 3)*"])
    assert failed <= {"test_dod01", "test_dod03", "test_dod04", "test_dod09"}, failed
