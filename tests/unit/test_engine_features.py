"""Feature engine: intervals, CVD sign, warm-up, gap reset, update-id gaps, one row per interval."""

from __future__ import annotations

import pytest

from v13.config import load_config
from v13.contracts import BookRow, TradeRow
from v13.features import FeatureEngine

CFG = load_config(environ={}).features
T0 = 1_735_689_600_000


def book(ts: int, bid: float = 100.0, bq: float = 5.0, uid: int | None = None, pu: int | None = None):
    u = uid if uid is not None else ts
    return BookRow(ts_ms=ts, recv_ts_ms=ts + 7, symbol="X", bids=[(bid, bq)], asks=[(bid + 0.1, 5.0)],
                   update_id=u, prev_update_id=u - 1 if pu is None else pu, src="sim")  # fmt: skip


_TRADE_IDS = iter(range(1, 10**9))


def trade(ts: int, side: str, qty: float = 1.0, price: float = 100.0, tid: int | None = None) -> TradeRow:
    return TradeRow(ts_ms=ts, recv_ts_ms=ts + 3, symbol="X", price=price, qty=qty, side=side,
                    trade_id=tid if tid is not None else next(_TRADE_IDS), src="sim")  # fmt: skip


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


def test_an_update_id_gap_resets_like_a_time_gap() -> None:
    rows = [
        book(T0 + 100, uid=1),
        book(T0 + 200, uid=2),
        book(T0 + 300, uid=9, pu=7),
        book(T0 + 1100, uid=10),
    ]
    feats = run(rows)
    assert feats[0].gap is True


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
