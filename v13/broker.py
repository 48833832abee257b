"""Mock/paper broker book-keeping: which signals trade, how they fill, positions and PnL.

Rules (deterministic, from DESIGN.md): every confirmed strong signal trades; every
``normal_every``-th confirmed normal signal per symbol trades. A signal at or before the last
one a symbol's book has seen is ignored, so reading the sink again (after a restart, or a
recreated sink file) never books anything twice. A buy fills at the signal's best
ask plus slippage, a sell at its best bid minus slippage, for ``order_usd`` of notional; the fee
is ``fee_bps`` of the notional. Money is booked in Decimal; realised PnL is net of fees and uses
the average entry price.

Mock mode (default) books every fill and realised PnL. Paper mode (``PAPER_ENABLE=1``) books the
same fills and also marks open positions to the latest mid of every signal row (unrealised PnL),
as a paper account would show them.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import msgspec

from v13.config import BrokerConfig
from v13.contracts import OrderRow, SignalRow

__all__ = ["Book", "Broker"]

_QTY = Decimal("0.00000001")
_BPS = Decimal(10_000)


class Book(msgspec.Struct, forbid_unknown_fields=True):
    """One symbol's account state (checkpointed; Decimals travel as strings)."""

    normal_seen: int = 0
    position: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    last_mid: Decimal = Decimal(0)
    last_ts: int = -1  # ts_ms of the last signal seen

    @property
    def unrealized(self) -> Decimal:
        return (
            (self.last_mid - self.avg_price) * self.position
            if self.position and self.last_mid
            else Decimal(0)
        )


class Broker:
    """Turns signal rows into order rows; state is JSON-serialisable for the checkpoint."""

    def __init__(self, cfg: BrokerConfig, run_id: str, books: dict[str, Book] | None = None) -> None:
        self.cfg = cfg
        self.run_id = run_id
        self.paper = cfg.paper
        self.books: dict[str, Book] = dict(books or {})

    def on_signal(self, sig: SignalRow) -> OrderRow | None:
        book = self.books.setdefault(sig.symbol, Book())
        if sig.ts_ms <= book.last_ts:
            return None
        book.last_ts = sig.ts_ms
        if self.paper and sig.mid is not None:
            book.last_mid = Decimal(repr(sig.mid))
        if not sig.confirm or sig.signal_type not in ("buy", "sell", "strong_buy", "strong_sell"):
            return None
        strong = sig.signal_type.startswith("strong_")
        if not strong:
            book.normal_seen += 1
            if book.normal_seen % self.cfg.normal_every:
                return None
        buy = sig.signal_type.endswith("buy")
        quote = sig.best_ask if buy else sig.best_bid
        if quote is None:
            return None
        slip = Decimal(repr(self.cfg.slippage_bps)) / _BPS
        price = Decimal(repr(quote)) * (1 + slip if buy else 1 - slip)
        qty = (Decimal(repr(self.cfg.order_usd)) / price).quantize(_QTY, rounding=ROUND_DOWN)
        fee = qty * price * Decimal(repr(self.cfg.fee_bps)) / _BPS
        self._fill(book, qty if buy else -qty, price, fee)
        return OrderRow(
            run_id=self.run_id,
            order_id=f"{self.run_id}:{sig.symbol}:{sig.ts_ms}",
            ts_ms=sig.ts_ms,
            symbol=sig.symbol,
            side="BUY" if buy else "SELL",
            strength="STRONG" if strong else "NORMAL",
            signal_type=sig.signal_type,
            score=sig.score,
            qty=float(qty),
            fill_price=float(price),
            fee=float(fee),
            status="FILLED",
            position_after=float(book.position),
            realized_pnl=float(book.realized - book.fees),
        )

    @staticmethod
    def _fill(book: Book, signed_qty: Decimal, price: Decimal, fee: Decimal) -> None:
        book.fees += fee
        pos = book.position
        if pos == 0 or (pos > 0) == (signed_qty > 0):
            new = pos + signed_qty
            book.avg_price = (book.avg_price * abs(pos) + price * abs(signed_qty)) / abs(new)
            book.position = new
            return
        closing = min(abs(pos), abs(signed_qty))
        direction = 1 if pos > 0 else -1
        book.realized += (price - book.avg_price) * closing * direction
        new = pos + signed_qty
        if new == 0:
            book.avg_price = Decimal(0)
        elif (new > 0) != (pos > 0):
            book.avg_price = price  # flipped: the rest opens at this price
        book.position = new

    def totals(self) -> dict[str, float]:
        realized = sum((b.realized - b.fees for b in self.books.values()), Decimal(0))
        unrealized = sum((b.unrealized for b in self.books.values()), Decimal(0))
        return {"realized_pnl": float(realized), "unrealized_pnl": float(unrealized)}
