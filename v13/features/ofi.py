"""Order-flow imbalance (Cont, Kukanov & Stoikov 2014), per level and price-aware.

For book update n at level m::

    e = 1[Pb_n >= Pb_n-1]·qb_n − 1[Pb_n <= Pb_n-1]·qb_n-1 − 1[Pa_n <= Pa_n-1]·qa_n + 1[Pa_n >= Pa_n-1]·qa_n-1
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["level_ofi", "multi_level_ofi"]

Level = tuple[float, float]


def level_ofi(prev_bid: Level, prev_ask: Level, bid: Level, ask: Level) -> float:
    """OFI contribution of one level between two consecutive books."""
    return multi_level_ofi((prev_bid,), (prev_ask,), (bid,), (ask,), (1.0,))


def multi_level_ofi(
    prev_bids: Sequence[Level],
    prev_asks: Sequence[Level],
    bids: Sequence[Level],
    asks: Sequence[Level],
    weights: Sequence[float],
) -> float:
    """Σ_m w_m·e_m over the levels present in both books (one loop, no call per level: it runs
    for every book row)."""
    total = 0.0
    levels = zip(weights, prev_bids, prev_asks, bids, asks, strict=False)  # those present in all
    for w, (pb0, qb0), (pa0, qa0), (pb1, qb1), (pa1, qa1) in levels:
        e = 0.0
        if pb1 >= pb0:
            e += qb1
        if pb1 <= pb0:
            e -= qb0
        if pa1 <= pa0:
            e -= qa1
        if pa1 >= pa0:
            e += qa0
        total += w * e
    return total
