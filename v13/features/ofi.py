"""Order-flow imbalance (Cont, Kukanov & Stoikov 2014), per level and price-aware.

For book update n at level m::

    e = 1[Pb_n >= Pb_n-1]·qb_n − 1[Pb_n <= Pb_n-1]·qb_n-1 − 1[Pa_n <= Pa_n-1]·qa_n + 1[Pa_n >= Pa_n-1]·qa_n-1
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["level_ofi", "multi_level_ofi", "ofi_and_depth"]

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
    """Σ_m w_m·e_m over the levels present in both books."""
    return ofi_and_depth(prev_bids, prev_asks, bids, asks, weights)[0]


def ofi_and_depth(
    prev_bids: Sequence[Level],
    prev_asks: Sequence[Level],
    bids: Sequence[Level],
    asks: Sequence[Level],
    weights: Sequence[float],
) -> tuple[float, float]:
    """The weighted OFI (as :func:`multi_level_ofi`) and the new book's mean quantity per level and
    side over its first ``len(weights)`` levels where both sides have one, in one pass: it runs
    for every book row. With no previous book (empty ``prev_*``) the OFI is 0."""
    total = 0.0
    depth = 0.0
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
        depth += qb1 + qa1
    n = min(len(weights), len(bids), len(asks))
    for k in range(min(n, len(prev_bids), len(prev_asks)), n):  # levels the previous book lacked
        depth += bids[k][1] + asks[k][1]
    return total, depth / (2 * n) if n else 0.0
