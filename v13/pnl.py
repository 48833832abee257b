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

from v13.contracts import OrderRow, PnlReport, SymbolPnl

__all__ = ["Quote", "pnl_report"]

Quote = tuple[float, float, float]  # (mid, best bid, best ask) of the signal an order traded


def pnl_report(
    orders: Iterable[OrderRow], quotes: Mapping[tuple[str, int], Quote], last_mid: Mapping[str, float]
) -> PnlReport:
    """``quotes`` by (symbol, signal ts_ms); ``last_mid`` by symbol (the mark). An order whose
    signal is not among the quotes is taken at its fill price (no spread or slippage known)."""
    acc: dict[str, dict[str, float]] = {}
    for order in orders:
        buy = order.side == "BUY"
        fill = order.fill_price
        mid, bid, ask = quotes.get((order.symbol, order.ts_ms), (fill, fill, fill))
        quote = ask if buy else bid
        signed = order.qty if buy else -order.qty
        a = acc.setdefault(
            order.symbol, dict.fromkeys(("orders", "gross", "spread", "slippage", "fees"), 0.0)
        )
        a["orders"] += 1
        a["gross"] += signed * (last_mid.get(order.symbol, mid) - mid)
        a["spread"] += order.qty * abs(quote - mid)
        a["slippage"] += order.qty * abs(order.fill_price - quote)
        a["fees"] += order.fee
        a["realized"] = order.realized_pnl
        a["position"] = order.position_after
    by_symbol = {sym: _row(a) for sym, a in sorted(acc.items())}
    keys = ("orders", "gross", "spread", "slippage", "fees", "realized")  # positions do not add up
    total = {k: sum(a.get(k, 0.0) for a in acc.values()) for k in keys}
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
