"""Row contracts: the field names and types every stage reads and writes (DESIGN.md section 5).

Each contract is a msgspec Struct; its field descriptions are the source of docs/api_contracts.md
(``python -m v13 contracts-doc > docs/api_contracts.md``; a unit test fails if the two differ).
Rows are validated when decoded (types, finite positive prices, bids below asks, known enums)::

    row = decode_row("trade", b'{"ts_ms": 1, ...}')   # ContractError names the field on failure
    line = encode_row(row)                               # bytes, no trailing newline
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from v13.errors import ContractError

__all__ = [
    "CONTRACTS",
    "BookRow",
    "CostModel",
    "DivType",
    "EdgeRow",
    "FeatureRow",
    "HorizonStats",
    "LastFiveMinutes",
    "MarkoutReport",
    "MinuteCount",
    "OrderRow",
    "OrdersSummary",
    "PnlReport",
    "ReportRow",
    "SignalRow",
    "StatusRow",
    "SymbolPnl",
    "TradeRow",
    "decode_row",
    "decode_rows",
    "encode_row",
    "render_markdown",
]

Side = Literal["buy", "sell"]
DivType = Literal["bull_div", "bear_div", "ofi_cvd_conflict"]
Regime = Literal["active", "quiet"]
SignalType = Literal["strong_buy", "buy", "sell", "strong_sell", "neutral", "pending"]
OrderSide = Literal["BUY", "SELL"]
Strength = Literal["STRONG", "NORMAL"]
OrderStatus = Literal["FILLED", "REJECTED"]
StageState = Literal["starting", "ready", "running", "exhausted", "failed", "stopping"]

TsMs = Annotated[int, Meta(ge=0, description="UTC epoch milliseconds")]
Level = tuple[float, float]


def _d(text: str) -> Meta:
    return Meta(description=text)


def _finite(row: msgspec.Struct, *names: str, positive: bool = False) -> None:
    for name in names:
        value = getattr(row, name)
        if value is None:
            continue
        if not math.isfinite(value) or (positive and value <= 0):
            kind = "finite and positive" if positive else "finite"
            raise ContractError(f"field {name!r} must be {kind}, got {value!r}")


def _prices_fine(mid: float | None, bid: float | None, ask: float | None) -> bool:
    """Each price null, or finite and positive (NaN fails the comparisons)."""
    inf = math.inf
    return (
        (mid is None or 0.0 < mid < inf)
        and (bid is None or 0.0 < bid < inf)
        and (ask is None or 0.0 < ask < inf)
    )


def _sum_finite(total: float) -> bool:
    """``total``, a sum of fields, is finite: then so is each of them (an inf or a NaN among them
    makes the sum inf or NaN). A sum that overflows says False too, and the caller then checks
    the fields one by one, which says which one is wrong if any."""
    return total - total == 0.0


class TradeRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One aggressive trade."""

    ts_ms: Annotated[TsMs, _d("exchange event time")]
    recv_ts_ms: Annotated[TsMs, _d("time the row was received (or simulated)")]
    symbol: Annotated[str, _d("instrument, e.g. BTCUSDT")]
    price: Annotated[float, _d("trade price, finite and > 0")]
    qty: Annotated[float, _d("base quantity, finite and > 0")]
    side: Annotated[Side, _d("aggressor side: buy = the buyer took liquidity")]
    trade_id: Annotated[int, _d("venue trade id, increasing by 1 per symbol")]
    src: Annotated[str, _d("source: sim | replay | binance")]

    def __post_init__(self) -> None:
        if not (0.0 < self.price < math.inf and 0.0 < self.qty < math.inf):  # the common case, fast
            _finite(self, "price", "qty", positive=True)


