"""The stack at 100 symbols for 2 minutes, watched by the acceptance plugin's own sampler: every
stage stays under the DoD's open-files limit (a harvest holding files per symbol crosses it at
about 85 symbols), every symbol gets one feature row per second, and no feature row is lost."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from pytest_v13.checks import check_dropped_zero, check_resources
from pytest_v13.run import V13Run
from pytest_v13.settings import Settings
from pytest_v13.stack import run_stack_process
from pytest_v13.thresholds import Thresholds
from tests.unit.helpers import REPO
from v13.config import default_config_path, load_config

SYMBOLS = tuple(f"S{i:03d}USDT" for i in range(100))
MINUTES = 2.0
OPEN_FILES_MAX = 256  # the task card's limit, per stage


@pytest.mark.slow
def test_100_symbols_keep_open_files_per_stage_under_the_limit(tmp_path: Path) -> None:
    stages = ("harvest", "signal", "broker", "report")
    settings = Settings(minutes=MINUTES, sinks=("jsonl",), symbols=SYMBOLS, config=None,
                        enable=stages, keep=False, root=tmp_path)  # fmt: skip
    timeout_s = MINUTES * 60 + 120
    process = run_stack_process(settings, "jsonl", tmp_path / "root", tmp_path / "out.log", timeout_s)
    assert process.exit_code == 0, process.output_text()[-3000:]
    cfg = load_config(default_config_path(), environ={})
    run = V13Run("jsonl", process, cfg, Thresholds.for_run(cfg.acceptance, MINUTES), REPO)

    assert run.thresholds.open_files_max == OPEN_FILES_MAX
    assert set(process.stages) == set(stages)
    check_resources(run)
    peaks = {name: s.peak_open_files for name, s in process.stages.items()}
    print(f"peak open files at {len(SYMBOLS)} symbols: {peaks}")

    seconds: dict[str, list[int]] = defaultdict(list)
    for line in run.feature_lines:
        row = orjson.loads(line)
        seconds[row["symbol"]].append(row["ts_ms"])
    assert set(seconds) == set(SYMBOLS)
    for sym, ts in seconds.items():
        assert len(ts) == len(set(ts)), f"{sym}: two feature rows for one second"
        first, last = min(ts), max(ts)
        assert len(ts) == (last - first) // 1000 + 1, f"{sym}: missing seconds between {first} and {last}"
        assert len(ts) >= MINUTES * 60 - 15, f"{sym}: {len(ts)} feature rows in a {MINUTES:g}-minute run"
    check_dropped_zero(run)
