"""The Binance decoder on recorded frame shapes, stream routing and the reconnect backoff."""

from __future__ import annotations

import random

import orjson
import pytest

from v13.errors import ContractError
from v13.sources.binance import FrameDecoder, shard_urls, stream_names
from v13.sources.reconnect import Backoff

AGG = {"e": "aggTrade", "E": 1764300000123, "s": "BTCUSDT", "a": 5933014, "p": "95000.10", "q": "0.012",
       "f": 100, "l": 105, "T": 1764300000120, "m": True}  # fmt: skip
DEPTH = {"e": "depthUpdate", "E": 1764300000200, "T": 1764300000198, "s": "BTCUSDT", "U": 390497796,
         "u": 390497878, "pu": 390497794, "b": [["95000.00", "1.204"], ["94999.90", "0.5"]],
         "a": [["95000.10", "0.330"], ["95000.20", "2"]]}  # fmt: skip


def frame(stream: str, data: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def test_aggtrade_buyer_is_maker_means_a_sell_aggressor() -> None:
    dec = FrameDecoder()
    (sell,) = dec.decode(frame("btcusdt@aggTrade", AGG), 1764300000130)
    (buy,) = dec.decode(frame("btcusdt@aggTrade", {**AGG, "a": 5933015, "m": False}), 1764300000131)
    assert (sell.side, buy.side) == ("sell", "buy")
    assert (sell.price, sell.qty, sell.ts_ms, sell.trade_id, sell.src) == (
        95000.1,
        0.012,
        1764300000120,
        5933014,
        "binance",
    )
    assert dec.counters.last_lag_ms == 1764300000131 - 1764300000123
    assert dec.counters.trade_gaps == 0


def test_depth_numbers_arrive_as_floats_and_ids_carry_over() -> None:
    (book,) = FrameDecoder().decode(frame("btcusdt@depth5@100ms", DEPTH), 1764300000210)
    assert book.bids == [(95000.0, 1.204), (94999.9, 0.5)] and book.asks[0] == (95000.1, 0.33)
    assert (book.update_id, book.prev_update_id, book.ts_ms) == (390497878, 390497794, 1764300000198)


def test_gaps_are_counted() -> None:
    dec = FrameDecoder()
    list(dec.decode(frame("s", DEPTH), 1))
    list(dec.decode(frame("s", {**DEPTH, "pu": 390497878, "u": 390497900}), 2))  # follows
    list(dec.decode(frame("s", {**DEPTH, "pu": 390497950, "u": 390497990}), 3))  # missed updates
    list(dec.decode(frame("s", AGG), 4))
    list(dec.decode(frame("s", {**AGG, "a": AGG["a"] + 3}), 5))
    assert (dec.counters.depth_gaps, dec.counters.trade_gaps) == (1, 1)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"stream":"x","data":{"e":"aggTrade"',
        frame("x", {**AGG, "p": "abc"}),
        frame("x", {**AGG, "p": "-1"}),
        frame("x", {**DEPTH, "b": [["95000.20", "1"]]}),
        frame("x", {**AGG, "e": "kline"}),
        b"[]",
    ],
)
def test_malformed_frames_raise_contract_errors_and_are_counted(raw: bytes) -> None:
    dec = FrameDecoder()
    with pytest.raises(ContractError):
        list(dec.decode(raw, 1))
    assert dec.counters.malformed == 1


def test_streams_are_routed_and_sharded() -> None:
    market, public = stream_names(["BTCUSDT", "ETHUSDT", "SOLUSDT"], "depth5@100ms")
    assert market == ["btcusdt@aggTrade", "ethusdt@aggTrade", "solusdt@aggTrade"]
    assert public[0] == "btcusdt@depth5@100ms"
    shards = shard_urls("wss://fstream.binance.com/public/stream", public, 2)
    assert [len(s) for _, s in shards] == [2, 1]
    assert (
        shards[0][0]
        == "wss://fstream.binance.com/public/stream?streams=btcusdt@depth5@100ms/ethusdt@depth5@100ms"
    )


def test_backoff_doubles_with_jitter_caps_and_resets_after_a_stable_connection() -> None:
    b = Backoff(initial=1, maximum=8, jitter=0.2, stable_after_s=60, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    b.connected_for(10)
    assert b.next_delay() >= 8 * 0.8
    b.connected_for(60)
    assert b.next_delay() <= 1.2