def _fine_book(bids: list[Level], asks: list[Level]) -> bool:
    """The common case, one chained comparison per level: bids strictly falling from below inf to
    above 0, asks strictly rising from above the best bid to below inf (so not crossed), every
    quantity in [0, inf); NaN fails every comparison. False sends the row through the
    level-by-level check, which says what is wrong."""
    inf = math.inf
    prev = inf
    for price, qty in bids:
        if not (0.0 < price < prev and 0.0 <= qty < inf):
            return False
        prev = price
    prev = bids[0][0]
    for price, qty in asks:
        if not (prev < price < inf and 0.0 <= qty < inf):
            return False
        prev = price
    return True


class BookRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A top-N order book snapshot, best level first; or, with ``reset``, the point from which the
    book is unknown (reconnect, resync) until the next snapshot."""

    ts_ms: Annotated[TsMs, _d("exchange event time")]
    recv_ts_ms: Annotated[TsMs, _d("time the row was received (or simulated)")]
    symbol: Annotated[str, _d("instrument")]
    bids: Annotated[list[Level], _d("[[price, qty], ...] best (highest) first; empty when reset")]
    asks: Annotated[list[Level], _d("[[price, qty], ...] best (lowest) first; empty when reset")]
    update_id: Annotated[int, _d("venue update id (u)")]
    prev_update_id: Annotated[int, _d("previous update id (pu)")]
    src: Annotated[str, _d("source: sim | replay | binance")]
    reset: Annotated[bool, _d("true: the book is unknown from here (reconnect, resync); no levels")] = False

    def __post_init__(self) -> None:
        if self.reset:
            if self.bids or self.asks:
                raise ContractError("a reset book row carries no levels")
            return
        if not self.bids or not self.asks:
            raise ContractError("fields 'bids' and 'asks' need at least one level each")
        if _fine_book(self.bids, self.asks):
            return
        for name, levels, step in (("bids", self.bids, -1.0), ("asks", self.asks, 1.0)):
            prev = None
            for price, qty in levels:
                # chained comparisons: finite and positive (NaN fails every comparison)
                if not (0.0 < price < math.inf and 0.0 <= qty < math.inf):
                    raise ContractError(f"field {name!r} has a bad level [{price}, {qty}]")
                if prev is not None and (price - prev) * step <= 0:
                    raise ContractError(f"field {name!r} is not sorted best first at {price}")
                prev = price
        if self.bids[0][0] >= self.asks[0][0]:
            raise ContractError(
                f"crossed book: best bid {self.bids[0][0]} is not below best ask {self.asks[0][0]}"
            )


class FeatureRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Per-symbol microstructure features over one interval (written by harvest)."""

    ts_ms: Annotated[TsMs, _d("interval end (exclusive), event time")]
    symbol: Annotated[str, _d("instrument")]
    mid: Annotated[float | None, _d("mid price at interval end; null without a fresh book")]
    best_bid: Annotated[float | None, _d("best bid at interval end")]
    best_ask: Annotated[float | None, _d("best ask at interval end")]
    spread_bps: Annotated[float | None, _d("(ask - bid) / mid in basis points")]
    ofi: Annotated[float, _d("multi-level OFI over the interval, divided by mean depth")]
    z_ofi: Annotated[float, _d("z-score of ofi against the previous window, clipped; 0 in warm-up")]
    cvd: Annotated[float, _d("cumulative signed volume since start or the last reset")]
    cvd_delta: Annotated[float, _d("signed volume in this interval (+ buy aggressor)")]
    z_cvd: Annotated[float, _d("z-score of cvd_delta against the previous window, clipped")]
    fusion_score: Annotated[float, _d("w_ofi * z_ofi + w_cvd * z_cvd")]
    consistency: Annotated[float, _d("min(|z|)/max(|z|) when the signs agree, else 0")]
    div_type: Annotated[DivType | None, _d("bull_div | bear_div | ofi_cvd_conflict | null")]
    trade_count: Annotated[int, _d("trades in the interval")]
    trade_rate: Annotated[float, _d("trades per minute over the last 60 s")]
    quote_rate: Annotated[float, _d("book updates per second in the interval")]
    realized_vol_bps: Annotated[float, _d("std of 1-interval mid returns over the vol window, bps")]
    volume_usd: Annotated[float, _d("traded notional in the interval")]
    return_1s: Annotated[float, _d("mid return over the interval, bps")]
    lag_ms: Annotated[float, _d("largest receive time minus event time of the interval's rows, ms")]
    warmup: Annotated[bool, _d("true until the z-score window has enough history")]
    gap: Annotated[bool, _d("true when a data gap reset the statistics in this interval")]
    late_rows: Annotated[
        int, _d("rows that arrived after their own interval had closed, counted in this one instead")
    ] = 0
    stale_book: Annotated[
        bool, _d("true: the book is unknown (reset) or older than features.gap_ms; book fields null")
    ] = False

    def __post_init__(self) -> None:
        fine = _prices_fine(self.mid, self.best_bid, self.best_ask) and _sum_finite(
            self.ofi
            + self.z_ofi
            + self.cvd
            + self.cvd_delta
            + self.z_cvd
            + self.fusion_score
            + self.consistency
        )
        if not fine:  # the common case above, fast: it runs for every feature row
            _finite(self, "mid", "best_bid", "best_ask", positive=True)
            _finite(self, "ofi", "z_ofi", "cvd", "cvd_delta", "z_cvd", "fusion_score", "consistency")


class SignalRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One signal per feature row, neutral included (written by the signal stage to its sink)."""

    run_id: Annotated[str, _d("run the row belongs to")]
    ts_ms: Annotated[TsMs, _d("feature interval end the signal is for")]
    symbol: Annotated[str, _d("instrument")]
    score: Annotated[float, _d("fusion score")]
    z_ofi: Annotated[float, _d("z-score of OFI")]
    z_cvd: Annotated[float, _d("z-score of CVD delta")]
    regime: Annotated[Regime, _d("StrategyMode regime: active | quiet")]
    div_type: Annotated[DivType | None, _d("divergence of the feature row")]
    confirm: Annotated[bool, _d("true = a direction and no guard")]
    gating: Annotated[bool, _d("true = a guard blocked it")]
    signal_type: Annotated[SignalType, _d("strong_buy | buy | sell | strong_sell | neutral | pending")]
    guard_reason: Annotated[str | None, _d("comma-joined guard codes, or null")]
    mid: Annotated[float | None, _d("mid price")]
    best_bid: Annotated[float | None, _d("best bid (sell fills)")]
    best_ask: Annotated[float | None, _d("best ask (buy fills)")]
    spread_bps: Annotated[float | None, _d("spread in bps")]
    emit_ts_ms: Annotated[TsMs, _d("wall-clock time the signal was computed")]

    def __post_init__(self) -> None:
        if not (
            _prices_fine(self.mid, self.best_bid, self.best_ask)
            and _sum_finite(self.score + self.z_ofi + self.z_cvd)
        ):
            _finite(self, "mid", "best_bid", "best_ask", positive=True)
            _finite(self, "score", "z_ofi", "z_cvd")


class OrderRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A mock or paper order and its fill (written by the broker to runtime/mock_orders.jsonl)."""

    run_id: Annotated[str, _d("run the order belongs to")]
    order_id: Annotated[str, _d("deterministic, unique in the run")]
    ts_ms: Annotated[TsMs, _d("signal time the order was placed at")]
    symbol: Annotated[str, _d("instrument")]
    side: Annotated[OrderSide, _d("BUY | SELL")]
    strength: Annotated[Strength, _d("STRONG | NORMAL")]
    signal_type: Annotated[SignalType, _d("signal that caused the order")]
    score: Annotated[float, _d("signal score")]
    qty: Annotated[float, _d("base quantity, > 0")]
    fill_price: Annotated[float, _d("fill price incl. slippage, > 0")]
    fee: Annotated[float, _d("fee in quote currency")]
    status: Annotated[OrderStatus, _d("FILLED | REJECTED")]
    position_after: Annotated[float, _d("position in base units after the fill")]
    realized_pnl: Annotated[float, _d("realised PnL of the symbol after the fill, net of fees")]

    def __post_init__(self) -> None:
        _finite(self, "qty", "fill_price", positive=True)
        _finite(self, "fee", "position_after", "realized_pnl", "score")


