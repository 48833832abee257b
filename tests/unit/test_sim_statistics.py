"""The simulator's edge and the chain's honesty, over 1 simulated hour of several independent
BTCUSDT-shaped symbols per preset (stepped together in one market, as the harvest steps them).

corr(OFI over the past 1 s, mid change over the next 5 s) must vanish under ``null`` and show
under ``weak`` and ``strong``; the hit rate of confirmed signals must be a coin flip under
``null`` (a look-ahead bug would show up here) and clearly better under ``weak``.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache

import numpy as np
import pytest

from v13.config import load_config
from v13.contracts import BookRow, FeatureRow, SignalRow
from v13.features import FeatureEngine
from v13.signals import SignalEngine
from v13.sources.sim import SimMarket
from v13.sources.sim_params import SymbolParams, symbol_params

COPIES = {"null": 6, "weak": 3, "strong": 3}  # null confirms fewer signals: more hours for the same error
HORIZON_S = 5
CFG = load_config(environ={})
START_MS = 1_735_689_600_000


def btc_copies(count: int) -> list[SymbolParams]:
    btc = symbol_params("BTCUSDT")
    return [dataclasses.replace(btc, symbol=f"BTC{i}USDT") for i in range(count)]


@cache
def simulate(preset: str) -> list[tuple[list[FeatureRow], list[SignalRow]]]:
    """Per symbol: its feature rows over one hour and the signals of a signal engine of its own."""
    copies = btc_copies(COPIES[preset])
    market = SimMarket(copies, preset=preset, seed=11, start_ms=START_MS)
    engine = FeatureEngine(CFG.features)
    feats: dict[str, list[FeatureRow]] = {p.symbol: [] for p in copies}
    for _ in range(36_000):  # one hour at 100 ms
        for row in market.step():
            for feature in engine.on_row(row):
                feats[feature.symbol].append(feature)
    out = []
    for rows in feats.values():
        signals = SignalEngine(CFG, "stat", clock_ms=lambda: 0)
        out.append((rows, [signals.on_feature(f) for f in rows]))
    return out


def forward_corr(feats: list[FeatureRow]) -> float:
    ofi = np.array([f.ofi for f in feats])
    mid = np.array([f.mid for f in feats])
    return float(np.corrcoef(ofi[:-HORIZON_S], mid[HORIZON_S:] - mid[:-HORIZON_S])[0, 1])


def hit_rate(preset: str) -> tuple[float, int]:
    hits = total = 0
    for feats, signals in simulate(preset):
        mids = [f.mid for f in feats]
        for i, s in enumerate(signals[:-HORIZON_S]):
            move = mids[i + HORIZON_S] - mids[i]
            if s.confirm and move != 0:
                total += 1
                hits += (move > 0) == (s.score > 0)
    return hits / total, total


@pytest.mark.slow
def test_ofi_predicts_the_next_5s_only_when_the_preset_says_so() -> None:
    corr = {p: [forward_corr(feats) for feats, _ in simulate(p)] for p in ("null", "weak", "strong")}
    shown = {p: [round(c, 3) for c in v] for p, v in corr.items()}
    print("corr(OFI past 1 s, Δmid next 5 s) per symbol:", shown)
    assert all(abs(c) < 0.05 for c in corr["null"])
    assert all(c > 0.10 for c in corr["weak"])
    assert min(corr["strong"]) > max(corr["weak"])


@pytest.mark.slow
def test_no_look_ahead_hit_rate_is_a_coin_flip_under_null_and_better_under_weak() -> None:
    null_rate, null_n = hit_rate("null")
    weak_rate, weak_n = hit_rate("weak")
    print(f"hit rate of confirmed signals vs next 5 s: null {null_rate:.3f} (n={null_n}),", end=" ")
    print(f"weak {weak_rate:.3f} (n={weak_n})")
    assert null_n > 2000 and weak_n > 2000
    assert abs(null_rate - 0.5) <= 0.03
    assert weak_rate > 0.55


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    def rows(seed: int) -> list:  # type: ignore[type-arg]
        market = SimMarket(["BTCUSDT", "ETHUSDT"], preset="weak", seed=seed, start_ms=START_MS)
        return [r for _ in range(600) for r in market.step()]

    assert rows(5) == rows(5)
    assert rows(5) != rows(6)


def test_null_preset_has_bursts_and_blowouts_but_no_coupling() -> None:
    market = SimMarket(btc_copies(6), preset="null", seed=3, start_ms=START_MS)
    k = market.k
    assert (k.kappa, k.kappa_l, k.lean, k.alpha) == (0.0, 0.0, 0.0, 0.0)
    spreads = []
    for _ in range(6_000):  # six symbols for ten minutes: one hour of blow-outs at 6 an hour
        for row in market.step():
            if isinstance(row, BookRow):
                spreads.append(round((row.asks[0][0] - row.bids[0][0]) / 0.1))
    assert max(spreads) >= 2, "spread blow-outs exercise the spread guard"
    assert spreads.count(1) / len(spreads) > 0.95, "the spread is one tick nearly always"


def spaced(signals: list[SignalRow], horizon_s: int) -> list[SignalRow]:
    """The confirmed signals at least one horizon apart. Markouts whose windows overlap share
    their price moves, so the spread of all of them understates the error of their mean (in
    trial runs, the z of the null's 30 s mean varied about twice as much as it would for
    independent markouts); spaced this way, they are nearly independent."""
    kept: list[SignalRow] = []
    for s in signals:
        if s.confirm and (not kept or s.ts_ms >= kept[-1].ts_ms + horizon_s * 1000):
            kept.append(s)
    return kept


def pooled_markouts(preset: str, horizon_s: int):  # type: ignore[no-untyped-def]
    """The markouts at one horizon of every symbol's spaced signals, pooled."""
    from v13.markouts import Markouts, signal_markouts, summarize

    marks = Markouts([horizon_s])
    for feats, signals in simulate(preset):
        signal_markouts(feats, spaced(signals, horizon_s), [horizon_s], into=marks)
    (stats,) = summarize(marks, fee_bps=CFG.broker.fee_bps, slippage_bps=CFG.broker.slippage_bps).all
    return stats


def standard_errors(h) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(se of the hit rate around 1/2, se of the mean), from the counts and the mean's interval."""
    decided = h.hits + h.misses
    return math.sqrt(0.25 / decided), (h.mean_ci[1] - h.mean_ci[0]) / 2 / 1.959963984540054


@pytest.mark.slow
def test_markouts_show_no_edge_under_null_at_any_horizon() -> None:
    """Six symbols pooled: a 95% interval misses the truth 5% of the time, so the test allows 3
    standard errors, and only on the pooled figures, not per breakdown."""
    for horizon_s in CFG.report.markout_horizons_s:
        h = pooled_markouts("null", horizon_s)
        se_rate, se_mean = standard_errors(h)
        rate = f"hit rate {h.hit_rate:.3f} ± {se_rate:.3f}"
        print(f"null {h.horizon_s:>2} s: {rate}, mean {h.mean_bps:+.4f} ± {se_mean:.4f} bps (n = {h.count})")
        assert abs(h.hit_rate - 0.5) <= 3 * se_rate
        assert abs(h.mean_bps) <= 3 * se_mean
        assert h.count >= 200


@pytest.mark.slow
def test_markouts_show_the_weak_presets_edge_at_5_seconds() -> None:
    five = pooled_markouts("weak", 5)
    se_rate, _ = standard_errors(five)
    print(f"weak 5 s: hit rate {five.hit_rate:.3f} ± {se_rate:.3f} (n = {five.count})")
    assert five.hit_rate > 0.5 + 3 * se_rate
