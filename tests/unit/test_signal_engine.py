"""Signal engine: guards with their codes, thresholds per regime, StrategyMode hysteresis."""

from __future__ import annotations

import pytest

from v13.config import load_config
from v13.contracts import FeatureRow
from v13.signals import SignalEngine, StrategyMode

T0 = 1_735_689_600_000


def feature(ts: int = T0, **kw) -> FeatureRow:
    base = dict(ts_ms=ts, symbol="BTCUSDT", mid=100.05, best_bid=100.0, best_ask=100.1,
                spread_bps=1.0, ofi=1.0, z_ofi=1.5, cvd=3.0, cvd_delta=1.0, z_cvd=1.5,
                fusion_score=1.5, consistency=1.0, div_type=None, trade_count=10,
                trade_rate=600.0, quote_rate=10.0, realized_vol_bps=0.5, volume_usd=1e4,
                return_1s=0.0, lag_ms=10.0, warmup=False, gap=False)  # fmt: skip
    base.update(kw)
    return FeatureRow(**base)


def engine(mode: str = "auto", **changes) -> SignalEngine:
    overrides = {"strategy_mode.mode": mode, **changes}
    return SignalEngine(load_config(environ={}, overrides=overrides), "run1", clock_ms=lambda: 42)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"spread_bps": 9.0}, "spread"),
        ({"lag_ms": 2500.0}, "lag"),
        ({"warmup": True}, "warmup"),
        ({"gap": True}, "gap"),
        ({"mid": None, "best_bid": None, "best_ask": None, "spread_bps": None}, "no_book"),
        (
            {"mid": None, "best_bid": None, "best_ask": None, "spread_bps": None, "stale_book": True},
            "stale_book",
        ),
        ({"consistency": 0.1}, "low_consistency"),
    ],
)
def test_a_blocked_direction_is_pending_with_the_guard_code(change, code) -> None:
    row = engine("quiet").on_feature(feature(**change))
    assert row.gating is True and row.confirm is False
    assert row.signal_type == "pending"
    assert row.guard_reason == code


def test_clean_strong_score_confirms_and_carries_the_book() -> None:
    row = engine("quiet").on_feature(feature(fusion_score=1.5))
    assert (row.signal_type, row.confirm, row.gating, row.guard_reason) == ("strong_buy", True, False, None)
    assert (row.best_bid, row.best_ask, row.run_id, row.emit_ts_ms) == (100.0, 100.1, "run1", 42)


def test_several_guards_are_all_named() -> None:
    row = engine("quiet").on_feature(feature(spread_bps=20.0, lag_ms=9000.0, fusion_score=0.1))
    assert row.guard_reason == "spread,lag,weak_signal"
    assert row.signal_type == "neutral" and row.gating


@pytest.mark.parametrize(
    ("mode", "score", "expected"),
    [
        ("active", 0.55, "buy"),  # active: 0.5 / 1.0
        ("quiet", 0.55, "neutral"),  # quiet: 0.7 / 1.4
        ("active", -1.05, "strong_sell"),
        ("quiet", -1.05, "sell"),
        ("quiet", 1.45, "strong_buy"),
    ],
)
def test_thresholds_follow_the_regime(mode, score, expected) -> None:
    row = engine(mode).on_feature(feature(fusion_score=score))
    assert row.regime == mode
    assert row.signal_type == expected


def test_base_thresholds_apply_until_the_regime_is_established() -> None:
    eng = engine("auto")
    first = eng.on_feature(feature(fusion_score=0.65))  # base buy threshold 0.6
    assert first.signal_type == "buy"
    later = [eng.on_feature(feature(ts=T0 + i * 1000, fusion_score=0.65)) for i in range(1, 40)]
    assert later[-1].regime == "quiet" and later[-1].signal_type == "neutral"  # quiet: 0.7


def test_strategy_mode_switches_with_hysteresis_on_event_time() -> None:
    cfg = load_config(environ={})
    mode = StrategyMode(cfg.strategy_mode)
    busy = dict(trade_rate=3000.0, quote_rate=10.0, realized_vol_bps=5.0, volume_usd=1e6)
    calm = dict(trade_rate=10.0, quote_rate=1.0, realized_vol_bps=0.01, volume_usd=100.0)
    dwell = int(cfg.strategy_mode.min_dwell_s)
    regimes = []
    t = T0
    for kind, seconds in ((busy, 5), (calm, 5), (busy, dwell + 5), (calm, dwell - 5), (calm, 10)):
        for _ in range(seconds):
            regimes.append(mode.update(feature(ts=t, **kind)).regime)
            t += 1000
    assert regimes[:10] == ["quiet"] * 10  # a 5 s burst is not enough
    assert regimes[10 + dwell - 1] == "quiet" and regimes[10 + dwell] == "active"
    assert "quiet" not in regimes[10 + dwell : 15 + dwell + dwell]
    assert regimes[-1] == "quiet"
