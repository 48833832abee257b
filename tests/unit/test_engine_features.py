"""Feature engine: event-time intervals closed by the watermark, late rows, quiet symbols, CVD
sign, warm-up, gap and book resets, stale books, one row per interval."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v13.config import load_config
from v13.contracts import BookRow, TradeRow, encode_row
from v13.features import FeatureEngine

CFG = load_config(environ={}).features
T0 = 1_735_689_600_000


def book(ts: int, bid: float = 100.0, bq: float = 5.0, uid: int | None = None, pu: int | None = None,
         recv: int | None = None):  # fmt: skip
    u = uid if uid is not None else ts
    return BookRow(ts_ms=ts, recv_ts_ms=ts + 7 if recv is None else recv, symbol="X", bids=[(bid, bq)],
                   asks=[(bid + 0.1, 5.0)], update_id=u, prev_update_id=u - 1 if pu is None else pu,
                   src="sim")  # fmt: skip


def reset(ts: int, recv: int | None = None) -> BookRow:
    return BookRow(ts_ms=ts, recv_ts_ms=ts + 7 if recv is None else recv, symbol="X", bids=[], asks=[],
                   update_id=0, prev_update_id=0, src="binance", reset=True)  # fmt: skip


_TRADE_IDS = iter(range(1, 10**9))


def trade(ts: int, side: str, qty: float = 1.0, price: float = 100.0, tid: int | None = None,
          recv: int | None = None) -> TradeRow:  # fmt: skip
    return TradeRow(ts_ms=ts, recv_ts_ms=ts + 3 if recv is None else recv, symbol="X", price=price, qty=qty,
                    side=side, trade_id=tid if tid is not None else next(_TRADE_IDS), src="sim")  # fmt: skip


def run(rows) -> list:
    engine = FeatureEngine(CFG)
    out = []
    for row in rows:
        out += engine.on_row(row)
    return out + engine.finish()


def steady(seconds: int, start: int = T0) -> list:
    rows = []
    uid = 0
    for s in range(seconds):
        for k in range(10):
            uid += 1
            ts = start + s * 1000 + k * 100 + 99
            rows.append(trade(ts - 50, "buy" if (s + k) % 3 else "sell", qty=1.0 + k % 2))
            rows.append(book(ts, bid=100.0 + (s % 5) * 0.1, bq=5.0 + k, uid=uid))
    return rows


def test_one_feature_row_per_interval_with_interval_end_time() -> None:
    feats = run(steady(5))
    assert [f.ts_ms for f in feats] == [T0 + 1000 * (i + 1) for i in range(5)]
    assert all(f.quote_rate == 10.0 and f.trade_count == 10 for f in feats)


def test_cvd_is_signed_by_aggressor() -> None:
    feats = run([book(T0 + 1, uid=1), trade(T0 + 10, "buy", 2.0), trade(T0 + 20, "sell", 0.5),
                 book(T0 + 1001, uid=2), trade(T0 + 1100, "sell", 3.0)])  # fmt: skip
    assert [f.cvd_delta for f in feats] == [1.5, -3.0]
    assert [f.cvd for f in feats] == [1.5, -1.5]
    assert feats[0].volume_usd == 250.0


def test_warmup_then_zscores_against_the_previous_window() -> None:
    feats = run(steady(CFG.z_warmup + 10))
    assert all(f.warmup and f.z_ofi == 0.0 for f in feats[: CFG.z_warmup])
    assert not any(f.warmup for f in feats[CFG.z_warmup :])
    assert any(f.z_ofi != 0.0 for f in feats[CFG.z_warmup :])
    assert all(abs(f.z_ofi) <= CFG.z_clip and abs(f.z_cvd) <= CFG.z_clip for f in feats)


def test_a_gap_resets_statistics_and_is_flagged() -> None:
    before = steady(CFG.z_warmup + 5)
    after = steady(10, start=T0 + (CFG.z_warmup + 5) * 1000 + CFG.gap_ms + 1000)
    feats = run(before + after)
    first_after = feats[CFG.z_warmup + 5]
    assert first_after.gap and first_after.warmup
    assert first_after.cvd == first_after.cvd_delta  # cvd restarted
    assert first_after.return_1s == 0.0
    assert sum(f.gap for f in feats) == 1


def test_an_update_id_break_alone_resets_nothing() -> None:
    """A partial-depth stream's pu may not chain: the decoder counts breaks, the engine ignores them."""
    feats = run(
        [book(T0 + 100, uid=1), book(T0 + 200, uid=2), book(T0 + 300, uid=9, pu=7), book(T0 + 1100, uid=10)]
    )
    assert [f.gap for f in feats] == [False, False]


