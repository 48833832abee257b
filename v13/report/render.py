"""The run summary's files: JSON, Markdown and a PNG chart, each replaced atomically.

The chart has two panels: confirmed signals per minute (the last five minutes shaded), and the
markouts: mean signed move against horizon with its 95% band, one line per strength, the cost of
a round trip as a horizontal line (docs/report.md says how to read it).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from v13.contracts import HorizonStats, ReportRow
from v13.fsutil import atomic_write_bytes, atomic_write_json
from v13.report.build import WARNING_CODES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["render_chart", "render_markdown", "write_report"]


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _ci(ci: list[float] | None, fmt: str = ".2f") -> str:
    return "-" if ci is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _markout_rows(label: str, table: list[HorizonStats]) -> list[str]:
    return [
        f"| {label} | {h.horizon_s} s | {h.count} | {h.censored} | {h.flat} | {_f(h.hit_rate, '.3f')} "
        f"{_ci(h.hit_rate_ci, '.3f')} | {_f(h.mean_bps)} {_ci(h.mean_ci)} | "
        f"{_f(h.median_bps)} {_ci(h.median_ci)} |"
        for h in table
    ]


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
    lines += _markouts_md(r) + _pnl_md(r)
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


def _markouts_md(r: ReportRow) -> list[str]:
    mk = r.markouts
    head = [
        "",
        f"## Markouts ({mk.signals} confirmed signals; signed mid move in bps after each horizon)",
        "",
        "| group | horizon | n | censored | flat | hit rate [95%] | mean bps [95%] | median bps [95%] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = _markout_rows("all", mk.all)
    for title, groups in (("strength", mk.by_strength), ("regime", mk.by_regime), ("symbol", mk.by_symbol)):
        for key, table in groups.items():
            body += _markout_rows(f"{title} {key}", table)
    c = mk.cost
    edge = [
        "",
        f"### Edge against cost (round trip 2 × ({c.fee_bps:g} fee + {c.slippage_bps:g} slippage) = "
        f"{c.round_trip_bps:g} bps, plus half the spread at entry, "
        f"{c.mean_half_spread_bps:.2f} bps on average)",
        "",
        "| horizon | mean move bps | cost bps | net bps [95%] | pays? |",
        "|---|---|---|---|---|",
    ]
    for e in mk.edge:
        verdict = "yes, significantly" if e.significant else "yes" if e.exceeds_cost else "no"
        edge.append(
            f"| {e.horizon_s} s | {e.mean_move_bps:.2f} | {e.cost_bps:.2f} | "
            f"{e.net_bps:.2f} {_ci(e.net_ci)} | {verdict} |"
        )
    paying = [e for e in mk.edge if e.exceeds_cost]
    edge += [
        "",
        "The mean move exceeds the cost at "
        + (", ".join(f"{e.horizon_s} s (by {e.net_bps:.2f} bps)" for e in paying) if paying else "no horizon")
        + ".",
    ]
    return head + body + edge


def _pnl_md(r: ReportRow) -> list[str]:
    lines = [
        "",
        "## PnL decomposition",
        "",
        "Quote currency; net = gross - spread - slippage - fees, every position marked to the last mid.",
        "",
        "| symbol | orders | gross | spread | slippage | fees | net | realised (broker) | position |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sym, p in [*r.pnl.by_symbol.items(), ("total", r.pnl.total)]:
        position = "-" if sym == "total" else f"{p.position:g}"
        lines.append(
            f"| {sym} | {p.orders} | {p.gross:.4f} | {p.spread:.4f} | {p.slippage:.4f} | {p.fees:.4f} | "
            f"{p.net:.4f} | {p.realized:.4f} | {position} |"
        )
    return lines


def render_chart(r: ReportRow) -> bytes:
    """PNG: confirmed signals per minute (top), markouts by horizon (bottom).

    A bare Agg Figure rather than pyplot, which would keep every figure in global state until
    closed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7.5), dpi=100)
    FigureCanvasAgg(fig)
    ax, mk_ax = fig.subplots(2, 1, height_ratios=(1, 1))
    xs = list(range(len(r.per_minute)))
    series = (("buy", "#2a9d8f", -0.27), ("sell", "#e76f51", 0.0), ("strong", "#264653", 0.27))
    for name, color, offset in series:
        _bars(ax, [x + offset for x in xs], [getattr(m, name) for m in r.per_minute], 0.27, name, color)
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
    _markout_panel(mk_ax, r)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _bars(ax: Axes, xs: list[float], heights: list[int], width: float, label: str, color: str) -> None:
    """Bars as one collection: one artist however many minutes the run has, so a refresh's
    memory does not grow with the run (``Axes.bar`` makes an artist per bar)."""
    from matplotlib.collections import PolyCollection

    half = width / 2
    verts = [
        ((x - half, 0), (x - half, h), (x + half, h), (x + half, 0)) for x, h in zip(xs, heights, strict=True)
    ]
    bars = PolyCollection(verts, facecolors=color, edgecolors="none", label=label)
    bars.sticky_edges.y.append(0)  # the axis starts at zero, as with Axes.bar
    ax.add_collection(bars)
    ax.autoscale_view()


def _markout_panel(ax: Axes, r: ReportRow) -> None:
    mk = r.markouts
    colors = {"normal": "#2a9d8f", "strong": "#264653"}
    span = 0.0  # the largest |value| the bands reach
    for strength, table in mk.by_strength.items():
        pts = [(h.horizon_s, h.mean_bps, h.mean_ci) for h in table if h.mean_bps is not None]
        if not pts:
            continue
        hs = [p[0] for p in pts]
        color = colors.get(strength, "#888888")
        ax.plot(hs, [p[1] for p in pts], marker="o", color=color, label=f"{strength} (mean, 95% band)")
        lows = [p[2][0] if p[2] else p[1] for p in pts]
        highs = [p[2][1] if p[2] else p[1] for p in pts]
        ax.fill_between(hs, lows, highs, color=color, alpha=0.2)
        span = max(span, *(abs(v) for v in lows + highs))
    cost = mk.cost.round_trip_bps + mk.cost.mean_half_spread_bps
    ax.axhline(cost, color="#e76f51", linestyle="--", label=f"cost {cost:.1f} bps")
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    if span and cost > 5 * span:  # a linear axis would flatten the markouts under the cost line
        ax.set_yscale("symlog", linthresh=span)
        ax.set_ylim(-2 * span, 2 * cost)
    ax.set_xscale("log")
    ax.set_xticks(mk.horizons_s, [f"{h} s" for h in mk.horizons_s])
    ax.set_xlabel("horizon after the signal")
    ax.set_ylabel("signed mid move, bps")
    ax.set_title(f"markouts of {mk.signals} confirmed signals", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)


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
