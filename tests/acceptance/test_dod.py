"""The Definition of Done of the seed task card: one test per item, run against each sink's stack.

pytest tests/acceptance --v13-minutes=30      # the seed's absolute numbers
"""

from __future__ import annotations

import pytest

from pytest_v13 import checks
from pytest_v13.run import V13Run

pytestmark = pytest.mark.v13


def test_dod01_run_completed_without_uncaught_exceptions(v13_run: V13Run) -> None:
    checks.check_no_uncaught_exceptions(v13_run)


@pytest.mark.v13(sink="jsonl")
def test_dod02_jsonl_shards_in_ready_signal(v13_run: V13Run) -> None:
    checks.check_jsonl_shards(v13_run)


@pytest.mark.v13(sink="sqlite")
def test_dod03_sqlite_signals_rows(v13_run: V13Run) -> None:
    checks.check_sqlite_rows(v13_run)


def test_dod04_mock_orders_on_both_sides(v13_run: V13Run) -> None:
    checks.check_orders(v13_run)


def test_dod05_report_json_and_markdown_fields(v13_run: V13Run) -> None:
    checks.check_report_fields(v13_run)


def test_dod06_directory_layout_and_field_names(v13_run: V13Run) -> None:
    checks.check_layout(v13_run)


def test_dod07_env_whitelist(v13_run: V13Run) -> None:
    checks.check_env_whitelist(v13_run)


def test_dod08_sampled_signal_rows_match_the_contract(v13_run: V13Run) -> None:
    checks.check_contract_sample(v13_run)


def test_dod09_dropped_is_zero(v13_run: V13Run) -> None:
    checks.check_dropped_zero(v13_run)


@pytest.mark.v13(sink="jsonl")
def test_dod10_jsonl_rotation_every_minute(v13_run: V13Run) -> None:
    checks.check_rotation(v13_run)


def test_dod11_peak_rss_and_open_files(v13_run: V13Run) -> None:
    checks.check_resources(v13_run)


def test_dod12_deadletter_empty(v13_run: V13Run) -> None:
    checks.check_deadletter_empty(v13_run)


def test_dod13_run_manifest(v13_run: V13Run) -> None:
    checks.check_manifest(v13_run)


def test_dod14_orchestrator_log_events(v13_run: V13Run) -> None:
    checks.check_orchestrator_log(v13_run)


def test_dod15_report_shows_last_5min_rhythm_and_strong_ratio(v13_run: V13Run) -> None:
    checks.check_report_last_5min(v13_run)


def test_dod16_report_matches_a_recount_of_the_sink(v13_run: V13Run) -> None:
    checks.check_report_recount(v13_run)
