"""Simulator parameters: the presets and the per-symbol market shapes (shared/SIM_MODEL.md)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "SYMBOLS", "PresetParams", "SymbolParams", "symbol_params"]


@dataclass(frozen=True)
class PresetParams:
    """Couplings between the latent flow state and the market; ``null`` zeroes all of them."""

    kappa: float  # trade intensity tilt exp(±kappa·a)
    kappa_l: float  # limit-add and ladder lean 1 ± kappa_l·tanh(a)
    lean: float  # spread-closing lean 0.5 + lean·tanh(a)
    alpha: float  # Hawkes branching ratio (self-excitation carries predictability too)


PRESETS: dict[str, PresetParams] = {
    "null": PresetParams(kappa=0.0, kappa_l=0.0, lean=0.0, alpha=0.0),
    "weak": PresetParams(kappa=0.3, kappa_l=0.3, lean=0.1, alpha=0.75),
    "strong": PresetParams(kappa=0.6, kappa_l=0.5, lean=0.25, alpha=0.75),
}


@dataclass(frozen=True)
class SymbolParams:
    """One instrument's price level, tick, lot and flow scales."""

    symbol: str
    price: float  # starting mid
    tick: float
    lot: float  # quantity step
    qbar: float  # mean size of a fresh best-level queue
    trade_median: float  # median market order size
    trade_cap: float
    mu0: float  # baseline market orders per second per side

    @property
    def add_size(self) -> float:
        """Size of one limit add at the best: 0.1 BTC for BTC's q̄ of 0.4, scaled."""
        return 0.25 * self.qbar


SYMBOLS: dict[str, SymbolParams] = {
    p.symbol: p
    for p in (
        SymbolParams("BTCUSDT", 95_000.0, 0.1, 0.001, 0.4, 0.01, 50.0, 3.0),
        SymbolParams("ETHUSDT", 3_500.0, 0.01, 0.001, 5.0, 0.12, 600.0, 2.5),
        SymbolParams("BNBUSDT", 650.0, 0.01, 0.01, 20.0, 0.5, 2_000.0, 1.2),
        SymbolParams("SOLUSDT", 180.0, 0.01, 0.01, 80.0, 2.0, 8_000.0, 1.8),
        SymbolParams("XRPUSDT", 2.2, 0.0001, 0.1, 40_000.0, 250.0, 1_000_000.0, 1.5),
        SymbolParams("DOGEUSDT", 0.35, 0.00001, 1.0, 300_000.0, 2_000.0, 8_000_000.0, 1.2),
    )
}


def symbol_params(symbol: str) -> SymbolParams:
    """Known symbols get their table row; others get BTC-like shapes at a price of 100."""
    known = SYMBOLS.get(symbol)
    if known is not None:
        return known
    return SymbolParams(symbol, 100.0, 0.01, 0.001, 10.0, 0.25, 1_000.0, 1.5)