def test_a_book_reset_makes_the_book_stale_until_the_next_book_and_resets_statistics() -> None:
    feats = run([book(T0 + 100, uid=1), trade(T0 + 500, "buy"), reset(T0 + 600), trade(T0 + 1500, "buy"),
                 book(T0 + 2100, bid=101.0, uid=2)])  # fmt: skip
    assert [(f.gap, f.stale_book, f.mid) for f in feats] == [
        (True, True, None),  # the reset inside the first second: its end has no known book
        (False, True, None),  # no book came in the second one
        (False, False, pytest.approx(101.05)),
    ]


def test_a_book_older_than_the_gap_is_stale_while_trades_go_on() -> None:
    rows = [book(T0 + 100, uid=1)] + [trade(T0 + 300 + 1000 * s, "buy") for s in range(5)]
    feats = run(rows)
    assert [f.stale_book for f in feats] == [False, False, True, True, True]  # older than gap_ms at the end
    assert all(f.best_bid is None and f.mid is None for f in feats[2:])


def test_a_second_closes_once_every_route_is_past_it_by_the_lateness() -> None:
    lateness = CFG.allowed_lateness_ms
    engine = FeatureEngine(CFG)
    rows = [
        book(T0 + 990, recv=T0 + 995),
        trade(T0 + 1050, "buy", recv=T0 + 1060),  # the next second has begun
        trade(T0 + 980, "sell", 2.0, recv=T0 + 1070),  # ... but this one still counts in the first
        book(T0 + 1000 + lateness + 10, uid=2, recv=T0 + 1000 + lateness + 15),  # books are past it
    ]
    assert [f for row in rows for f in engine.on_row(row)] == []
    assert engine.advance(T0 + 1000 + lateness + 16) == []  # trades are not (1050 - lateness < 1000)
    engine.on_row(trade(T0 + 1000 + lateness + 5, "buy", recv=T0 + 1000 + lateness + 20))
    closed = engine.advance(T0 + 1000 + lateness + 21)
    assert [(f.ts_ms, f.cvd_delta) for f in closed] == [(T0 + 1000, -2.0)]
    assert engine.late_rows == 0


def test_a_burst_of_one_route_waits_for_the_other_route() -> None:
    """A stalled connection delivers its trades a few ms before its books: no second closes on
    the trades alone, so no book is late and every second keeps its rows."""
    engine = FeatureEngine(CFG)
    steady_rows = [book(T0 + 100 * k, uid=k, recv=T0 + 100 * k + 2) for k in range(1, 10)]
    burst_at = T0 + 4000
    trades = [trade(T0 + 1000 + 100 * k, "buy", tid=2000 + k, recv=burst_at) for k in range(25)]
    books = [book(T0 + 1000 + 100 * k + 5, uid=100 + k, recv=burst_at + 3) for k in range(25)]
    feats = [f for row in [*steady_rows, *trades, *books] for f in engine.on_row(row)] + engine.finish()
    assert [f.ts_ms for f in feats] == [T0 + 1000 * s for s in range(1, 5)]
    assert engine.late_rows == 0 and all(f.quote_rate > 0 for f in feats[1:])


def test_a_sparse_route_does_not_hold_the_other_back_for_long() -> None:
    engine = FeatureEngine(CFG)
    engine.on_row(trade(T0 + 500, "buy", recv=T0 + 505))  # one trade, then books only
    closed = []
    for k in range(6, 60):
        closed += engine.on_row(book(T0 + 100 * k, uid=k, recv=T0 + 100 * k + 2))
    assert [f.ts_ms for f in closed][:3] == [T0 + 1000, T0 + 2000, T0 + 3000]
    first = next(f for f in closed if f.ts_ms == T0 + 2000)
    assert first.trade_count == 0


def test_a_row_older_than_a_closed_interval_is_late_and_counted_in_the_next_open_one() -> None:
    engine = FeatureEngine(CFG)
    rows = [book(T0 + 500, recv=T0 + 505), book(T0 + 1500, uid=2, recv=T0 + 1505),
            trade(T0 + 1600, "buy", recv=T0 + 1610),  # closes the first second
            trade(T0 + 700, "sell", 3.0, recv=T0 + 1620)]  # fmt: skip
    feats = [f for row in rows for f in engine.on_row(row)] + engine.finish()
    assert [(f.ts_ms, f.cvd_delta, f.late_rows) for f in feats] == [(T0 + 1000, 0.0, 0), (T0 + 2000, -2.0, 1)]
    assert engine.late_rows == 1


def test_a_quiet_symbol_closes_by_its_clock() -> None:
    engine = FeatureEngine(CFG)
    assert engine.on_row(book(T0 + 100, recv=T0 + 110)) == []
    wait = CFG.allowed_lateness_ms + CFG.quiet_grace_ms
    assert engine.advance(T0 + 110 + wait + 900 - 1) == []  # projected time not yet past the end
    assert [f.ts_ms for f in engine.advance(T0 + 110 + wait + 900)] == [T0 + 1000]


