"""The harvest says ``Server started`` as soon as a first row is in an open segment, not after
the whole first batch: at a thousand symbols the first simulator step opens thousands of files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from v13.config import load_config
from v13.contracts import TradeRow
from v13.layout import Layout
from v13.stages.harvest import HarvestOutput

T0 = 1_764_300_000_000


class Runtime:
    """What :class:`HarvestOutput` uses of a stage runtime, recording ``started`` calls."""

    def __init__(self) -> None:
        self.run_id = "run1"
        self.state = "starting"
        self.counters: Counter[str] = Counter()
        self.last_event_ts_ms: int | None = None
        self.started_with: list[dict[str, Any]] = []

    def started(self, **fields: Any) -> None:
        self.started_with.append(fields)
        self.state = "running"

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n

    def beat(self) -> None:
        pass


def trade(symbol: str, i: int) -> TradeRow:
    return TradeRow(ts_ms=T0 + i, recv_ts_ms=T0 + i + 5, symbol=symbol, price=100.0, qty=1.0,
                    side="buy", trade_id=i + 1, src="sim")  # fmt: skip


def test_server_started_comes_with_the_first_row_in_an_open_segment(tmp_path: Path) -> None:
    cfg = load_config(None, environ={})
    layout = Layout.from_config(cfg, tmp_path)
    rt = Runtime()
    out = HarvestOutput(cfg, layout, rt)  # type: ignore[arg-type]
    out.started_fields = {"source": "test"}
    seen_when_asked: list[tuple[int, int]] = []

    def first_step() -> Iterator[TradeRow]:
        for i, symbol in enumerate(f"S{k:02d}USDT" for k in range(5)):
            seen_when_asked.append((len(rt.started_with), len(list(layout.data_dir.rglob("*.part")))))
            yield trade(symbol, i)

    out.rows(first_step())
    # asked for its first row before anything was open; for each later one, started, once
    assert seen_when_asked == [(0, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert rt.started_with == [{"source": "test"}]
    out.rows([trade("S00USDT", 10)])
    out.tick()
    assert len(rt.started_with) == 1
    out.streams.close()


def test_without_raw_rows_server_started_waits_for_the_first_feature_row(tmp_path: Path) -> None:
    cfg = load_config(None, overrides={"harvest.write_raw": False}, environ={})
    rt = Runtime()
    out = HarvestOutput(cfg, Layout.from_config(cfg, tmp_path), rt)  # type: ignore[arg-type]
    out.rows([trade("S00USDT", 0), trade("S00USDT", 1)])
    out.tick()
    assert rt.started_with == []
    out.source_watermark(T0 + 5_000)  # closes the interval: its feature row opens a segment
    out.tick()
    assert len(rt.started_with) == 1
    out.streams.close()
