"""The embedded market simulator: a latent-flow Hawkes order book (shared/SIM_MODEL.md).

Each symbol is stepped every ``step_ms``: an AR(1) latent flow state tilts a bivariate Hawkes
process of market orders, skews limit adds at the best, and leans the closing of a wide spread.
The ``null`` preset zeroes every coupling, so its features carry no predictive edge. Prices are
kept in integer ticks; rows are contract :class:`TradeRow` / :class:`BookRow`.

Example::

    market = SimMarket(["BTCUSDT"], preset="weak", seed=7, start_ms=1_735_689_600_000)
    for rows in market.steps(600):          # one minute at 100 ms
        ...                                 # trades of the step in time order, then its book
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from v13.contracts import BookRow, TradeRow
from v13.sources.sim_params import PRESETS, PresetParams, SymbolParams, symbol_params

__all__ = ["SimEvents", "SimMarket", "SymbolSim"]

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


@dataclass(frozen=True)
class SimEvents:
    """Rare events per simulated hour: activity bursts, spread blow-outs, silences."""

    bursts_per_hour: float = 2.0
    blowouts_per_hour: float = 6.0
    silences_per_hour: float = 0.0


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw by multiplication (Knuth); lam is small (< 10) everywhere here."""
    if lam <= 0.0:
        return 0
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


