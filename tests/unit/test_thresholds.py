"""The scaling rule of the DoD thresholds: absolute at 30 minutes, proportional below."""

from __future__ import annotations

from pytest_v13.thresholds import Thresholds
from v13.config import load_config

ACC = load_config(environ={}).acceptance


def test_absolute_numbers_at_and_above_the_reference() -> None:
    for minutes in (30, 45):
        t = Thresholds.for_run(ACC, minutes)
        assert (t.jsonl_shards_min, t.sqlite_rows_min, t.orders_min, t.factor) == (20, 10_000, 100, 1.0)
        assert (t.rss_mb_max, t.open_files_max) == (600, 256)


def test_short_runs_scale_counts_by_steady_state_time_but_not_limits() -> None:
    t = Thresholds.for_run(ACC, 2)
    factor = (2 - 0.25) / (30 - 0.25)
    assert t.factor == factor
    assert (t.jsonl_shards_min, t.sqlite_rows_min, t.orders_min) == (2, 589, 6)
    assert (t.rss_mb_max, t.open_files_max) == (600, 256)
    assert "scaled by 0.0588" in t.describe()


def test_never_below_one() -> None:
    t = Thresholds.for_run(ACC, 0.1)
    assert (t.jsonl_shards_min, t.sqlite_rows_min, t.orders_min) == (1, 1, 1)
