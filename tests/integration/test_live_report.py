"""The report stage's incremental report equals the report rebuilt from the run's files."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
import pytest

from tests.integration.stack import wait_for
from v13.config import load_config
from v13.layout import Layout
from v13.report import build_report
from v13.report.live import LiveReport

SINKS = ["jsonl", "sqlite"]


def same(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two decoded reports differ (floats to 1e-9: sums in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


@pytest.mark.parametrize("sink", SINKS)
def test_refreshed_as_rows_come_it_ends_equal_to_a_rebuild(make_stack, sink: str) -> None:
    """Each stage starts late, so its rows come in a burst between two refreshes: signals well
    behind the features they need, several orders per symbol behind their signals' quotes."""
    stack = make_stack(sink, **{"report.markout_horizons_s": [1, 2], "source.sim.preset": "weak"})
    cfg = load_config(stack.config, environ={"V13_SINK": sink, "V13_OUTPUT_DIR": "./runtime"})
    layout = Layout.from_config(cfg, stack.root)
    live = LiveReport(cfg, layout, stack.run_id)
    refreshes = []

    def refresh_for(seconds: float) -> None:  # refreshed while the stages write: partial reads
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            refreshes.append(live.refresh(generated_ms=0))
            time.sleep(0.3)

    for name in ("harvest", "signal", "broker"):
        stack.start(name)
        stack.wait_started(name)
        refresh_for(8)
    refresh_for(8)
    wait_for(lambda: layout.orders_file.exists(), 10, "orders")
    for name in ("broker", "signal", "harvest"):
        assert stack.stop(name)[0] == 0
    got = msgspec.to_builtins(live.refresh(generated_ms=0))
    want = msgspec.to_builtins(build_report(cfg, layout, stack.run_id, generated_ms=0))
    live.close()

    assert same(got, want) == []

    assert want["markouts"]["all"][0]["count"] > 10 and want["orders"]["count"] > 3
    assert want["unprocessed_tail"] > 0  # the signal stage stopped before the harvest
    assert [r.rows for r in refreshes] == sorted(r.rows for r in refreshes) and refreshes[-1].rows > 0
