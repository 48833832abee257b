"""The report built from a run's files: counts, ratios, minutes, last five minutes, warnings."""

from __future__ import annotations

import gc
from pathlib import Path

import orjson

from tests.unit.helpers import signal_row, write_config
from v13.config import load_config
from v13.contracts import StatusRow, encode_row
from v13.deadletter import Deadletter
from v13.fsutil import atomic_write_json
from v13.layout import Layout
from v13.report import build_report, render_markdown, write_report
from v13.report.live import LiveReport
from v13.sinks import open_sink
from v13.stages.report import refresh_summary

T0 = 1_764_300_000_000  # 2025-11-28T03:20:00Z


def setup(tmp_path: Path, rows: list, sink: str = "sqlite"):
    cfg = load_config(write_config(tmp_path / "c.yaml", {"signal.sink": sink}), environ={})
    layout = Layout.from_config(cfg, tmp_path)
    s = open_sink(cfg, layout, "run1")
    for row in rows:
        s.put(row)
    s.close()
    return cfg, layout


def status(layout: Layout, name: str, dropped: int, run_id: str = "run1") -> None:
    row = StatusRow(name=name, pid=1, run_id=run_id, state="running", ts_ms=T0, started_ts_ms=T0,
                    counters={"dropped": dropped}, queue_size=0,
                    last_event_ts_ms=None, lag_ms=None)  # fmt: skip
    atomic_write_json(layout.health_file(name), row)


def test_counts_ratios_minutes_and_last_five(tmp_path: Path) -> None:
    kinds = ["buy", "strong_buy", "sell", "strong_sell", "neutral", "pending"]
    rows = [signal_row("run1", "BTCUSDT", T0 + i * 10_000, signal_type=k,
                       confirm=k not in ("neutral", "pending"))
            for i, k in enumerate(kinds * 7)]  # fmt: skip
    cfg, layout = setup(tmp_path, rows)
    r = build_report(cfg, layout, "run1")
    assert (r.rows, r.total) == (42, 28)
    assert (r.buy_count, r.strong_buy_count, r.sell_count, r.strong_sell_count) == (7, 7, 7, 7)
    assert (r.buy_ratio, r.sell_ratio, r.strong_ratio) == (0.5, 0.5, 0.5)
    assert [m.minute for m in r.per_minute] == [f"2025-11-28T03:2{i}Z" for i in range(7)]
    assert sum(m.count for m in r.per_minute) == 28
    assert r.last_5min.per_minute == r.per_minute[-5:]
    assert r.warnings == ["NO_ORDERS"]
    assert "## Last 5 minutes (strong ratio 0.500)" in render_markdown(r)


def test_warning_codes(tmp_path: Path) -> None:
    cfg, layout = setup(tmp_path, [signal_row("run1", "BTCUSDT", T0, signal_type="pending", confirm=False)])
    status(layout, "signal", 4)
    status(layout, "harvest", 99, run_id="older-run")  # another run's status does not count
    Deadletter(layout.deadletter_stage_dir("signal"), "signal", "run1").write("bad", "src", b"{}")
    r = build_report(cfg, layout, "run1")
    assert r.warnings == ["ALL_GATED", "DROPPED", "DEADLETTER"]
    assert r.dropped == 4
    empty = build_report(cfg, layout, "no-such-run")
    assert empty.warnings == ["NO_SIGNALS"] and empty.rows == 0


def test_orders_summary_counts_only_this_run(tmp_path: Path) -> None:
    from v13.broker import Broker

    cfg, layout = setup(tmp_path, [signal_row("run1", "BTCUSDT", T0)])
    lines = []
    for run in ("run1", "run2"):
        b = Broker(cfg.broker, run)
        for i, k in enumerate(["strong_buy", "strong_sell", "strong_buy"]):
            lines.append(encode_row(b.on_signal(signal_row(run, "BTCUSDT", T0 + i, signal_type=k))))
    layout.orders_file.write_bytes(b"\n".join(lines) + b"\n")
    r = build_report(cfg, layout, "run1")
    assert (r.orders.count, r.orders.buy, r.orders.sell) == (3, 2, 1)


