"""Contracts: valid rows pass, each kind of bad row names its field, the docs match the code."""

from __future__ import annotations

import itertools
import math
import random

import msgspec
import orjson
import pytest

import v13
from tests.unit.helpers import REPO, signal_row
from v13.contracts import CONTRACTS, BookRow, decode_row, encode_row, render_markdown
from v13.errors import ContractError

TRADE = {
    "ts_ms": 1_700_000_000_000,
    "recv_ts_ms": 1_700_000_000_005,
    "symbol": "BTCUSDT",
    "price": 50000.1,
    "qty": 0.01,
    "side": "buy",
    "trade_id": 1,
    "src": "sim",
}
BOOK = {
    "ts_ms": 1_700_000_000_000,
    "recv_ts_ms": 1_700_000_000_005,
    "symbol": "BTCUSDT",
    "bids": [[100.0, 1.0], [99.9, 2.0]],
    "asks": [[100.1, 1.5], [100.2, 0.5]],
    "update_id": 10,
    "prev_update_id": 9,
    "src": "sim",
}


def test_docs_api_contracts_is_generated_from_the_code() -> None:
    on_disk = (REPO / "docs/api_contracts.md").read_text()
    assert on_disk == render_markdown(), "run: python -m v13 contracts-doc > docs/api_contracts.md"


def test_docs_name_every_field_of_every_contract() -> None:
    text = render_markdown()
    for kind, cls in CONTRACTS.items():
        assert f"## {kind} (`{cls.__name__}`)" in text
        for field in cls.__struct_fields__:
            assert f"| `{field}` |" in text


def test_design_field_names_of_signal_and_order() -> None:
    assert CONTRACTS["signal"].__struct_fields__ == (
        "run_id", "ts_ms", "symbol", "score", "z_ofi", "z_cvd", "regime", "div_type", "confirm",
        "gating", "signal_type", "guard_reason", "mid", "best_bid", "best_ask", "spread_bps",
        "emit_ts_ms",
    )  # fmt: skip
    assert CONTRACTS["order"].__struct_fields__ == (
        "run_id", "order_id", "ts_ms", "symbol", "side", "strength", "signal_type", "score", "qty",
        "fill_price", "fee", "status", "position_after", "realized_pnl",
    )  # fmt: skip


def test_valid_rows_round_trip() -> None:
    trade = decode_row("trade", orjson.dumps(TRADE))
    assert trade.side == "buy" and trade.price == 50000.1
    book = decode_row("book", orjson.dumps(BOOK))
    assert book.bids[0] == (100.0, 1.0)
    row = signal_row("r1", "BTCUSDT", 1000)
    assert decode_row("signal", encode_row(row)) == row


@pytest.mark.parametrize(
    ("kind", "change", "needle"),
    [
        ("trade", {"price": -1.0}, "price"),
        ("trade", {"price": 0}, "price"),
        ("trade", {"qty": "a lot"}, "qty"),
        ("trade", {"side": "long"}, "side"),
        ("trade", {"ts_ms": -5}, "ts_ms"),
        ("trade", {"colour": "red"}, "colour"),
        ("book", {"bids": [[100.2, 1.0]]}, "crossed"),
        ("book", {"asks": [[100.1, 1.0], [100.05, 1.0]]}, "asks"),
        ("book", {"bids": []}, "bids"),
        ("book", {"bids": [[-1.0, 1.0]]}, "bids"),
    ],
)
def test_invalid_rows_name_the_field(kind: str, change: dict[str, object], needle: str) -> None:
    doc = {**(TRADE if kind == "trade" else BOOK), **change}
    with pytest.raises(ContractError, match=needle):
        decode_row(kind, orjson.dumps(doc))


def book_is_valid(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> bool:
    """The book rule, stated plainly: finite positive prices strictly sorted best first, finite
    quantities >= 0, not crossed."""
    for levels, better in ((bids, lambda a, b: a > b), (asks, lambda a, b: a < b)):
        if not levels:
            return False
        for price, qty in levels:
            if not (math.isfinite(price) and price > 0 and math.isfinite(qty) and qty >= 0):
                return False
        if not all(better(a[0], b[0]) for a, b in itertools.pairwise(levels)):
            return False
    return bids[0][0] < asks[0][0]


def test_book_validation_agrees_with_the_rule_on_random_books() -> None:
    rng = random.Random(7)
    odd = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e308]

    def levels(side: int) -> list[tuple[float, float]]:
        prices = [100.0 + side * (0.1 + 0.1 * i) for i in range(rng.randint(1, 6))]
        qtys = [rng.choice([0.0, 0.5, 2.0]) for _ in prices]
        for _ in range(rng.choice([0, 0, 1, 2])):  # a fault, or two
            i = rng.randrange(len(prices))
            match rng.randrange(4):
                case 0:
                    prices[i] = rng.choice(odd)
                case 1:
                    qtys[i] = rng.choice(odd)
                case 2:
                    prices[i] = prices[rng.randrange(len(prices))]  # a duplicate price
                case _:
                    rng.shuffle(prices)
        return list(zip(prices, qtys, strict=True))

    outcomes = {True: 0, False: 0}
    for _ in range(5000):
        bids, asks = levels(-1), levels(+1)
        expected = book_is_valid(bids, asks)
        outcomes[expected] += 1
        fields = {k: v for k, v in BOOK.items() if k not in ("bids", "asks")}
        try:
            BookRow(bids=bids, asks=asks, **fields)  # type: ignore[arg-type]
            valid = True
        except ContractError:
            valid = False
        assert valid == expected, (bids, asks)
    assert min(outcomes.values()) > 1000  # both kinds of book were tried


FEATURE = {
    "ts_ms": 1_700_000_001_000, "symbol": "BTCUSDT", "mid": 100.05, "best_bid": 100.0, "best_ask": 100.1,
    "spread_bps": 10.0, "ofi": 0.1, "z_ofi": 0.5, "cvd": 3.0, "cvd_delta": 0.2, "z_cvd": 0.3,
    "fusion_score": 0.4, "consistency": 0.6, "div_type": None, "trade_count": 3, "trade_rate": 1.0,
    "quote_rate": 10.0, "realized_vol_bps": 1.0, "volume_usd": 1000.0, "return_1s": 0.1, "lag_ms": 5.0,
    "warmup": False, "gap": False,
}  # fmt: skip
PRICES = ("mid", "best_bid", "best_ask")
CHECKED = {  # the fields a row of each kind must have finite (prices: finite and positive, or null)
    "feature": (*PRICES, "ofi", "z_ofi", "cvd", "cvd_delta", "z_cvd", "fusion_score", "consistency"),
    "signal": (*PRICES, "score", "z_ofi", "z_cvd"),
}


@pytest.mark.parametrize("kind", ["feature", "signal"])
def test_float_validation_agrees_with_the_rule_on_random_rows(kind: str) -> None:
    """Random odd values (NaN, inf, 0, negative, values whose sum overflows) in the checked fields:
    a row is refused exactly when one of them breaks the rule, and the error names that field."""
    rng = random.Random(11)
    base = FEATURE if kind == "feature" else msgspec.structs.asdict(signal_row("r1", "BTCUSDT", 1000))
    odd = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e308, -1e308, None]
    outcomes = {True: 0, False: 0}
    for _ in range(3000):
        row = dict(base)
        for name in rng.sample(CHECKED[kind], rng.choice([0, 1, 1, 2, 3])):
            row[name] = rng.choice(odd if name in PRICES else odd[:-1])
        values = {name: row[name] for name in CHECKED[kind]}
        bad = [
            n
            for n, v in values.items()
            if v is not None and not (math.isfinite(v) and (n not in PRICES or v > 0))
        ]
        outcomes[not bad] += 1
        if bad:
            with pytest.raises(ContractError, match="|".join(bad)):
                CONTRACTS[kind](**row)
        else:
            CONTRACTS[kind](**row)
    assert min(outcomes.values()) > 600  # both kinds of row were tried


def test_missing_field_and_bad_json_are_contract_errors() -> None:
    doc = dict(TRADE)
    del doc["symbol"]
    with pytest.raises(ContractError, match="symbol"):
        decode_row("trade", orjson.dumps(doc))
    with pytest.raises(ContractError, match="not valid JSON"):
        decode_row("trade", b'{"ts_ms": 1, "sym')


def test_signal_enums_are_checked() -> None:
    doc = orjson.loads(encode_row(signal_row("r", "BTCUSDT", 1)))
    doc["signal_type"] = "moon"
    with pytest.raises(ContractError, match="signal_type"):
        decode_row("signal", orjson.dumps(doc))


def test_public_api_is_pinned() -> None:
    assert set(v13.__all__) == {
        "Checkpoint", "Config", "ConfigError", "ContractError", "Deadletter", "Layout", "Position",
        "SegmentFollower", "SegmentWriter", "SignalSink", "StreamReader", "UsageError", "V13Error",
        "decode_row", "encode_row", "load_config", "open_signal_reader", "open_sink",
    }  # fmt: skip
    for name in v13.__all__:
        assert getattr(v13, name) is not None


def test_public_api_of_orchestrator_and_plugin_is_pinned() -> None:
    import orchestrator
    import pytest_v13

    assert set(orchestrator.__all__) == {
        "MODULES", "ChildStatus", "ChildSummary", "ProcState", "ProcessSpec", "RestartPolicy",
        "RunOptions", "RunResult", "RunStatus", "Supervisor", "run_stack",
    }  # fmt: skip
    assert set(pytest_v13.__all__) == {"Settings", "Thresholds", "V13Run"}
    for module in (orchestrator, pytest_v13):
        for name in module.__all__:
            assert getattr(module, name) is not None
