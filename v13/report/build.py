"""The run summary: built from a run's files, so the live report stage, the orchestrator's final
report (after the children stopped) and ``python -m v13.report`` are the same function.

    report = build_report(cfg, layout, run_id)
    paths = write_report(report, layout.summary_paths(run_id))       # v13.report.render

``unprocessed_tail`` and ``missing_signals`` come from the files: feature rows of the run without
a signal row, after each symbol's last signal (the tail a stop leaves: the signal stage stops
before harvest) and before it (rows that were lost). ``markouts`` says whether the confirmed
signals predicted the next moves and whether that pays for the cost (:mod:`v13.markouts`);
``pnl`` splits the broker's PnL (:mod:`v13.pnl`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

import msgspec
import orjson

from v13.config import Config
from v13.contracts import (
    LastFiveMinutes,
    MinuteCount,
    OrderRow,
    ReportRow,
    SignalRow,
    StatusRow,
    decode_row,
)
from v13.errors import ContractError
from v13.fsutil import now_ms, utc_iso
from v13.layout import Layout
from v13.markouts import Markouts, signal_markouts, summarize
from v13.pnl import PnlTally, Quote
from v13.segments import SegmentFollower, discover_tails
from v13.sinks import open_signal_reader

__all__ = [
    "WARNING_CODES",
    "FeaturePoint",
    "SignalCounts",
    "assemble_report",
    "build_report",
    "deadletter_entries",
    "feature_points",
    "read_orders",
    "read_signal_rows",
    "report_from_rows",
    "run_dropped",
]

WARNING_CODES = {
    "NO_SIGNALS": "no signal rows were written",
    "ALL_GATED": "signal rows exist but none was confirmed (every direction blocked by a guard)",
    "DROPPED": "a stage dropped rows (see dropped)",
    "DEADLETTER": "input rows were rejected into artifacts/deadletter/",
    "NO_ORDERS": "confirmed signals exist but the broker placed no order",
    "MISSING_SIGNALS": "feature rows inside the run have no signal row (see missing_signals)",
}
_BUY = ("buy", "strong_buy")
_SELL = ("sell", "strong_sell")


class FeaturePoint(msgspec.Struct, gc=False):
    """What the report needs of a feature row: which second, and its mid."""

    ts_ms: int
    symbol: str
    mid: float | None = None


_POINT = msgspec.json.Decoder(FeaturePoint)
# Rows are read in batches this size: what a rebuild holds at once besides what it keeps.
READ_BATCH = 2_000


def read_signal_rows(cfg: Config, layout: Layout, run_id: str) -> Iterator[SignalRow]:
    """Every signal row of ``run_id`` in the configured sink, from the start."""
    reader = open_signal_reader(cfg, layout, run_id)
    try:
        while batch := reader.poll(READ_BATCH):
            yield from batch
    finally:
        reader.close()


def feature_points(layout: Layout, run_id: str) -> Iterator[FeaturePoint]:
    """Every feature row the harvest wrote in ``run_id`` (open segments too), but those the signal
    stage rejected into the deadletter (accounted for there)."""
    rejected = _rejected_lines(layout, run_id, "signal")
    data = layout.data
    symbols: dict[str, str] = {}  # one string per symbol, not one per row
    for tail in discover_tails(data.preview_spool, data.preview_ready):
        follower = SegmentFollower(data.preview_spool, data.preview_ready, tail, stem_filter=run_id)
        while chunks := follower.read_chunks(READ_BATCH):
            for line in (line for chunk in chunks for line in chunk.lines if line):
                if rejected and line.decode("utf-8", "replace") in rejected:
                    continue
                try:
                    point = _POINT.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                point.symbol = symbols.setdefault(point.symbol, point.symbol)
                yield point


def read_orders(layout: Layout, run_id: str) -> list[OrderRow]:
    path = layout.orders_file
    out = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                order = decode_row("order", line)
            except ContractError:
                continue
            if order.run_id == run_id:
                out.append(order)
    return out


def _deadletter_entries(layout: Layout, run_id: str) -> Iterator[dict[str, object]]:
    for path in layout.deadletter_files().paths():
        for line in path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                entry = {"run_id": run_id, "line": line.decode("utf-8", "replace")}  # damaged: count it
            if isinstance(entry, dict) and entry.get("run_id") == run_id:
                yield entry


def _rejected_lines(layout: Layout, run_id: str, stage: str) -> set[str]:
    return {str(e.get("line")) for e in _deadletter_entries(layout, run_id) if e.get("stage") == stage}


def run_dropped(layout: Layout, run_id: str) -> int:
    """Dropped rows summed over the stages' status files of this run."""
    total = 0
    for path in layout.status_files().paths():
        try:
            status = decode_row("status", path.read_bytes())
        except (OSError, ContractError):
            continue
        if isinstance(status, StatusRow) and status.run_id == run_id:
            total += int(status.counters.get("dropped", 0))
    return total


def deadletter_entries(layout: Layout, run_id: str) -> int:
    """Deadletter entries written in this run, over every stage."""
    return sum(1 for _ in _deadletter_entries(layout, run_id))


def build_report(cfg: Config, layout: Layout, run_id: str, *, generated_ms: int | None = None) -> ReportRow:
    """Recount the run from its files: signal rows of the sink, feature rows, orders, status files,
    deadletter."""
    return report_from_rows(
        cfg,
        run_id,
        read_signal_rows(cfg, layout, run_id),
        list(feature_points(layout, run_id)),
        read_orders(layout, run_id),
        dropped=run_dropped(layout, run_id),
        deadletter=deadletter_entries(layout, run_id),
        generated_ms=generated_ms,
    )


