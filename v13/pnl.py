"""The broker's PnL, split into what the positions made at mid prices and what trading cost.

Per fill (a BUY of ``qty`` is ``+qty``, a SELL ``-qty``), with the signal's mid and best bid/ask:

* gross    = signed qty * (last mid - mid at the fill)  — the PnL had every fill been at mid
* spread   = qty * |quote - mid|   — the half spread paid (a buy at the ask, a sell at the bid)
* slippage = qty * |fill price - quote|
* fees     = the fee of the fill

``net = gross - spread - slippage - fees`` equals every position marked to the last mid at the
prices actually paid, fees included. ``realized`` is the broker's own figure (closed positions,
net of fees), shown beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from v13.contracts import OrderRow, OrdersSummary, PnlReport, SymbolPnl

__all__ = ["PnlTally", "Quote", "pnl_report"]

Quote = tuple[float, float, float]  # (mid, best bid, best ask) of the signal an order traded
_SUMS = ("orders", "buys", "signed_qty", "signed_mid", "spread", "slippage", "fees")


def pnl_report(
    orders: Iterable[OrderRow], quotes: Mapping[tuple[str, int], Quote], last_mid: Mapping[str, float]
) -> PnlReport:
    """``quotes`` by (symbol, signal ts_ms); ``last_mid`` by symbol (the mark). An order whose
    signal is not among the quotes is taken at its fill price (no spread or slippage known)."""
    tally = PnlTally()
    for order in orders:
        tally.add(order, quotes.get((order.symbol, order.ts_ms)))
    return tally.report(last_mid)


class PnlTally:
    """Per-symbol sums of the orders added so far; the gross is marked when the report is made
    (``signed qty * (mark - mid)`` summed is ``mark * sum(signed qty) - sum(signed qty * mid)``),
    so orders need not be kept."""

    def __init__(self) -> None:
        self._acc: dict[str, dict[str, float]] = {}

    def add(self, order: OrderRow, quote: Quote | None) -> None:
        buy = order.side == "BUY"
        fill = order.fill_price
        mid, bid, ask = quote if quote is not None else (fill, fill, fill)
        price = ask if buy else bid
        signed = order.qty if buy else -order.qty
        a = self._acc.get(order.symbol)
        if a is None:
            a = self._acc[order.symbol] = dict.fromkeys(_SUMS, 0.0)
        a["orders"] += 1
        a["buys"] += buy
        a["signed_qty"] += signed
        a["signed_mid"] += signed * mid
        a["spread"] += order.qty * abs(price - mid)
        a["slippage"] += order.qty * abs(fill - price)
        a["fees"] += order.fee
        a["realized"] = order.realized_pnl
        a["position"] = order.position_after

    def orders_summary(self) -> OrdersSummary:
        """Orders by side, and the broker's realised PnL (its latest figure per symbol)."""
        count = int(sum(a["orders"] for a in self._acc.values()))
        buy = int(sum(a["buys"] for a in self._acc.values()))
        realized = sum(a["realized"] for a in self._acc.values())
        return OrdersSummary(count=count, buy=buy, sell=count - buy, pnl=round(realized, 8))

    def report(self, last_mid: Mapping[str, float]) -> PnlReport:
        rows = {}
        for sym, a in sorted(self._acc.items()):
            mark = last_mid.get(sym)
            gross = mark * a["signed_qty"] - a["signed_mid"] if mark is not None else 0.0
            rows[sym] = {**a, "gross": gross}
        by_symbol = {sym: _row(a) for sym, a in rows.items()}
        keys = ("orders", "gross", "spread", "slippage", "fees", "realized")  # positions do not add up
        total = {k: sum(a.get(k, 0.0) for a in rows.values()) for k in keys}
        return PnlReport(total=_row(total), by_symbol=by_symbol)


def _row(a: Mapping[str, float]) -> SymbolPnl:
    return SymbolPnl(
        orders=int(a.get("orders", 0)),
        gross=a.get("gross", 0.0),
        spread=a.get("spread", 0.0),
        slippage=a.get("slippage", 0.0),
        fees=a.get("fees", 0.0),
        net=a.get("gross", 0.0) - a.get("spread", 0.0) - a.get("slippage", 0.0) - a.get("fees", 0.0),
        realized=a.get("realized", 0.0),
        position=a.get("position", 0.0),
    )