class SymbolSim:
    """One instrument's book and flow state; :meth:`step` advances it by ``dt_ms``."""

    def __init__(
        self,
        params: SymbolParams,
        preset: PresetParams,
        seed: int,
        *,
        levels: int = 5,
        dt_ms: int = 100,
        events: SimEvents | None = None,
    ) -> None:
        self.p = params
        self.k = preset
        self.rng = random.Random(zlib.crc32(f"{seed}:{params.symbol}".encode()))
        self.levels = max(5, levels)
        self.dt = dt_ms / 1000.0
        self.dt_ms = dt_ms
        self.events = events or SimEvents()
        steps_per_hour = 3_600_000 / dt_ms
        ev = self.events
        self._event_p = (ev.bursts_per_hour / steps_per_hour, ev.blowouts_per_hour / steps_per_hour,
                         ev.silences_per_hour / steps_per_hour)  # per step  # fmt: skip
        self.phi = math.exp(-self.dt / TAU_A_S)
        self.a_noise = math.sqrt(1.0 - self.phi * self.phi)
        self.decay = math.exp(-BETA * self.dt)
        self.cancel = math.exp(-CANCEL_THETA * self.dt)
        self.px_dec = _decimals(params.tick)
        self.qty_dec = _decimals(params.lot)
        self.a = 0.0
        self.tilt = 0.0  # tanh(a), used by every draw that leans with the flow state
        self.e_buy = 0.0
        self.e_sell = 0.0
        self.trade_id = 0
        self.update_id = 0
        mid_ticks = round(params.price / params.tick)
        self.bid = mid_ticks
        self.ask = mid_ticks + 1
        self.bids = [self._ladder_size(i, +1) for i in range(self.levels)]
        self.asks = [self._ladder_size(i, -1) for i in range(self.levels)]
        self.bids[0] = self._fresh_queue()
        self.asks[0] = self._fresh_queue()
        self.burst_until = -1
        self.blowout_until = -1
        self.blowout_ticks = 1
        self.silent_until = -1
        self.step_no = 0
        self.last_recv = 0
        self._bid_px: tuple[int, list[float]] = (-1, [])  # (best bid in ticks, level prices)
        self._ask_px: tuple[int, list[float]] = (-1, [])

    # -- draws -------------------------------------------------------------------------------
    def _fresh_queue(self) -> float:
        return self.rng.gammavariate(1.5, self.p.qbar / 1.5)

    def _ladder_size(self, i: int, sign: int) -> float:
        base = self.p.qbar * (1.0 + 0.35 * i) * self.rng.lognormvariate(0.0, LADDER_SIGMA)
        return base * (1.0 + sign * self.k.kappa_l * self.tilt * 0.5**i)

    def _geometric(self) -> int:
        u = 1.0 - self.rng.random()
        return 1 + int(math.log(u) / math.log(1.0 - DEPLETE_P))

    def _trade_size(self) -> float:
        size = self.p.trade_median * math.exp(TRADE_SIGMA * self.rng.gauss(0.0, 1.0))
        return max(self.p.lot, round(min(size, self.p.trade_cap), self.qty_dec))

    # -- book moves --------------------------------------------------------------------------
    def _shifted(self, queues: list[float], k: int, sign: int) -> list[float]:
        """The ladder after the best moved ``k`` ticks away: deeper levels move up, fresh best."""
        kept = queues[k:]
        fresh = [self._ladder_size(self.levels - 1, sign) for _ in range(self.levels - len(kept))]
        out = kept + fresh
        out[0] = self._fresh_queue()
        return out

    def _bid_moves_down(self, k: int) -> None:
        self.bid -= k
        self.bids = self._shifted(self.bids, k, +1)

    def _ask_moves_up(self, k: int) -> None:
        self.ask += k
        self.asks = self._shifted(self.asks, k, -1)

    def _close_spread(self, target: int) -> None:
        up = 0.5 + self.k.lean * self.tilt
        while self.ask - self.bid > target:
            if self.rng.random() < up:
                self.bid += 1
                self.bids = [self._fresh_queue(), *self.bids[:-1]]
            else:
                self.ask -= 1
                self.asks = [self._fresh_queue(), *self.asks[:-1]]

    # -- the step ----------------------------------------------------------------------------
    def _rare_events(self) -> None:
        p_burst, p_blowout, p_silence = self._event_p
        rng = self.rng
        if self.step_no >= self.burst_until and rng.random() < p_burst:
            self.burst_until = self.step_no + int(rng.uniform(60, 300) / self.dt)
        if self.step_no >= self.blowout_until and rng.random() < p_blowout:
            self.blowout_until = self.step_no + int(rng.uniform(1, 3) / self.dt)
            self.blowout_ticks = rng.randint(2, 5)
        if self.step_no >= self.silent_until and rng.random() < p_silence:
            self.silent_until = self.step_no + int(rng.uniform(3, 6) / self.dt)

    def step(self, t0_ms: int, *, recv_now_ms: int | None = None) -> list[TradeRow | BookRow]:
        """Advance one step that starts at ``t0_ms``; returns its trades then one book snapshot.

        ``recv_now_ms`` sets every row's recv time (live pace); otherwise a simulated latency.
        Nothing is returned while an injected silence lasts (the state still evolves).
        """
        rng = self.rng
        k = self.k
        p = self.p
        self._rare_events()
        self.step_no += 1
        self.a = self.phi * self.a + self.a_noise * rng.gauss(0.0, 1.0)
        tilt = self.tilt = math.tanh(self.a)
        mu = p.mu0 * (3.0 if self.step_no < self.burst_until else 1.0)
        lam_buy = mu * math.exp(k.kappa * self.a) + self.e_buy
        lam_sell = mu * math.exp(-k.kappa * self.a) + self.e_sell
        n_buy = _poisson(rng, lam_buy * self.dt)
        n_sell = _poisson(rng, lam_sell * self.dt)
        self.e_buy = self.e_buy * self.decay + k.alpha * BETA * n_buy
        self.e_sell = self.e_sell * self.decay + k.alpha * BETA * n_sell

        # limit adds at the best (leaning with the flow state), then cancels decay every queue
        self.bids[0] += _poisson(rng, ADD_RATE * self.dt * (1.0 + k.kappa_l * tilt)) * p.add_size
        self.asks[0] += _poisson(rng, ADD_RATE * self.dt * (1.0 - k.kappa_l * tilt)) * p.add_size
        self.bids = [q * self.cancel for q in self.bids]
        self.asks = [q * self.cancel for q in self.asks]
        for i in range(1, self.levels):
            if rng.random() < LADDER_RESAMPLE_P:
                self.bids[i] = self._ladder_size(i, +1)
            if rng.random() < LADDER_RESAMPLE_P:
                self.asks[i] = self._ladder_size(i, -1)

        # market orders, interleaved at random times inside the step
        sides = [True] * n_buy + [False] * n_sell
        rng.shuffle(sides)
        offsets = sorted(rng.randrange(1, self.dt_ms - 1) for _ in sides)
        trades: list[TradeRow] = []
        for is_buy, off in zip(sides, offsets, strict=True):
            size = self._trade_size()
            if is_buy:
                price = self.ask
                if size >= self.asks[0]:
                    self._ask_moves_up(self._geometric())
                else:
                    self.asks[0] -= size
            else:
                price = self.bid
                if size >= self.bids[0]:
                    self._bid_moves_down(self._geometric())
                else:
                    self.bids[0] -= size
            self.trade_id += 1
            trades.append(self._trade(t0_ms + off, price, size, is_buy, recv_now_ms))

        # exogenous requotes remove a best level: price noise that OFI cannot predict
        for _ in range(_poisson(rng, REQUOTE_RATE * self.dt)):
            if rng.random() < 0.5:
                self._bid_moves_down(1)
            else:
                self._ask_moves_up(1)
        self._close_spread(self.blowout_ticks if self.step_no < self.blowout_until else 1)

        self.update_id += 1
        if self.step_no < self.silent_until:
            return []
        book_ts = t0_ms + self.dt_ms - 1
        rows: list[TradeRow | BookRow] = list(trades)
        rows.append(self._book(book_ts, recv_now_ms))
        return rows

    def _recv(self, ts: int, recv_now_ms: int | None) -> int:
        """Receive time: the live step's, else a simulated latency; never earlier than the
        symbol's previous row (one connection delivers in order)."""
        if recv_now_ms is not None:
            recv = max(ts, recv_now_ms)
        else:
            recv = ts + 1 + int(self.rng.expovariate(1.0 / LATENCY_MS))
        self.last_recv = max(self.last_recv, recv)
        return self.last_recv

    def _trade(self, ts: int, price_ticks: int, qty: float, is_buy: bool, recv_now: int | None) -> TradeRow:
        return TradeRow(
            ts_ms=ts,
            recv_ts_ms=self._recv(ts, recv_now),
            symbol=self.p.symbol,
            price=round(price_ticks * self.p.tick, self.px_dec),
            qty=qty,
            side="buy" if is_buy else "sell",
            trade_id=self.trade_id,
            src="sim",
        )

    def _book(self, ts: int, recv_now: int | None) -> BookRow:
        if self.bid != self._bid_px[0] or self.ask != self._ask_px[0]:
            tick, dec = self.p.tick, self.px_dec  # prices follow the best ticks only: kept until they move
            self._bid_px = (self.bid, [round((self.bid - i) * tick, dec) for i in range(self.levels)])
            self._ask_px = (self.ask, [round((self.ask + i) * tick, dec) for i in range(self.levels)])
        lot, qd = self.p.lot, self.qty_dec
        bid_qty = [q if (q := round(x, qd)) > lot else lot for x in self.bids]
        ask_qty = [q if (q := round(x, qd)) > lot else lot for x in self.asks]
        return BookRow(
            ts_ms=ts,
            recv_ts_ms=self._recv(ts, recv_now),
            symbol=self.p.symbol,
            bids=list(zip(self._bid_px[1], bid_qty, strict=True)),
            asks=list(zip(self._ask_px[1], ask_qty, strict=True)),
            update_id=self.update_id,
            prev_update_id=self.update_id - 1,
            src="sim",
        )


class SimMarket:
    """Several :class:`SymbolSim` stepped together on one clock."""

    def __init__(
        self,
        symbols: list[str],
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
        params = PRESETS[preset]
        self.sims = [
            SymbolSim(symbol_params(s), params, seed, levels=levels, dt_ms=dt_ms, events=events)
            for s in symbols
        ]

    def step(self, *, recv_now_ms: int | None = None) -> list[TradeRow | BookRow]:
        """Rows of every symbol for the next step (per symbol: trades, then the book)."""
        t0 = self.next_ms
        self.next_ms += self.dt_ms
        rows: list[TradeRow | BookRow] = []
        for sim in self.sims:
            rows.extend(sim.step(t0, recv_now_ms=recv_now_ms))
        return rows

    def steps(self, count: int) -> Iterator[list[TradeRow | BookRow]]:
        for _ in range(count):
            yield self.step()
