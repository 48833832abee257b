"""Helpers shared by the unit tests: config copies with changed keys, row factories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from v13.config import default_config_path
from v13.contracts import SignalRow

REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, changes: dict[str, Any] | None = None, drop: str | None = None) -> Path:
    """A copy of config/defaults.yaml with dotted keys changed (or one dropped)."""
    doc = yaml.safe_load(default_config_path().read_text())
    for key, value in (changes or {}).items():
        node = doc
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    if drop:
        node = doc
        *parents, leaf = drop.split(".")
        for part in parents:
            node = node[part]
        del node[leaf]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def signal_row(run_id: str, symbol: str, ts_ms: int, **fields: Any) -> SignalRow:
    base: dict[str, Any] = {
        "run_id": run_id,
        "ts_ms": ts_ms,
        "symbol": symbol,
        "score": 0.7,
        "z_ofi": 1.0,
        "z_cvd": 0.25,
        "regime": "quiet",
        "div_type": None,
        "confirm": True,
        "gating": False,
        "signal_type": "buy",
        "guard_reason": None,
        "mid": 100.05,
        "best_bid": 100.0,
        "best_ask": 100.1,
        "spread_bps": 10.0,
        "emit_ts_ms": ts_ms + 3,
    }
    base.update(fields)
    return SignalRow(**base)


def run_module(
    module: str, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )
