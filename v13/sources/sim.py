"""The embedded market simulator: a latent-flow Hawkes order book (shared/SIM_MODEL.md).

Each symbol is stepped every ``step_ms``: an AR(1) latent flow state tilts a bivariate Hawkes
process of market orders, skews limit adds at the best, and leans the closing of a wide spread.
The ``null`` preset zeroes every coupling, so its features carry no predictive edge. Prices are
kept in integer ticks; rows are contract :class:`TradeRow` / :class:`BookRow`.

All symbols are stepped together as numpy arrays, one draw per quantity for the whole market, so
a step's cost grows with its rows rather than with Python work per symbol: only the market
orders, which change a queue one after another, are walked one by one.

Example::

    market = SimMarket(["BTCUSDT"], preset="weak", seed=7, start_ms=1_735_689_600_000)
    for rows in market.steps(600):          # one minute at 100 ms
        ...                                 # per symbol: its trades in time order, then its book
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from v13.contracts import BookRow, TradeRow
from v13.sources.sim_params import PRESETS, SymbolParams, symbol_params

__all__ = ["SimEvents", "SimMarket"]

TAU_A_S = 10.0
BETA = 1.5  # Hawkes decay, 1/s
TRADE_SIGMA = 1.8
ADD_RATE = 20.0  # limit adds at the best, per second per side
CANCEL_THETA = 0.4  # queue decay, 1/s
REQUOTE_RATE = 10.0  # exogenous removals of a best level, per second
DEPLETE_P = 0.3  # Geometric(p) ticks a price jumps when its queue is emptied
LADDER_RESAMPLE_P = 0.3
LADDER_SIGMA = 0.5
LATENCY_MS = 12.0  # mean simulated receive latency

SIDES = np.arange(2)[:, None, None]  # index 0: the bids, 1: the asks
AWAY = np.array([[-1], [1]])  # the direction in ticks in which each side's best moves away
LEAN_SIGN = np.array([1.0, -1.0])[:, None, None]  # a positive flow state fattens the bids
FLOW_SIGN = np.array([1.0, -1.0])[:, None]  # ... and tilts [buys, sells] and [bid adds, ask adds]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Row = TradeRow | BookRow


@dataclass(frozen=True)
class SimEvents:
    """Rare events per simulated hour: activity bursts, spread blow-outs, silences."""

    bursts_per_hour: float = 2.0
    blowouts_per_hour: float = 6.0
    silences_per_hour: float = 0.0


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _column(values: list[float]) -> Floats:
    return np.array(values, dtype=np.float64)


class SimMarket:
    """Every symbol's book and flow state, stepped together on one clock. A symbol is a name
    (its shape from :func:`symbol_params`) or a :class:`SymbolParams` of its own.

    Prices are whole ticks and quantities whole units of the lot's last decimal, computed as an
    integer divided by a power of ten, so every printed number is the shortest decimal (as
    ``round`` would give).
    """

    def __init__(
        self,
        symbols: Sequence[str | SymbolParams],
        *,
        preset: str = "weak",
        seed: int = 7,
        start_ms: int,
        levels: int = 5,
        dt_ms: int = 100,
        events: SimEvents | None = None,
    ) -> None:
        self.dt_ms = dt_ms
        self.next_ms = start_ms - start_ms % dt_ms
        self.k = PRESETS[preset]
        self.rng = np.random.default_rng(seed % (1 << 64))
        params = [s if isinstance(s, SymbolParams) else symbol_params(s) for s in symbols]
        self.symbols = [p.symbol for p in params]
        n = self.n = len(params)
        lv = self.levels = max(5, levels)
        self.dt = dt_ms / 1000.0
        steps_per_hour = 3_600_000 / dt_ms
        ev = events or SimEvents()
        self._event_p = (ev.bursts_per_hour / steps_per_hour, ev.blowouts_per_hour / steps_per_hour,
                         ev.silences_per_hour / steps_per_hour)  # per step  # fmt: skip
        self._event_p_column = np.array(self._event_p)[:, None]
        self.phi = math.exp(-self.dt / TAU_A_S)
        self.a_noise = math.sqrt(1.0 - self.phi * self.phi)
        self.decay = math.exp(-BETA * self.dt)
        self.cancel = math.exp(-CANCEL_THETA * self.dt)

        px_dec = [_decimals(p.tick) for p in params]
        self._px_scale = [10.0**d for d in px_dec]
        self._tick_units = [round(p.tick * 10**d) for p, d in zip(params, px_dec, strict=True)]
        self._tick_units_column = np.array(self._tick_units, dtype=np.int64)[:, None]
        self._px_scale_column = _column(self._px_scale)[:, None]
        self.qty_scale = _column([10.0 ** _decimals(p.lot) for p in params])
        self.lot = _column([p.lot for p in params])
        self.qbar = _column([p.qbar for p in params])
        self.mu0 = _column([p.mu0 for p in params])
        self.add_size = _column([p.add_size for p in params])
        self.trade_median = _column([p.trade_median for p in params])
        self.trade_cap = _column([p.trade_cap for p in params])
        self.depth = np.arange(lv)
        self.ladder_mean = self.qbar[:, None] * (1.0 + 0.35 * self.depth)
        self.ladder_lean = self.k.kappa_l * 0.5**self.depth  # the lean fades with depth
        self._deepest = np.full(lv, lv - 1)
        self._everyone = np.arange(n)
        self._rates = np.empty((5, n))  # this step's Poisson means
        self._rates[4] = REQUOTE_RATE * self.dt

        self.a = np.zeros(n)
        self.tilt = np.zeros(n)  # tanh(a), used by every draw that leans with the flow state
        self.excitation = np.zeros((2, n))  # Hawkes excitation of [buys, sells]
        self.trade_id = [0] * n
        self.update_id = 0
        bid = np.array([round(p.price / p.tick) for p in params], dtype=np.int64)
        self.best: Ints = np.stack([bid, bid + 1])  # [bid, ask] in ticks, per symbol
        self.queues = self._ladder(self._everyone)  # [bids, asks] × symbol × level
        self.queues[:, :, 0] = self._fresh_queues(self._everyone, 1)[:, :, 0]
        self.step_no = 0
        self.burst_until = np.full(n, -1, dtype=np.int64)
        self.blowout_until = np.full(n, -1, dtype=np.int64)
        self.blowout_ticks = np.ones(n, dtype=np.int64)
        self.silent_until = np.full(n, -1, dtype=np.int64)
        self.last_recv = [0] * n

    # -- draws (both sides at once: index 0 the bids, 1 the asks) ------------------------------
    def _fresh_queues(self, rows: Ints, width: int) -> Floats:
        """Fresh best-level queues ~ Gamma(1.5, q̄/1.5): side × row × ``width``."""
        gammas: Floats = self.rng.standard_gamma(1.5, (2, len(rows), width))
        return gammas * (self.qbar[rows] / 1.5)[:, None]

    def _ladder(self, rows: Ints, depth: Ints | None = None) -> Floats:
        """Ladder sizes at ``depth`` (default: every level): mean q̄·(1 + 0.35·i), LogNormal(0, σ)
        noise, leaning with the flow state towards the side it favours (bids up when it is
        positive)."""
        if depth is None:
            mean, lean, width = self.ladder_mean[rows], self.ladder_lean, self.levels
        else:
            mean, lean, width = self.ladder_mean[rows][:, depth], self.ladder_lean[depth], len(depth)
        noise = np.exp(LADDER_SIGMA * self.rng.standard_normal((2, len(rows), width)))
        sizes: Floats = mean * noise * (1.0 + LEAN_SIGN * (self.tilt[rows][:, None] * lean))
        return sizes

    # -- book moves --------------------------------------------------------------------------
    def _move_away(self, rows: Ints, ticks: Ints) -> None:
        """Each side's best moved ``ticks`` (side × row) away from the spread: deeper levels
        move up, fresh ones fill the bottom, and a new best is a fresh queue."""
        self.best[:, rows] += AWAY * ticks
        index = self.depth + ticks[:, :, None]
        deepest = self.levels - 1
        kept = self.queues[SIDES, rows[:, None], np.minimum(index, deepest)]
        moved = np.where(index <= deepest, kept, self._ladder(rows, self._deepest))
        moved[:, :, 0] = np.where(ticks > 0, self._fresh_queues(rows, 1)[:, :, 0], moved[:, :, 0])
        self.queues[:, rows] = moved

    def _move_in(self, rows: Ints, ticks: Ints) -> None:
        """Each side's best moved ``ticks`` into the spread: a fresh queue at each new level."""
        self.best[:, rows] -= AWAY * ticks
        index = self.depth - ticks[:, :, None]
        kept = self.queues[SIDES, rows[:, None], np.maximum(index, 0)]
        self.queues[:, rows] = np.where(index >= 0, kept, self._fresh_queues(rows, self.levels))

    def _requotes(self, count: Ints) -> None:
        """Exogenous requotes remove a best level: price noise that OFI cannot predict."""
        rows = np.flatnonzero(count)
        if rows.size:
            on_bid = self.rng.binomial(count[rows], 0.5)
            self._move_away(rows, np.stack([on_bid, count[rows] - on_bid]))

    def _close_spreads(self) -> None:
        """A spread wider than its target closes: each tick by the bid with 0.5 + lean·tanh(a)."""
        target = np.where(self.step_no < self.blowout_until, self.blowout_ticks, 1)
        gap = self.best[1] - self.best[0] - target
        rows = np.flatnonzero(gap > 0)
        if rows.size:
            up = self.rng.binomial(gap[rows], 0.5 + self.k.lean * self.tilt[rows])
            self._move_in(rows, np.stack([up, gap[rows] - up]))

    # -- the step ----------------------------------------------------------------------------
    def _rare_events(self) -> None:
        rng, n, now, dt = self.rng, self.n, self.step_no, self.dt
        p_burst, p_blowout, p_silence = self._event_p
        draws = rng.random((3, n))
        if not (draws < self._event_p_column).any():
            return
        start = np.flatnonzero((now >= self.burst_until) & (draws[0] < p_burst))
        if start.size:
            self.burst_until[start] = now + (rng.uniform(60, 300, start.size) / dt).astype(np.int64)
        start = np.flatnonzero((now >= self.blowout_until) & (draws[1] < p_blowout))
        if start.size:
            self.blowout_until[start] = now + (rng.uniform(1, 3, start.size) / dt).astype(np.int64)
            self.blowout_ticks[start] = rng.integers(2, 6, start.size)
        start = np.flatnonzero((now >= self.silent_until) & (draws[2] < p_silence))
        if start.size:
            self.silent_until[start] = now + (rng.uniform(3, 6, start.size) / dt).astype(np.int64)

    def step(self, *, recv_now_ms: int | None = None) -> list[Row]:
        """Rows of every symbol for the next step: per symbol its trades in time order, then one
        book snapshot. ``recv_now_ms`` sets every row's recv time (live pace); otherwise a
        simulated latency. A symbol in an injected silence returns nothing (its state still moves).
        """
        t0 = self.next_ms
        self.next_ms += self.dt_ms
        rng, k, dt = self.rng, self.k, self.dt
        self._rare_events()
        self.step_no += 1
        a = self.a = self.phi * self.a + self.a_noise * rng.standard_normal(self.n)
        tilt = self.tilt = np.tanh(a)
        mu = self.mu0 * np.where(self.step_no < self.burst_until, 3.0, 1.0)
        rates = self._rates  # buys, sells, adds to the bids, adds to the asks, requotes
        rates[:2] = (mu * np.exp(k.kappa * a * FLOW_SIGN) + self.excitation) * dt
        rates[2:4] = ADD_RATE * dt * (1.0 + k.kappa_l * tilt * FLOW_SIGN)
        counts = rng.poisson(rates)
        n_buy, n_sell = counts[0], counts[1]
        self.excitation = self.excitation * self.decay + k.alpha * BETA * counts[:2]

        # limit adds at the best (leaning with the flow state), cancels decay every queue, and
        # each deeper level is redrawn now and then
        queues = self.queues
        queues[:, :, 0] += counts[2:4] * self.add_size
        queues *= self.cancel
        redraw = rng.random(queues.shape) < LADDER_RESAMPLE_P
        redraw[:, :, 0] = False
        self.queues = np.where(redraw, self._ladder(self._everyone), queues)

        trades = self._market_orders(t0, n_buy, n_sell, recv_now_ms)
        self._requotes(counts[4])
        self._close_spreads()
        self.update_id += 1
        return self._rows(t0, trades, recv_now_ms)

    def _market_orders(self, t0: int, buys: Ints, sells: Ints, recv_now: int | None) -> list[list[TradeRow]]:
        """Market orders at random times inside the step, each eating the opposite best queue;
        returns each symbol's trades in time order."""
        per_symbol: list[list[TradeRow]] = [[] for _ in range(self.n)]
        n_orders = buys + sells
        total = int(n_orders.sum())
        if not total:
            return per_symbol
        rng = self.rng
        who = np.repeat(np.arange(self.n), n_orders)
        # a symbol's first orders are its buys; random times interleave them with its sells
        rank = np.arange(total) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
        sides = (rank < np.repeat(buys, n_orders)).astype(np.intp)  # 1: a buy, which takes the ask
        offsets = 1 + (rng.random(total) * (self.dt_ms - 2)).astype(np.int64)  # in [1, dt_ms - 2]
        size = self.trade_median[who] * np.exp(TRADE_SIGMA * rng.standard_normal(total))
        lots = np.rint(np.minimum(size, self.trade_cap[who]) * self.qty_scale[who])
        size = np.maximum(lots / self.qty_scale[who], self.lot[who])
        delays = 1 + rng.exponential(LATENCY_MS, total).astype(np.int64) if recv_now is None else None
        order = np.lexsort((offsets, who))
        jumps = rng.geometric(DEPLETE_P, total)  # used only by orders that empty a queue
        queues, best = self.queues, self.best
        for j, s, side, off, qty, jump in zip(order.tolist(), who[order].tolist(), sides[order].tolist(),
                                              offsets[order].tolist(), size[order].tolist(),
                                              jumps.tolist(), strict=True):  # fmt: skip
            price = int(best[side, s])
            if qty >= queues[side, s, 0]:
                ticks = np.zeros((2, 1), dtype=np.int64)
                ticks[side, 0] = jump
                self._move_away(np.array([s]), ticks)
                queues = self.queues
            else:
                queues[side, s, 0] -= qty
            ts = t0 + off
            recv = ts + int(delays[j]) if delays is not None else max(ts, recv_now or 0)
            self.trade_id[s] += 1
            per_symbol[s].append(TradeRow(
                ts_ms=ts, recv_ts_ms=self._received(s, recv), symbol=self.symbols[s],
                price=price * self._tick_units[s] / self._px_scale[s], qty=qty,
                side="buy" if side else "sell", trade_id=self.trade_id[s], src="sim",
            ))  # fmt: skip
        return per_symbol

    def _received(self, s: int, recv: int) -> int:
        """Never earlier than the symbol's previous row: one connection delivers in order."""
        if recv > self.last_recv[s]:
            self.last_recv[s] = recv
        return self.last_recv[s]

    def _rows(self, t0: int, trades: list[list[TradeRow]], recv_now: int | None) -> list[Row]:
        book_ts = t0 + self.dt_ms - 1
        ticks = self.best[:, :, None] + AWAY[:, :, None] * self.depth
        bid_px, ask_px = (ticks * self._tick_units_column / self._px_scale_column).tolist()
        scale = self.qty_scale[:, None]
        bid_qty, ask_qty = np.maximum(np.rint(self.queues * scale) / scale, self.lot[:, None]).tolist()
        if recv_now is None:
            recvs = (book_ts + 1 + self.rng.exponential(LATENCY_MS, self.n).astype(np.int64)).tolist()
        else:
            recvs = [max(book_ts, recv_now)] * self.n
        silent = (self.step_no < self.silent_until).tolist()
        uid = self.update_id
        rows: list[Row] = []
        for s, symbol in enumerate(self.symbols):
            if silent[s]:
                continue
            rows += trades[s]
            rows.append(BookRow(
                ts_ms=book_ts, recv_ts_ms=self._received(s, recvs[s]), symbol=symbol,
                bids=list(zip(bid_px[s], bid_qty[s], strict=True)),
                asks=list(zip(ask_px[s], ask_qty[s], strict=True)),
                update_id=uid, prev_update_id=uid - 1, src="sim",
            ))  # fmt: skip
        return rows

    def steps(self, count: int) -> Iterator[list[Row]]:
        for _ in range(count):
            yield self.step()