class StatusRow(msgspec.Struct, forbid_unknown_fields=True):
    """A stage's status file, runtime/health/<name>.json, rewritten atomically every <= 2 s."""

    name: Annotated[str, _d("stage name")]
    pid: Annotated[int, _d("process id")]
    run_id: Annotated[str, _d("run id")]
    state: Annotated[
        StageState,
        _d(
            "starting | ready | running | exhausted (a finite source is used up, every segment "
            "sealed) | failed (see error; the process exits 1) | stopping"
        ),
    ]
    ts_ms: Annotated[TsMs, _d("heartbeat: wall clock of this write")]
    started_ts_ms: Annotated[TsMs, _d("process start")]
    counters: Annotated[dict[str, int], _d("in, out, dropped, deadletter, reconnects, ...")]
    queue_size: Annotated[int, _d("rows waiting in the stage's internal queue")]
    last_event_ts_ms: Annotated[int | None, _d("event time of the last row handled")]
    lag_ms: Annotated[
        float | None,
        _d("the source's clock (wall clock; a replay's recorded receive time) minus the last event time, ms"),
    ]
    error: Annotated[str | None, _d("why the stage failed (state failed), one line")] = None
    exhausted_ts_ms: Annotated[
        int | None, _d("wall clock at which the finite source was used up and all output sealed")
    ] = None
    caught_up_poll_ts_ms: Annotated[
        int | None, _d("wall clock at which the latest poll that found nothing new started")
    ] = None
    caught_up_ts_ms: Annotated[
        int | None, _d("wall clock after that poll at which everything read so far was durable")
    ] = None


class MinuteCount(msgspec.Struct, forbid_unknown_fields=True):
    """Confirmed signals in one UTC minute."""

    minute: Annotated[str, _d("UTC minute, YYYY-MM-DDTHH:MMZ")]
    count: Annotated[int, _d("confirmed signals")]
    buy: Annotated[int, _d("buy + strong_buy")]
    sell: Annotated[int, _d("sell + strong_sell")]
    strong: Annotated[int, _d("strong_buy + strong_sell")]


class LastFiveMinutes(msgspec.Struct, forbid_unknown_fields=True):
    """The rhythm of the last five minutes of data."""

    per_minute: Annotated[list[MinuteCount], _d("the last five minutes")]
    strong_ratio: Annotated[float, _d("strong / confirmed over those minutes")]


class OrdersSummary(msgspec.Struct, forbid_unknown_fields=True):
    """Orders placed by the broker in the run."""

    count: Annotated[int, _d("orders")]
    buy: Annotated[int, _d("BUY orders")]
    sell: Annotated[int, _d("SELL orders")]
    pnl: Annotated[float, _d("realised PnL summed over symbols")]


class HorizonStats(msgspec.Struct, forbid_unknown_fields=True):
    """Markouts of confirmed signals at one horizon (docs/report.md)."""

    horizon_s: Annotated[int, _d("seconds after the signal")]
    count: Annotated[int, _d("signals with a markout at this horizon")]
    censored: Annotated[int, _d("signals whose horizon runs past the end of the data")]
    hits: Annotated[int, _d("signed move > 0")]
    misses: Annotated[int, _d("signed move < 0")]
    flat: Annotated[int, _d("signed move == 0 (the mid did not move)")]
    hit_rate: Annotated[float | None, _d("hits / (hits + misses)")]
    hit_rate_ci: Annotated[list[float] | None, _d("95% Wilson interval [low, high]")]
    mean_bps: Annotated[float | None, _d("mean signed move, bps")]
    mean_ci: Annotated[list[float] | None, _d("95% interval of the mean [low, high]")]
    median_bps: Annotated[float | None, _d("median signed move, bps")]
    median_ci: Annotated[list[float] | None, _d("95% order-statistic interval of the median")]


