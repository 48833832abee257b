"""OFI: hand-computed cases of the CKS formula, per level and weighted over levels."""

from __future__ import annotations

import pytest

from v13.features.ofi import level_ofi, multi_level_ofi

# prev bid (100.0, 5), prev ask (100.1, 7)
PREV_BID, PREV_ASK = (100.0, 5.0), (100.1, 7.0)


@pytest.mark.parametrize(
    ("bid", "ask", "expected", "why"),
    [
        ((100.05, 2.0), PREV_ASK, 2.0, "bid up: + new bid size; ask unchanged, same size: 0"),
        ((99.95, 3.0), PREV_ASK, -5.0, "bid down: - old bid size"),
        ((100.0, 8.0), PREV_ASK, 3.0, "bid unchanged: new - old = 8 - 5"),
        (PREV_BID, (100.15, 4.0), 7.0, "ask up: + old ask size"),
        (PREV_BID, (100.05, 4.0), -4.0, "ask down: - new ask size"),
        (PREV_BID, (100.1, 9.0), -2.0, "ask unchanged: old - new = 7 - 9"),
        (PREV_BID, PREV_ASK, 0.0, "nothing changed"),
        ((100.05, 2.0), (100.05, 1.0), 2.0 - 1.0, "bid up and ask down"),
    ],
)
def test_level_ofi_hand_cases(bid, ask, expected, why) -> None:
    assert level_ofi(PREV_BID, PREV_ASK, bid, ask) == expected, why


def test_multi_level_weights_each_level_by_its_own_prices() -> None:
    prev_bids = [(100.0, 5.0), (99.9, 10.0)]
    prev_asks = [(100.1, 7.0), (100.2, 10.0)]
    bids = [(100.0, 6.0), (99.9, 4.0)]  # level 1: +1, level 2: -6
    asks = [(100.1, 7.0), (100.3, 3.0)]  # level 1: 0, level 2 ask up: +10
    got = multi_level_ofi(prev_bids, prev_asks, bids, asks, [0.4, 0.25, 0.2, 0.1, 0.05])
    assert got == pytest.approx(0.4 * 1.0 + 0.25 * (-6.0 + 10.0))


def test_multi_level_uses_only_levels_present_in_both_books() -> None:
    got = multi_level_ofi([(100.0, 1.0)], [(100.1, 1.0)], [(100.0, 3.0), (99.9, 9.0)],
                          [(100.1, 1.0), (100.2, 9.0)], [0.5, 0.5])  # fmt: skip
    assert got == 0.5 * 2.0
