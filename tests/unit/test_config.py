"""Config: the defaults validate; every kind of bad file is a clear exit-2 error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.helpers import REPO, run_module, write_config
from v13.config import SinkKind, load_config
from v13.errors import ConfigError


def test_defaults_load_and_match_the_design_thresholds() -> None:
    cfg = load_config(REPO / "config/defaults.yaml", environ={})
    assert cfg.signal.sink is SinkKind.JSONL
    assert cfg.signal.thresholds.base == (0.6, 1.2)
    assert cfg.signal.thresholds.active == (0.5, 1.0)
    assert cfg.signal.thresholds.quiet == (0.7, 1.4)
    assert cfg.features.ofi_weights == [0.4, 0.25, 0.2, 0.1, 0.05]
    assert cfg.symbols == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]


def test_the_three_environment_overrides_apply_and_nothing_else_does() -> None:
    env = {"V13_SINK": "sqlite", "V13_OUTPUT_DIR": "/tmp/out", "PAPER_ENABLE": "1", "V13_SYMBOLS": "X"}
    cfg = load_config(REPO / "config/defaults.yaml", environ=env)
    assert cfg.signal.sink is SinkKind.SQLITE
    assert cfg.paths.runtime_dir == Path("/tmp/out")
    assert cfg.broker.paper is True
    assert cfg.symbols[0] == "BTCUSDT"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PAPER_ENABLE"):
        load_config(REPO / "config/defaults.yaml", environ={"PAPER_ENABLE": "maybe"})
    with pytest.raises(ConfigError, match=r"'signal\.sink'"):
        load_config(REPO / "config/defaults.yaml", environ={"V13_SINK": "parquet"})


def test_overrides_by_dotted_key() -> None:
    cfg = load_config(REPO / "config/defaults.yaml", environ={}, overrides={"signal.queue_max": 7})
    assert cfg.signal.queue_max == 7


BAD_CASES = {
    "unknown_key": ({"signal.parquet_level": 3}, None, "signal.parquet_level"),
    "wrong_type": ({"signal.queue_max": "lots"}, None, "signal.queue_max"),
    "bad_enum": ({"signal.sink": "parquet"}, None, "signal.sink"),
    "bad_range": ({"segments.flush_ms": 5000}, None, "segments.flush_ms"),
    "missing_key": ({}, "broker.fee_bps", "broker.fee_bps"),
    "strong_below_buy": ({"signal.thresholds.base": [1.2, 0.6]}, None, "signal.thresholds.base"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_exits_2_naming_key_and_file(tmp_path: Path, case: str) -> None:
    changes, drop, key = BAD_CASES[case]
    cfg = write_config(tmp_path / f"{case}.yaml", changes, drop)
    proc = run_module("v13", "check-config", "--config", str(cfg))
    assert proc.returncode == 2
    assert f"'{key}'" in proc.stderr
    assert str(cfg) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_file_exits_2(tmp_path: Path) -> None:
    proc = run_module("v13", "check-config", "--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_yaml_exits_2_with_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("symbols: [BTCUSDT\nsignal: {sink: jsonl\n")
    proc = run_module("v13", "check-config", "--config", str(path))
    assert proc.returncode == 2
    assert "not valid YAML at line" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_valid_config_exits_0() -> None:
    proc = run_module("v13", "check-config", "--config", str(REPO / "config/defaults.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "config OK" in proc.stdout