class CostModel(msgspec.Struct, forbid_unknown_fields=True):
    """What trading a signal costs, in bps of notional."""

    fee_bps: Annotated[float, _d("broker.fee_bps, per side")]
    slippage_bps: Annotated[float, _d("broker.slippage_bps, per side")]
    round_trip_bps: Annotated[float, _d("2 * (fee_bps + slippage_bps)")]
    mean_half_spread_bps: Annotated[float, _d("half the spread at entry, averaged over the signals")]


class EdgeRow(msgspec.Struct, forbid_unknown_fields=True):
    """The mean signed move against the cost at one horizon."""

    horizon_s: Annotated[int, _d("seconds after the signal")]
    mean_move_bps: Annotated[float, _d("mean signed move")]
    cost_bps: Annotated[float, _d("mean cost: round trip + half spread at entry")]
    net_bps: Annotated[float, _d("mean of move - cost")]
    net_ci: Annotated[list[float] | None, _d("95% interval of the net mean")]
    exceeds_cost: Annotated[bool, _d("net_bps > 0")]
    significant: Annotated[bool, _d("the net interval lies above 0")]


class MarkoutReport(msgspec.Struct, forbid_unknown_fields=True):
    """Do the confirmed signals predict the move, and does it pay for the cost (docs/report.md)."""

    horizons_s: Annotated[list[int], _d("report.markout_horizons_s")]
    signals: Annotated[int, _d("confirmed signals with a book")]
    all: Annotated[list[HorizonStats], _d("per horizon")]
    by_strength: Annotated[dict[str, list[HorizonStats]], _d("normal | strong")]
    by_regime: Annotated[dict[str, list[HorizonStats]], _d("active | quiet")]
    by_symbol: Annotated[dict[str, list[HorizonStats]], _d("per symbol")]
    cost: Annotated[CostModel, _d("the cost model")]
    edge: Annotated[list[EdgeRow], _d("per horizon with a markout")]


class SymbolPnl(msgspec.Struct, forbid_unknown_fields=True):
    """The broker's PnL of one symbol (or all), split into what made and what cost it."""

    orders: Annotated[int, _d("fills")]
    gross: Annotated[float, _d("sum of signed qty * (last mid - mid at the fill): the PnL at mid prices")]
    spread: Annotated[float, _d("half spreads paid: sum of qty * |quote - mid| at the fill")]
    slippage: Annotated[float, _d("sum of qty * |fill price - quote|")]
    fees: Annotated[float, _d("fees charged")]
    net: Annotated[float, _d("gross - spread - slippage - fees: marked to the last mid")]
    realized: Annotated[float, _d("the broker's realised PnL net of fees (closed positions only)")]
    position: Annotated[float, _d("open position, base units")]


class PnlReport(msgspec.Struct, forbid_unknown_fields=True):
    """The mock/paper broker's PnL decomposition."""

    total: Annotated[SymbolPnl, _d("all symbols")]
    by_symbol: Annotated[dict[str, SymbolPnl], _d("per symbol")]