def test_files_are_named_by_the_run_start_stamp_and_the_run_token(tmp_path: Path) -> None:
    run_id = "20251128T032000Z-abc123"
    cfg, layout = setup(tmp_path, [signal_row(run_id, "BTCUSDT", T0)])
    r = build_report(cfg, layout, run_id)
    paths = write_report(r, layout.summary_paths(run_id))
    stem = "summary_20251128_0320_abc123"
    assert sorted(p.name for p in paths.values()) == [f"{stem}.{e}" for e in ("json", "md", "png")]
    other = layout.summary_paths("20251128T032059Z-def456")["json"]  # same minute, another run
    assert other.name == "summary_20251128_0320_def456.json" and other != paths["json"]
    assert orjson.loads(paths["json"].read_bytes())["rows"] == 1
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unsignalled_feature_rows_are_counted_from_the_files(tmp_path: Path) -> None:
    from v13.contracts import FeatureRow
    from v13.streams import StreamSet

    run_id = "20251128T032000Z-abc123"
    cfg = load_config(write_config(tmp_path / "c.yaml", {"signal.sink": "sqlite"}), environ={})
    layout = Layout.from_config(cfg, tmp_path)
    floats = ("ofi", "z_ofi", "cvd", "cvd_delta", "z_cvd", "fusion_score", "consistency", "trade_rate",
              "quote_rate", "realized_vol_bps", "volume_usd", "return_1s", "lag_ms")  # fmt: skip
    base = {**dict.fromkeys(floats, 0.0), "mid": 1.0, "best_bid": 0.9, "best_ask": 1.1, "spread_bps": 1.0}
    for writer in (f"{run_id}-1", "20251128T000000Z-000000-1"):  # this run's rows, another run's
        streams = StreamSet(layout.data_dir, writer, cfg.segments)
        for sym in ("BTCUSDT", "ETHUSDT"):
            for i in range(10):
                row = FeatureRow(ts_ms=T0 + i * 1000, symbol=sym, div_type=None, trade_count=0, warmup=False,
                                 gap=False, **base)  # fmt: skip
                streams.write(row)
        streams.close()
    # BTCUSDT: seconds 0..6 signalled except 3 -> 1 missing, 3 in the tail (7, 8, 9)
    # ETHUSDT: no signal at all -> all 10 in the tail
    s = open_sink(cfg, layout, run_id)
    for i in (0, 1, 2, 4, 5, 6):
        s.put(signal_row(run_id, "BTCUSDT", T0 + i * 1000))
    s.close()
    r = build_report(cfg, layout, run_id)
    assert (r.rows, r.missing_signals, r.unprocessed_tail) == (6, 1, 13)
    assert "MISSING_SIGNALS" in r.warnings


def test_a_refresh_leaves_no_chart_garbage_behind(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    rows = [signal_row("run1", "BTCUSDT", T0 + i * 1000, signal_type="buy", confirm=True) for i in range(30)]
    cfg, layout = setup(tmp_path, rows)
    paths = layout.summary_paths("run1")
    live = LiveReport(cfg, layout, "run1")
    gc.collect()
    gc.disable()  # as rare as the stages' raised thresholds make them: no automatic collection
    try:
        for _ in range(3):
            report = refresh_summary(live, paths)
            figures = [o for o in gc.get_objects() if isinstance(o, Figure)]
            assert figures == [], f"{len(figures)} chart figures left for the collector"
    finally:
        gc.enable()
    assert report.rows == 30
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_a_recreated_sqlite_sink_starts_the_live_report_over(tmp_path: Path) -> None:
    cfg, layout = setup(tmp_path, [signal_row("run1", "BTCUSDT", T0 + i * 1000) for i in range(10)])
    live = LiveReport(cfg, layout, "run1")
    assert live.refresh(generated_ms=0).rows == 10
    for path in layout.signals_db.parent.glob(layout.signals_db.name + "*"):
        path.unlink()  # the database and its WAL files deleted; the sink writes a new one
    sink = open_sink(cfg, layout, "run1")
    for i in range(4):
        sink.put(signal_row("run1", "BTCUSDT", T0 + 60_000 + i * 1000, signal_type="sell"))
    sink.close()
    got = live.refresh(generated_ms=0)
    live.close()
    assert (got.rows, got.sell_count, got.buy_count) == (4, 4, 0)
    assert got == build_report(cfg, layout, "run1", generated_ms=0)
