"""The simulator's rows, recounted from what it returns: whole ticks and lots printed as short
decimals, each symbol's rows together and in order, ids and receive times as one connection
would deliver them."""

from __future__ import annotations

from decimal import Decimal
from itertools import groupby

from v13.contracts import BookRow, TradeRow
from v13.sources.sim import SimMarket
from v13.sources.sim_params import SYMBOLS, symbol_params

START_MS = 1_735_689_600_000
MARKET = [*SYMBOLS, "OTHERUSDT"]  # every shape of the table and the default one


def whole(value: float, step: float) -> bool:
    """``value`` prints as a multiple of ``step`` with no more decimals than ``step`` has."""
    text, unit = Decimal(repr(value)), Decimal(repr(step))
    return text % unit == 0 and -text.as_tuple().exponent <= max(0, -unit.as_tuple().exponent)  # type: ignore[operator]


def test_prices_are_whole_ticks_and_quantities_whole_lots_printed_short() -> None:
    market = SimMarket(MARKET, preset="strong", seed=4, start_ms=START_MS)
    checked = 0
    for _ in range(600):
        for row in market.step():
            p = symbol_params(row.symbol)
            if isinstance(row, TradeRow):
                levels = [(row.price, row.qty)]
            else:
                levels = row.bids + row.asks
                bid_ticks = [round(price / p.tick) for price, _ in row.bids]
                ask_ticks = [round(price / p.tick) for price, _ in row.asks]
                assert bid_ticks == list(range(bid_ticks[0], bid_ticks[0] - len(bid_ticks), -1))
                assert ask_ticks == list(range(ask_ticks[0], ask_ticks[0] + len(ask_ticks)))
            for price, qty in levels:
                assert whole(price, p.tick), (row.symbol, price)
                assert whole(qty, p.lot) and qty >= p.lot, (row.symbol, qty)
                checked += 1
    assert checked > 600 * len(MARKET) * 10


def test_each_symbols_rows_come_together_trades_in_time_order_then_its_book() -> None:
    market = SimMarket(MARKET, seed=5, start_ms=START_MS)
    last_id = dict.fromkeys(MARKET, 0)
    last_recv = dict.fromkeys(MARKET, 0)
    for step in range(300):
        t0 = START_MS + step * 100
        rows = market.step()
        groups = [(symbol, list(group)) for symbol, group in groupby(rows, key=lambda r: r.symbol)]
        assert [symbol for symbol, _ in groups] == MARKET  # one group per symbol, in market order
        for symbol, group in groups:
            *trades, book = group
            assert isinstance(book, BookRow) and book.ts_ms == t0 + 99
            assert all(isinstance(t, TradeRow) for t in trades)
            times = [t.ts_ms for t in trades]
            assert times == sorted(times) and all(t0 < ts < t0 + 99 for ts in times)
            ids = [t.trade_id for t in trades if isinstance(t, TradeRow)]
            assert ids == list(range(last_id[symbol] + 1, last_id[symbol] + 1 + len(ids)))
            last_id[symbol] += len(ids)
            for row in group:
                assert row.recv_ts_ms > row.ts_ms and row.recv_ts_ms >= last_recv[symbol]
                last_recv[symbol] = row.recv_ts_ms
    assert min(last_id.values()) > 100


def test_at_live_pace_every_row_is_received_at_the_step_s_clock() -> None:
    market = SimMarket(MARKET, seed=6, start_ms=START_MS)
    for step in range(50):
        now = START_MS + (step + 1) * 100 + 7
        rows = market.step(recv_now_ms=now)
        assert {r.recv_ts_ms for r in rows} == {now}