class ReportRow(msgspec.Struct, forbid_unknown_fields=True):
    """The run summary, logs/report/summary_<YYYYMMDD_HHMM>.json."""

    run_id: Annotated[str, _d("run id")]
    sink: Annotated[str, _d("jsonl | sqlite")]
    generated_at: Annotated[str, _d("UTC ISO-8601 time of this report")]
    total: Annotated[int, _d("confirmed signals")]
    rows: Annotated[int, _d("all signal rows")]
    buy_count: Annotated[int, _d("confirmed buy")]
    sell_count: Annotated[int, _d("confirmed sell")]
    strong_buy_count: Annotated[int, _d("confirmed strong_buy")]
    strong_sell_count: Annotated[int, _d("confirmed strong_sell")]
    buy_ratio: Annotated[float, _d("(buy + strong_buy) / total")]
    sell_ratio: Annotated[float, _d("(sell + strong_sell) / total")]
    strong_ratio: Annotated[float, _d("(strong_buy + strong_sell) / total")]
    per_minute: Annotated[list[MinuteCount], _d("every minute of the run")]
    last_5min: Annotated[LastFiveMinutes, _d("last five minutes' rhythm and strong ratio")]
    dropped: Annotated[int, _d("dropped rows summed over the stages' status files")]
    unprocessed_tail: Annotated[
        int, _d("feature rows after each symbol's last signal row: the tail a stop leaves, from the files")
    ]
    missing_signals: Annotated[int, _d("feature rows before each symbol's last signal row without one")]
    orders: Annotated[OrdersSummary, _d("broker orders")]
    markouts: Annotated[MarkoutReport, _d("signal markouts and the edge against cost")]
    pnl: Annotated[PnlReport, _d("the broker's PnL decomposition")]
    warnings: Annotated[
        list[str], _d("codes: NO_SIGNALS, ALL_GATED, DROPPED, DEADLETTER, NO_ORDERS, MISSING_SIGNALS")
    ]


CONTRACTS: dict[str, type[msgspec.Struct]] = {
    "trade": TradeRow,
    "book": BookRow,
    "feature": FeatureRow,
    "signal": SignalRow,
    "order": OrderRow,
    "status": StatusRow,
    "report": ReportRow,
}

_DECODERS = {name: msgspec.json.Decoder(cls) for name, cls in CONTRACTS.items()}
_ENCODER = msgspec.json.Encoder()


def decode_row(kind: str, line: bytes | str) -> Any:
    """Decode and validate one JSON row of contract ``kind``; ContractError says why it failed."""
    try:
        return _DECODERS[kind].decode(line)
    except ContractError:
        raise
    except msgspec.ValidationError as exc:
        raise ContractError(f"{kind} row invalid: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ContractError(f"{kind} row is not valid JSON: {exc}") from None


def decode_rows(kind: str, lines: list[bytes]) -> list[Any] | None:
    """Every line decoded as by :func:`decode_row`, each line on its own, in one C-level loop; None
    when any line fails (the caller decodes them one by one to learn which and why)."""
    try:
        return list(map(_DECODERS[kind].decode, lines))
    except (ContractError, msgspec.ValidationError, msgspec.DecodeError):
        return None


def encode_row(row: msgspec.Struct) -> bytes:
    """JSON bytes of one row, field order as declared, no trailing newline."""
    return _ENCODER.encode(row)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" \\| null" if type(None) in args else "")
    if origin in (list, tuple, dict):
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def _description(tp: Any) -> str:
    texts = [m.description for m in typing.get_args(tp)[1:] if isinstance(m, Meta) and m.description]
    inner = typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else None
    if inner is not None and typing.get_origin(inner) is Annotated:
        texts = [_description(inner), *texts]
    return "; ".join(t for t in texts if t)


def render_markdown() -> str:
    """The text of docs/api_contracts.md, generated from the Structs above."""
    out = [
        "# API contracts",
        "",
        "Generated from `v13/contracts.py` by `python -m v13 contracts-doc > docs/api_contracts.md`;",
        "a unit test fails when this file and the code differ. Field names are the contract.",
        "All times are UTC epoch milliseconds.",
    ]
    for kind, cls in CONTRACTS.items():
        out += ["", f"## {kind} (`{cls.__name__}`)", "", (cls.__doc__ or "").strip(), ""]
        out += ["| field | type | meaning |", "|---|---|---|"]
        hints = typing.get_type_hints(cls, include_extras=True)
        for name in cls.__struct_fields__:
            meaning = _description(hints[name]).replace("|", "\\|")
            out.append(f"| `{name}` | {_type_name(hints[name])} | {meaning} |")
    return "\n".join(out) + "\n"