def test_rows_received_in_the_same_millisecond_give_the_same_features_in_any_route_order() -> None:
    """A trade and a book stamped in the same ms came on two connections: their order is not
    known to anyone (each stream's own order is kept)."""
    base = [book(T0 + 100 * k, uid=k, recv=T0 + 100 * k + 5) for k in range(1, 30)]
    same_ms = T0 + 1000 + CFG.allowed_lateness_ms + 1
    trades = [
        trade(T0 + 990, "sell", 2.0, tid=500, recv=same_ms),
        trade(T0 + 995, "buy", 1.0, tid=501, recv=same_ms),
    ]
    b = book(T0 + 1000 + CFG.allowed_lateness_ms + 1, uid=40, recv=same_ms)
    results = set()
    for at in range(3):  # the book before, between or after the two trades
        burst = [*trades[:at], b, *trades[at:]]
        feats = run([*base, *burst, book(T0 + 5000, uid=50, recv=T0 + 5005)])
        results.add(tuple(encode_row(f) for f in feats))
    assert len(results) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), min_size=40, max_size=40), st.integers(0, 10**6))
def test_any_arrival_order_gives_one_row_per_second_and_keeps_every_trade(
    delays: list[int], seed: int
) -> None:
    """Rows delayed at random (live bursts): never two rows for one second, nothing lost."""
    events = []
    for k in range(40):
        ts = T0 + 250 * k
        events.append(trade(ts, "buy" if k % 3 else "sell", 1.0 + k % 4, tid=1000 + k, recv=ts + delays[k]))
        events.append(book(ts + 5, uid=k + 1, recv=ts + 5 + delays[k]))
    rng = random.Random(seed)
    arrival = sorted(events, key=lambda r: (r.recv_ts_ms, rng.random()))
    feats = run(arrival)
    ends = [f.ts_ms for f in feats]
    assert ends == sorted(set(ends))
    signed = [r.qty if r.side == "buy" else -r.qty for r in events if isinstance(r, TradeRow)]
    assert sum(f.cvd_delta for f in feats) == pytest.approx(sum(signed))
    assert sum(f.trade_count for f in feats) == 40


def test_spread_lag_and_return() -> None:
    feats = run([book(T0 + 99, bid=100.0, uid=1), book(T0 + 1099, bid=100.1, uid=2)])
    assert feats[0].spread_bps == pytest.approx(0.1 / 100.05 * 1e4)
    assert feats[0].lag_ms == 7.0
    assert feats[1].return_1s == pytest.approx((100.15 / 100.05 - 1) * 1e4)


def test_a_trade_id_jump_resets_like_a_time_gap() -> None:
    rows = [book(T0 + 100, uid=1), trade(T0 + 200, "buy", tid=10), trade(T0 + 300, "buy", tid=11),
            trade(T0 + 400, "sell", tid=15), book(T0 + 1100, uid=2),
            trade(T0 + 1200, "buy", tid=16)]  # fmt: skip
    feats = run(rows)
    assert [f.gap for f in feats] == [True, False]
    assert feats[0].cvd == feats[0].cvd_delta == 1.0  # cvd restarted from this interval's trades
    assert feats[1].cvd == 2.0


def test_a_source_watermark_closes_every_interval_it_passes_whichever_symbol_opened_it() -> None:
    """One symbol runs ahead, another opens an earlier interval afterwards: a watermark past that
    interval closes it (and one before every open interval closes nothing)."""
    engine = FeatureEngine(CFG)
    ahead = BookRow(ts_ms=T0 + 2_500, recv_ts_ms=T0 + 2_510, symbol="A", bids=[(100.0, 5.0)],
                    asks=[(100.1, 5.0)], update_id=1, prev_update_id=0, src="sim")  # fmt: skip
    assert engine.on_row(ahead) == []
    assert engine.source_watermark(T0 + 2_000) == []  # A's interval ends at T0 + 3,000
    behind = BookRow(ts_ms=T0 + 1_500, recv_ts_ms=T0 + 1_505, symbol="B", bids=[(50.0, 5.0)],
                     asks=[(50.1, 5.0)], update_id=1, prev_update_id=0, src="sim")  # fmt: skip
    assert engine.on_row(behind) == []
    assert [(f.symbol, f.ts_ms) for f in engine.source_watermark(T0 + 2_000)] == [("B", T0 + 2_000)]
    assert engine.source_watermark(T0 + 2_999) == []
    assert [(f.symbol, f.ts_ms) for f in engine.source_watermark(T0 + 3_000)] == [("A", T0 + 3_000)]
    assert engine.finish() == []
