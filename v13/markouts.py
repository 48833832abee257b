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
    report = summarize(marks, fee_bps=4.0, slippage_bps=1.0)
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from v13.contracts import CostModel, EdgeRow, HorizonStats, MarkoutReport, SignalRow

__all__ = ["Markouts", "MidPoint", "signal_markouts", "summarize", "wilson"]

Z95 = 1.959963984540054


class MidPoint(Protocol):
    """A feature row, or what the report keeps of one."""

    @property
    def ts_ms(self) -> int: ...

    @property
    def symbol(self) -> str: ...

    @property
    def mid(self) -> float | None: ...


class _Labels:
    """A column of strings kept as small integer codes (a run has a handful of distinct ones)."""

    __slots__ = ("codes", "index", "names")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.codes = array("I")

    def append(self, name: str) -> None:
        code = self.index.get(name)
        if code is None:
            code = self.index[name] = len(self.names)
            self.names.append(name)
        self.codes.append(code)

    def copy(self) -> _Labels:
        out = _Labels()
        out.names, out.index, out.codes = list(self.names), dict(self.index), self.codes[:]
        return out

    def groups(self) -> dict[str, np.ndarray]:
        """Row numbers per name, names sorted."""
        codes = np.frombuffer(self.codes, dtype=np.uint32)
        return {name: np.flatnonzero(codes == self.index[name]) for name in sorted(self.names)}


class Markouts:
    """Confirmed signals' moves, as columns: ``moves[i][j]`` is signal ``j``'s signed move at
    ``horizons_s[i]`` in bps, NaN when censored. About 50 bytes a signal, so a report that keeps
    every markout of a long run (the medians need every value) stays small."""

    def __init__(self, horizons_s: Sequence[int]) -> None:
        self.horizons_s = tuple(horizons_s)
        self.moves = tuple(array("d") for _ in self.horizons_s)
        self.half_spread_bps = array("d")
        self.symbol = _Labels()
        self.strength = _Labels()  # normal | strong
        self.regime = _Labels()

    def __len__(self) -> int:
        return len(self.half_spread_bps)

    def append(
        self, symbol: str, strength: str, regime: str, half_spread_bps: float, moves: Sequence[float | None]
    ) -> None:
        for column, move in zip(self.moves, moves, strict=True):
            column.append(math.nan if move is None else move)
        self.half_spread_bps.append(half_spread_bps)
        self.symbol.append(symbol)
        self.strength.append(strength)
        self.regime.append(regime)

    def copy(self) -> Markouts:
        """An independent copy (array copies: no work per signal)."""
        out = Markouts(self.horizons_s)
        out.moves = tuple(column[:] for column in self.moves)
        out.half_spread_bps = self.half_spread_bps[:]
        out.symbol, out.strength, out.regime = self.symbol.copy(), self.strength.copy(), self.regime.copy()
        return out

    def column(self, i: int) -> np.ndarray:
        """The moves at ``horizons_s[i]`` (a view, not a copy)."""
        return np.frombuffer(self.moves[i], dtype=np.float64)


def signal_markouts(
    features: Iterable[MidPoint],
    signals: Iterable[SignalRow],
    horizons_s: Sequence[int],
    into: Markouts | None = None,
) -> Markouts:
    """The markouts of every confirmed signal, from the feature rows of the same run; added to
    ``into`` when given."""
    times: dict[str, list[int]] = {}
    mids: dict[str, list[float]] = {}
    last: dict[str, int] = {}
    for f in sorted(features, key=lambda f: (f.symbol, f.ts_ms)):
        last[f.symbol] = f.ts_ms
        if f.mid is not None:
            times.setdefault(f.symbol, []).append(f.ts_ms)
            mids.setdefault(f.symbol, []).append(f.mid)
    out = Markouts(horizons_s) if into is None else into
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
        strength = "strong" if s.signal_type.startswith("strong_") else "normal"
        out.append(s.symbol, strength, s.regime, (s.spread_bps or 0.0) / 2, moves)
    return out


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    p = hits / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return center - half, center + half


def _mean_ci(values: np.ndarray) -> tuple[float, tuple[float, float] | None]:
    n = len(values)
    mean = float(values.sum()) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(float(((values - mean) ** 2).sum()) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)


def _median_ci(values: np.ndarray) -> tuple[float, tuple[float, float] | None]:
    """Median, and its 95% interval from the order statistics j, k around n/2."""
    xs = np.sort(values)
    n = len(xs)
    median = float(xs[n // 2]) if n % 2 else (float(xs[n // 2 - 1]) + float(xs[n // 2])) / 2
    j = math.floor(n / 2 - Z95 * math.sqrt(n) / 2)
    k = math.ceil(n / 2 + Z95 * math.sqrt(n) / 2)
    if j < 1 or k > n:
        return median, None
    return median, (float(xs[j - 1]), float(xs[k - 1]))


def _stats(horizon_s: int, moves: np.ndarray) -> HorizonStats:
    done = moves[~np.isnan(moves)]
    hits = int((done > 0).sum())
    misses = int((done < 0).sum())
    decided = hits + misses
    mean, mean_ci = _mean_ci(done) if len(done) else (None, None)
    median, median_ci = _median_ci(done) if len(done) else (None, None)
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


def _table(marks: Markouts, rows: np.ndarray | None = None) -> list[HorizonStats]:
    """Per horizon, over every signal or over ``rows``."""
    out = []
    for i, h in enumerate(marks.horizons_s):
        moves = marks.column(i)
        out.append(_stats(h, moves if rows is None else moves[rows]))
    return out


def _by(marks: Markouts, labels: _Labels) -> dict[str, list[HorizonStats]]:
    return {name: _table(marks, rows) for name, rows in labels.groups().items()}


def summarize(marks: Markouts, *, fee_bps: float, slippage_bps: float) -> MarkoutReport:
    """Statistics per horizon, per breakdown, and the edge against the cost of trading."""
    round_trip = 2 * (fee_bps + slippage_bps)
    half_spreads = np.frombuffer(marks.half_spread_bps, dtype=np.float64)
    half_spread = float(half_spreads.sum()) / len(marks) if len(marks) else 0.0
    edge = []
    for i, h in enumerate(marks.horizons_s):
        moves = marks.column(i)
        done = ~np.isnan(moves)
        if not done.any():
            continue
        move, cost = moves[done], round_trip + half_spreads[done]
        mean_net, ci = _mean_ci(move - cost)
        edge.append(
            EdgeRow(
                horizon_s=h,
                mean_move_bps=float(move.sum()) / len(move),
                cost_bps=float(cost.sum()) / len(cost),
                net_bps=mean_net,
                net_ci=list(ci) if ci else None,
                exceeds_cost=mean_net > 0,
                significant=ci is not None and ci[0] > 0,
            )
        )
    return MarkoutReport(
        horizons_s=list(marks.horizons_s),
        signals=len(marks),
        all=_table(marks),
        by_strength=_by(marks, marks.strength),
        by_regime=_by(marks, marks.regime),
        by_symbol=_by(marks, marks.symbol),
        cost=CostModel(
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            round_trip_bps=round_trip,
            mean_half_spread_bps=half_spread,
        ),
        edge=edge,
    )
