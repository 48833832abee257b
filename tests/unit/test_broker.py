"""Broker book-keeping: which signals trade, fills, fees, positions, realised and paper PnL."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tests.unit.helpers import signal_row
from v13.broker import Book, Broker
from v13.config import load_config

T0 = 1_764_300_000_000


def broker(**changes: object) -> Broker:
    cfg = load_config(environ={}, overrides={f"broker.{k}": v for k, v in changes.items()})
    return Broker(cfg.broker, "run1")


def sig(kind: str, ts: int, bid: float = 100.0, ask: float = 100.1, **kw: object):
    return signal_row(
        "run1", "BTCUSDT", ts, signal_type=kind, best_bid=bid, best_ask=ask, mid=(bid + ask) / 2, **kw
    )


def test_every_strong_and_every_fifth_normal_signal_per_symbol_trades() -> None:
    b = broker()
    kinds = ["buy"] * 9 + ["strong_sell"] + ["buy"]
    orders = [b.on_signal(sig(k, T0 + i)) for i, k in enumerate(kinds)]
    traded = [i for i, o in enumerate(orders) if o is not None]
    assert traded == [4, 9, 10]  # the 5th normal, the strong one, the 10th normal
    assert [orders[i].strength for i in traded] == ["NORMAL", "STRONG", "NORMAL"]
    other = b.on_signal(signal_row("run1", "ETHUSDT", T0, signal_type="buy"))
    assert other is None  # the count is per symbol


@pytest.mark.parametrize(("kind", "confirm"), [("pending", False), ("neutral", False), ("strong_buy", False)])
def test_unconfirmed_signals_never_trade(kind: str, confirm: bool) -> None:
    assert broker().on_signal(sig(kind, T0, confirm=confirm)) is None


def test_fills_at_the_touch_plus_slippage_with_fee_and_deterministic_ids() -> None:
    b = broker(slippage_bps=10.0, fee_bps=5.0, order_usd=1000.0)
    buy = b.on_signal(sig("strong_buy", T0, bid=100.0, ask=100.1))
    assert buy.fill_price == pytest.approx(100.1 * 1.001)
    assert buy.qty == float(
        (Decimal("1000") / (Decimal("100.1") * Decimal("1.001"))).quantize(
            Decimal("0.00000001"), rounding="ROUND_DOWN"
        )
    )
    assert buy.fee == pytest.approx(buy.qty * buy.fill_price * 5 / 10_000)
    assert buy.order_id == f"run1:BTCUSDT:{T0}" and buy.side == "BUY" and buy.status == "FILLED"
    sell = b.on_signal(sig("strong_sell", T0 + 1000, bid=101.0, ask=101.1))
    assert sell.fill_price == pytest.approx(101.0 * 0.999)


def test_realised_pnl_uses_the_average_entry_and_is_net_of_fees() -> None:
    b = broker(slippage_bps=0.0, fee_bps=0.0, order_usd=1000.0)
    b.on_signal(sig("strong_buy", T0, ask=100.0, bid=99.9))  # 10 @ 100
    b.on_signal(sig("strong_buy", T0 + 1, ask=125.0, bid=124.9))  # 8 @ 125 -> 18 @ 111.11
    close = b.on_signal(sig("strong_sell", T0 + 2, bid=125.0, ask=125.1))  # sell 8 @ 125
    assert close.position_after == pytest.approx(10.0)
    assert close.realized_pnl == pytest.approx(8 * (125 - 2000 / 18))
    b2 = broker(slippage_bps=0.0, fee_bps=10.0, order_usd=1000.0)
    first = b2.on_signal(sig("strong_buy", T0, ask=100.0, bid=99.9))
    assert first.realized_pnl == pytest.approx(-1.0)  # 10 bps of 1000 in fees, nothing closed yet


def test_paper_mode_marks_open_positions_to_the_latest_mid() -> None:
    b = broker(paper=True, slippage_bps=0.0, fee_bps=0.0, order_usd=1000.0)
    b.on_signal(sig("strong_buy", T0, ask=100.0, bid=99.9))
    b.on_signal(sig("neutral", T0 + 1, bid=109.95, ask=110.05, confirm=False))
    assert b.totals()["unrealized_pnl"] == pytest.approx(10 * (110.0 - 100.0))
    mock = broker(paper=False, slippage_bps=0.0, fee_bps=0.0)
    mock.on_signal(sig("strong_buy", T0, ask=100.0, bid=99.9))
    mock.on_signal(sig("neutral", T0 + 1, bid=109.95, ask=110.05, confirm=False))
    assert mock.totals()["unrealized_pnl"] == 0.0


def test_state_round_trips_through_the_checkpoint() -> None:
    b = broker()
    for i in range(3):
        b.on_signal(sig("buy", T0 + i))
    b.on_signal(sig("strong_buy", T0 + 10))
    saved = msgspec.json.decode(msgspec.json.encode(b.books), type=dict[str, Book])
    restored = Broker(b.cfg, "run1", saved)
    assert restored.books == b.books
    assert restored.on_signal(sig("buy", T0 + 10)) is None  # already seen: nothing booked twice
    assert (
        restored.on_signal(sig("buy", T0 + 20)) is None
        and restored.on_signal(sig("buy", T0 + 21)) is not None
    )


def test_the_pnl_decomposition_adds_up_to_positions_marked_at_the_last_mid() -> None:
    from v13.pnl import pnl_report

    b = broker(slippage_bps=10.0, fee_bps=5.0)  # 10 bps slippage, 5 bps fee
    buy = b.on_signal(sig("strong_buy", T0, bid=99.0, ask=101.0))  # mid 100, buys at 101 * 1.001
    sell = b.on_signal(sig("strong_sell", T0 + 1, bid=104.0, ask=106.0))  # mid 105, sells at 104 * 0.999
    assert buy is not None and sell is not None
    quotes = {("BTCUSDT", T0): (100.0, 99.0, 101.0), ("BTCUSDT", T0 + 1): (105.0, 104.0, 106.0)}
    p = pnl_report([buy, sell], quotes, {"BTCUSDT": 110.0}).by_symbol["BTCUSDT"]
    q1, q2 = buy.qty, sell.qty
    assert p.gross == pytest.approx(q1 * (110 - 100) - q2 * (110 - 105))
    assert p.spread == pytest.approx(q1 * 1.0 + q2 * 1.0)
    assert p.slippage == pytest.approx(q1 * 101 * 0.001 + q2 * 104 * 0.001)
    assert p.fees == pytest.approx(buy.fee + sell.fee)
    marked = q1 * (110 - buy.fill_price) - q2 * (110 - sell.fill_price) - buy.fee - sell.fee
    assert p.net == pytest.approx(marked)  # every position at the last mid, at the prices paid
    assert (p.orders, p.realized, p.position) == (2, sell.realized_pnl, sell.position_after)
