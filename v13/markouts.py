"""Markouts: does a confirmed signal predict the next move, at which horizon, and does that edge
survive the cost of trading it?

For every confirmed signal (symbol, time ``t``, direction +1 buy / -1 sell) and horizon ``h``,
the *signed move* is ``direction * (mid(t + h) / mid(t) - 1)`` in basis points, where
``mid(t + h)`` is the mid of the symbol's last feature row at or before ``t + h`` that has a
book. A signal whose horizon runs past the symbol's last feature row is *censored*: counted, not
dropped silently, and not in the statistics.

Per horizon: the hit rate over the moves that are not zero (``hits / (hits + misses)``; a flat
mid is neither), with a 95% Wilson interval; the mean signed move with a 95% normal interval;
the median with a 95% distribution-free interval (order statistics). The same per strength
(normal / strong), regime and symbol.

**Cost.** Trading a signal costs the round trip the mock broker charges, ``2 * (fee_bps +
slippage_bps)``, plus half the spread at entry (a buy fills at the ask, the markout is measured
from the mid). The *net* move of a signal is its signed move minus its cost; the edge table says,
per horizon, whether the mean net move is above zero, and whether its 95% interval is.

Example::

    marks = signal_markouts(features, signals, horizons_s=(1, 5, 30, 60))
    report = summarize(marks, horizons_s=(1, 5, 30, 60), fee_bps=4.0, slippage_bps=1.0)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from v13.contracts import CostModel, EdgeRow, HorizonStats, MarkoutReport, SignalRow

__all__ = ["Markout", "MidPoint", "signal_markouts", "summarize", "wilson"]

Z95 = 1.959963984540054


class MidPoint(Protocol):
    """A feature row, or what the report keeps of one."""

    @property
    def ts_ms(self) -> int: ...

    @property
    def symbol(self) -> str: ...

    @property
    def mid(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Markout:
    """One confirmed signal's moves: ``moves[i]`` for ``horizons[i]``, None when censored."""

    symbol: str
    ts_ms: int
    strength: str  # normal | strong
    regime: str
    half_spread_bps: float
    moves: tuple[float | None, ...]


def signal_markouts(
    features: Iterable[MidPoint], signals: Iterable[SignalRow], horizons_s: Sequence[int]
) -> list[Markout]:
    """The markouts of every confirmed signal, from the feature rows of the same run."""
    times: dict[str, list[int]] = {}
    mids: dict[str, list[float]] = {}
    last: dict[str, int] = {}
    for f in sorted(features, key=lambda f: (f.symbol, f.ts_ms)):
        last[f.symbol] = f.ts_ms
        if f.mid is not None:
            times.setdefault(f.symbol, []).append(f.ts_ms)
            mids.setdefault(f.symbol, []).append(f.mid)
    out = []
    for s in signals:
        if not s.confirm or s.mid is None:
            continue
        direction = 1.0 if s.signal_type.endswith("buy") else -1.0
        moves: list[float | None] = []
        for h in horizons_s:
            at = s.ts_ms + h * 1000
            if at > last.get(s.symbol, -1):
                moves.append(None)  # the data ends before the horizon
                continue
            ts = times[s.symbol]
            i = bisect.bisect_right(ts, at) - 1
            moves.append(direction * (mids[s.symbol][i] / s.mid - 1.0) * 1e4)
        out.append(
            Markout(
                symbol=s.symbol,
                ts_ms=s.ts_ms,
                strength="strong" if s.signal_type.startswith("strong_") else "normal",
                regime=s.regime,
                half_spread_bps=(s.spread_bps or 0.0) / 2,
                moves=tuple(moves),
            )
        )
    return out


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    p = hits / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return center - half, center + half


def _mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)


def _median_ci(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """Median, and its 95% interval from the order statistics j, k around n/2."""
    xs = sorted(values)
    n = len(xs)
    median = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    j = math.floor(n / 2 - Z95 * math.sqrt(n) / 2)
    k = math.ceil(n / 2 + Z95 * math.sqrt(n) / 2)
    if j < 1 or k > n:
        return median, None
    return median, (xs[j - 1], xs[k - 1])


def _stats(horizon_s: int, moves: Sequence[float | None]) -> HorizonStats:
    done = [m for m in moves if m is not None]
    hits = sum(m > 0 for m in done)
    misses = sum(m < 0 for m in done)
    decided = hits + misses
    mean, mean_ci = _mean_ci(done) if done else (None, None)
    median, median_ci = _median_ci(done) if done else (None, None)
    return HorizonStats(
        horizon_s=horizon_s,
        count=len(done),
        censored=len(moves) - len(done),
        hits=hits,
        misses=misses,
        flat=len(done) - decided,
        hit_rate=hits / decided if decided else None,
        hit_rate_ci=list(wilson(hits, decided)) if decided else None,
        mean_bps=mean,
        mean_ci=list(mean_ci) if mean_ci else None,
        median_bps=median,
        median_ci=list(median_ci) if median_ci else None,
    )


def _table(marks: Sequence[Markout], horizons_s: Sequence[int]) -> list[HorizonStats]:
    return [_stats(h, [m.moves[i] for m in marks]) for i, h in enumerate(horizons_s)]


def _by(marks: Sequence[Markout], key: str, horizons_s: Sequence[int]) -> dict[str, list[HorizonStats]]:
    groups: dict[str, list[Markout]] = {}
    for m in marks:
        groups.setdefault(getattr(m, key), []).append(m)
    return {k: _table(v, horizons_s) for k, v in sorted(groups.items())}


def summarize(
    marks: Sequence[Markout], *, horizons_s: Sequence[int], fee_bps: float, slippage_bps: float
) -> MarkoutReport:
    """Statistics per horizon, per breakdown, and the edge against the cost of trading."""
    round_trip = 2 * (fee_bps + slippage_bps)
    half_spread = sum(m.half_spread_bps for m in marks) / len(marks) if marks else 0.0
    edge = []
    for i, h in enumerate(horizons_s):
        done = [(move, round_trip + m.half_spread_bps) for m in marks if (move := m.moves[i]) is not None]
        if not done:
            continue
        mean_net, ci = _mean_ci([move - cost for move, cost in done])
        edge.append(
            EdgeRow(
                horizon_s=h,
                mean_move_bps=sum(move for move, _ in done) / len(done),
                cost_bps=sum(cost for _, cost in done) / len(done),
                net_bps=mean_net,
                net_ci=list(ci) if ci else None,
                exceeds_cost=mean_net > 0,
                significant=ci is not None and ci[0] > 0,
            )
        )
    return MarkoutReport(
        horizons_s=list(horizons_s),
        signals=len(marks),
        all=_table(marks, horizons_s),
        by_strength=_by(marks, "strength", horizons_s),
        by_regime=_by(marks, "regime", horizons_s),
        by_symbol=_by(marks, "symbol", horizons_s),
        cost=CostModel(
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            round_trip_bps=round_trip,
            mean_half_spread_bps=half_spread,
        ),
        edge=edge,
    )
