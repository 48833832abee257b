"""The run summary: built from a run's files, so the live report stage and the orchestrator's
final report (after the children stopped) are the same function.

    report = build_report(cfg, layout, run_id)
    paths = write_report(report, layout.summary_paths(run_id))

Files: ``logs/report/summary_<YYYYMMDD_HHMM>_<token>.{json,md,png}`` (stamp = the run's start in
UTC, token = the run id's), each replaced atomically.

``unprocessed_tail`` and ``missing_signals`` come from the files too: feature rows of the run
without a signal row, after each symbol's last signal (the tail a stop leaves: the signal stage
stops before harvest) and before it (rows that were lost).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import orjson

from v13.config import Config
from v13.contracts import (
    LastFiveMinutes,
    MinuteCount,
    OrdersSummary,
    ReportRow,
    SignalRow,
    StatusRow,
    decode_row,
)
from v13.errors import ContractError
from v13.fsutil import atomic_write_bytes, atomic_write_json, now_ms, utc_iso
from v13.layout import Layout
from v13.segments import SegmentFollower, discover_tails
from v13.sinks import open_signal_reader

__all__ = [
    "WARNING_CODES",
    "build_report",
    "deadletter_entries",
    "feature_keys",
    "read_signal_rows",
    "render_markdown",
    "run_dropped",
    "write_report",
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


def read_signal_rows(cfg: Config, layout: Layout, run_id: str) -> Iterator[SignalRow]:
    """Every signal row of ``run_id`` in the configured sink, from the start."""
    reader = open_signal_reader(cfg, layout, run_id)
    try:
        while batch := reader.poll(20_000):
            yield from batch
    finally:
        reader.close()


class _FeatureKey(msgspec.Struct):
    ts_ms: int
    symbol: str


_KEY_DECODER = msgspec.json.Decoder(_FeatureKey)


def feature_keys(layout: Layout, run_id: str) -> Iterator[tuple[str, int]]:
    """(symbol, ts_ms) of every feature row the harvest wrote in ``run_id`` (open segments too),
    but those the signal stage rejected into the deadletter (accounted for there)."""
    rejected = _rejected_lines(layout, run_id, "signal")
    data = layout.data
    for tail in discover_tails(data.preview_spool, data.preview_ready):
        follower = SegmentFollower(data.preview_spool, data.preview_ready, tail, stem_filter=run_id)
        while lines := follower.read(50_000):
            for line, _pos in lines:
                if rejected and line.decode("utf-8", "replace") in rejected:
                    continue
                try:
                    key = _KEY_DECODER.decode(line)
                except msgspec.DecodeError:
                    continue
                yield key.symbol, key.ts_ms


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


def _unsignalled(features: Iterator[tuple[str, int]], signalled: dict[str, set[int]]) -> tuple[int, int]:
    """(feature rows after each symbol's last signal, feature rows before it without one)."""
    tail = missing = 0
    last = {sym: max(ts) for sym, ts in signalled.items() if ts}
    for sym, ts in features:
        if ts in signalled.get(sym, ()):
            continue
        if ts > last.get(sym, -1):
            tail += 1
        else:
            missing += 1
    return tail, missing


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


def _minute(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def build_report(cfg: Config, layout: Layout, run_id: str, *, generated_ms: int | None = None) -> ReportRow:
    """Recount the run from its files: signal rows of the sink, orders, status files, deadletter."""
    types: Counter[str] = Counter()
    minutes: dict[str, Counter[str]] = {}
    signalled: dict[str, set[int]] = {}
    rows = 0
    for sig in read_signal_rows(cfg, layout, run_id):
        rows += 1
        signalled.setdefault(sig.symbol, set()).add(sig.ts_ms)
        bucket = minutes.setdefault(_minute(sig.ts_ms), Counter())
        if sig.confirm:
            types[sig.signal_type] += 1
            bucket["count"] += 1
            bucket["buy"] += sig.signal_type in _BUY
            bucket["sell"] += sig.signal_type in _SELL
            bucket["strong"] += sig.signal_type.startswith("strong_")
    per_minute = [
        MinuteCount(minute=m, count=c["count"], buy=c["buy"], sell=c["sell"], strong=c["strong"])
        for m, c in sorted(minutes.items())
    ]
    last5 = per_minute[-5:]
    last5_total = sum(m.count for m in last5)
    total = sum(types.values())
    orders = _orders(layout.orders_file, run_id)
    dropped = run_dropped(layout, run_id)
    tail, missing = _unsignalled(feature_keys(layout, run_id), signalled)
    warnings = []
    if rows == 0:
        warnings.append("NO_SIGNALS")
    elif total == 0:
        warnings.append("ALL_GATED")
    if dropped:
        warnings.append("DROPPED")
    if deadletter_entries(layout, run_id):
        warnings.append("DEADLETTER")
    if total and orders.count == 0:
        warnings.append("NO_ORDERS")
    if missing:
        warnings.append("MISSING_SIGNALS")
    strong = types["strong_buy"] + types["strong_sell"]
    return ReportRow(
        run_id=run_id,
        sink=cfg.signal.sink.value,
        generated_at=utc_iso(generated_ms if generated_ms is not None else now_ms()),
        total=total,
        rows=rows,
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
        unprocessed_tail=tail,
        missing_signals=missing,
        orders=orders,
        warnings=warnings,
    )


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _orders(path: Path, run_id: str) -> OrdersSummary:
    count = buy = sell = 0
    pnl: dict[str, float] = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                order = decode_row("order", line)
            except ContractError:
                continue
            if order.run_id != run_id:
                continue
            count += 1
            buy += order.side == "BUY"
            sell += order.side == "SELL"
            pnl[order.symbol] = order.realized_pnl
    return OrdersSummary(count=count, buy=buy, sell=sell, pnl=round(sum(pnl.values()), 8))


def render_markdown(r: ReportRow) -> str:
    lines = [
        f"# V13 run summary — {r.run_id}",
        "",
        f"Sink: `{r.sink}` · generated {r.generated_at}",
        "",
        "| field | value |",
        "|---|---|",
        f"| total (confirmed) | {r.total} |",
        f"| rows (all signal rows) | {r.rows} |",
        f"| buy / strong_buy | {r.buy_count} / {r.strong_buy_count} |",
        f"| sell / strong_sell | {r.sell_count} / {r.strong_sell_count} |",
        f"| buy_ratio | {r.buy_ratio:.3f} |",
        f"| sell_ratio | {r.sell_ratio:.3f} |",
        f"| strong_ratio | {r.strong_ratio:.3f} |",
        f"| dropped | {r.dropped} |",
        f"| unprocessed_tail (feature rows after the last signal, left by the stop) | {r.unprocessed_tail} |",
        f"| missing_signals (feature rows inside the run without a signal) | {r.missing_signals} |",
        f"| orders (buy / sell) | {r.orders.count} ({r.orders.buy} / {r.orders.sell}) |",
        f"| realised PnL | {r.orders.pnl:.4f} |",
        f"| warnings | {', '.join(r.warnings) or 'none'} |",
        "",
        f"## Last 5 minutes (strong ratio {r.last_5min.strong_ratio:.3f})",
        "",
        "| minute (UTC) | confirmed | buy | sell | strong |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m.minute} | {m.count} | {m.buy} | {m.sell} | {m.strong} |" for m in r.last_5min.per_minute]
    lines += [
        "",
        "## Per minute",
        "",
        "| minute (UTC) | confirmed | buy | sell | strong |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m.minute} | {m.count} | {m.buy} | {m.sell} | {m.strong} |" for m in r.per_minute]
    if r.warnings:
        lines += ["", "## Warnings", ""] + [f"- `{w}`: {WARNING_CODES.get(w, '')}" for w in r.warnings]
    return "\n".join(lines) + "\n"


def render_chart(r: ReportRow) -> bytes:
    """PNG: confirmed buy / sell / strong signals per minute; the last 5 minutes shaded.

    A bare Agg Figure rather than pyplot, which would keep every figure in global state until
    closed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = list(range(len(r.per_minute)))
    ax.bar([x - 0.27 for x in xs], [m.buy for m in r.per_minute], width=0.27, label="buy", color="#2a9d8f")
    ax.bar(xs, [m.sell for m in r.per_minute], width=0.27, label="sell", color="#e76f51")
    ax.bar(
        [x + 0.27 for x in xs], [m.strong for m in r.per_minute], width=0.27, label="strong", color="#264653"
    )
    if len(xs) >= 1:
        ax.axvspan(max(-0.5, len(xs) - 5.5), len(xs) - 0.5, color="#f4a261", alpha=0.15, label="last 5 min")
    step = max(1, len(xs) // 10)
    ax.set_xticks(xs[::step], [m.minute[11:16] for m in r.per_minute][::step])
    ax.set_xlabel("minute (UTC)")
    ax.set_ylabel("confirmed signals")
    ax.set_title(
        f"{r.run_id} · {r.sink} · total {r.total} · strong ratio {r.strong_ratio:.2f} "
        f"(last 5 min {r.last_5min.strong_ratio:.2f})",
        fontsize=9,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_report(r: ReportRow, paths: dict[str, Path], *, chart: bool = True) -> dict[str, Path]:
    """Write (replace) the JSON, Markdown and, optionally, PNG of a report at ``paths`` (by
    extension, from :meth:`Layout.summary_paths`); returns the paths written."""
    paths = dict(paths)
    atomic_write_json(paths["json"], r)
    atomic_write_bytes(paths["md"], render_markdown(r).encode())
    if chart:
        atomic_write_bytes(paths["png"], render_chart(r))
    else:
        del paths["png"]
    return paths