def _minute(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def report_from_rows(
    cfg: Config,
    run_id: str,
    signals: Iterable[SignalRow],
    features: list[FeaturePoint],
    orders: list[OrderRow],
    *,
    dropped: int = 0,
    deadletter: int = 0,
    generated_ms: int | None = None,
) -> ReportRow:
    """The report of one run's rows, wherever they come from (a run root, or batch files)."""
    counts = SignalCounts()
    signalled: dict[str, set[int]] = {}
    confirmed: list[SignalRow] = []
    for sig in signals:
        counts.add(sig)
        signalled.setdefault(sig.symbol, set()).add(sig.ts_ms)
        if sig.confirm:
            confirmed.append(sig)
    tail, missing = _unsignalled(features, signalled)
    last_mid: dict[str, float] = {}
    for point in sorted(features, key=lambda p: p.ts_ms):
        if point.mid is not None:
            last_mid[point.symbol] = point.mid
    quotes: dict[tuple[str, int], Quote] = {
        (s.symbol, s.ts_ms): (s.mid, s.best_bid, s.best_ask)
        for s in confirmed
        if s.mid is not None and s.best_bid is not None and s.best_ask is not None
    }
    pnl = PnlTally()
    for order in orders:
        pnl.add(order, quotes.get((order.symbol, order.ts_ms)))
    return assemble_report(
        cfg, run_id, counts,
        unprocessed_tail=tail, missing_signals=missing,
        marks=signal_markouts(features, confirmed, cfg.report.markout_horizons_s),
        pnl=pnl, last_mid=last_mid, dropped=dropped, deadletter=deadletter, generated_ms=generated_ms,
    )  # fmt: skip


class SignalCounts:
    """Signal rows counted: all, confirmed by type, and per minute."""

    def __init__(self) -> None:
        self.rows = 0
        self.types: Counter[str] = Counter()
        self.minutes: dict[str, Counter[str]] = {}

    def add(self, sig: SignalRow) -> None:
        self.rows += 1
        bucket = self.minutes.setdefault(_minute(sig.ts_ms), Counter())
        if sig.confirm:
            self.types[sig.signal_type] += 1
            bucket["count"] += 1
            bucket["buy"] += sig.signal_type in _BUY
            bucket["sell"] += sig.signal_type in _SELL
            bucket["strong"] += sig.signal_type.startswith("strong_")


def assemble_report(
    cfg: Config,
    run_id: str,
    counts: SignalCounts,
    *,
    unprocessed_tail: int,
    missing_signals: int,
    marks: Markouts,
    pnl: PnlTally,
    last_mid: Mapping[str, float],
    dropped: int,
    deadletter: int,
    generated_ms: int | None,
) -> ReportRow:
    """The report from its parts, however they were counted (all at once, or as rows came)."""
    types = counts.types
    per_minute = [
        MinuteCount(minute=m, count=c["count"], buy=c["buy"], sell=c["sell"], strong=c["strong"])
        for m, c in sorted(counts.minutes.items())
    ]
    last5 = per_minute[-5:]
    last5_total = sum(m.count for m in last5)
    total = sum(types.values())
    order_summary = pnl.orders_summary()
    warnings = []
    if counts.rows == 0:
        warnings.append("NO_SIGNALS")
    elif total == 0:
        warnings.append("ALL_GATED")
    if dropped:
        warnings.append("DROPPED")
    if deadletter:
        warnings.append("DEADLETTER")
    if total and order_summary.count == 0:
        warnings.append("NO_ORDERS")
    if missing_signals:
        warnings.append("MISSING_SIGNALS")
    strong = types["strong_buy"] + types["strong_sell"]
    return ReportRow(
        run_id=run_id,
        sink=cfg.signal.sink.value,
        generated_at=utc_iso(generated_ms if generated_ms is not None else now_ms()),
        total=total,
        rows=counts.rows,
        buy_count=types["buy"],
        sell_count=types["sell"],
        strong_buy_count=types["strong_buy"],
        strong_sell_count=types["strong_sell"],
        buy_ratio=_ratio(types["buy"] + types["strong_buy"], total),
        sell_ratio=_ratio(types["sell"] + types["strong_sell"], total),
        strong_ratio=_ratio(strong, total),
        per_minute=per_minute,
        last_5min=LastFiveMinutes(
            per_minute=last5, strong_ratio=_ratio(sum(m.strong for m in last5), last5_total)
        ),
        dropped=dropped,
        unprocessed_tail=unprocessed_tail,
        missing_signals=missing_signals,
        orders=order_summary,
        markouts=summarize(marks, fee_bps=cfg.broker.fee_bps, slippage_bps=cfg.broker.slippage_bps),
        pnl=pnl.report(last_mid),
        warnings=warnings,
    )


def _unsignalled(features: Iterable[FeaturePoint], signalled: dict[str, set[int]]) -> tuple[int, int]:
    """(feature rows after each symbol's last signal, feature rows before it without one)."""
    tail = missing = 0
    last = {sym: max(ts) for sym, ts in signalled.items() if ts}
    for f in features:
        if f.ts_ms in signalled.get(f.symbol, ()):
            continue
        if f.ts_ms > last.get(f.symbol, -1):
            tail += 1
        else:
            missing += 1
    return tail, missing


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0
