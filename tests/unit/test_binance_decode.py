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


def test_a_frame_that_fails_validation_moves_no_counter_and_no_id_chain() -> None:
    dec = FrameDecoder()
    dec.decode(frame("btcusdt@aggTrade", {**AGG, "a": 10}), 1)
    with pytest.raises(ContractError):
        dec.decode(frame("btcusdt@aggTrade", {**AGG, "a": 999, "p": "-1"}), 2)  # decodes, fails the contract
    dec.decode(frame("btcusdt@aggTrade", {**AGG, "a": 11}), 3)
    c = dec.counters
    assert (c.trade_gaps, c.malformed, c.trades, c.frames) == (0, 1, 2, 2)


def test_trade_stream_ids_are_chained_too() -> None:
    dec = FrameDecoder()
    trade = {
        "e": "trade",
        "E": 5,
        "T": 4,
        "s": "BTCUSDT",
        "t": 7,
        "p": "1.5",
        "q": "2",
        "X": "MARKET",
        "m": False,
    }
    (row,) = dec.decode(frame("btcusdt@trade", trade), 6)
    dec.decode(frame("btcusdt@trade", {**trade, "t": 9}), 7)
    assert (row.trade_id, row.side, dec.counters.trade_gaps) == (7, "buy", 1)


def test_book_ticker_frames_are_counted_and_give_no_rows() -> None:
    dec = FrameDecoder()
    ticker = {
        "e": "bookTicker",
        "u": 1,
        "s": "BTCUSDT",
        "b": "1",
        "B": "1",
        "a": "2",
        "A": "1",
        "T": 1,
        "E": 1,
    }
    assert dec.decode(frame("btcusdt@bookTicker", ticker), 2) == []
    assert dec.counters.book_tickers == 1


def diff(u: int, pu: int, bids=(), asks=(), first: int | None = None, ts: int = 100) -> bytes:
    data = {"e": "depthUpdate", "E": ts, "T": ts, "s": "BTCUSDT", "U": pu + 1 if first is None else first,
            "u": u, "pu": pu, "b": [list(map(str, b)) for b in bids],
            "a": [list(map(str, a)) for a in asks]}  # fmt: skip
    return frame("btcusdt@depth@100ms", data)


def snapshot(last: int, bids, asks) -> bytes:
    return orjson.dumps({"lastUpdateId": last, "E": 50, "T": 50, "bids": [list(map(str, b)) for b in bids],
                         "asks": [list(map(str, a)) for a in asks]})  # fmt: skip


def connected(conn: str, *streams: str) -> bytes:
    return orjson.dumps({"v13": "connected", "conn": conn, "streams": list(streams)})


def test_a_diff_book_follows_binance_sync_rules() -> None:
    dec = FrameDecoder(levels=2)
    assert dec.decode(connected("c1", "btcusdt@depth@100ms"), 1) == []
    assert dec.snapshot_requests == {"BTCUSDT"}
    assert dec.decode(diff(20, 10, bids=[(99.0, 1)]), 2) == []  # before the snapshot: buffered
    assert dec.decode(diff(30, 20, asks=[(101.0, 2)]), 3) == []
    # the snapshot at 25: the event ending at 20 is older (dropped), the one covering 25 applies
    (row,) = dec.decode(snapshot(25, [(100.0, 1), (98.0, 1)], [(102.0, 1)]), 4, "BTCUSDT")
    assert row.bids == [(100.0, 1.0), (98.0, 1.0)] and row.asks == [(101.0, 2.0), (102.0, 1.0)]
    assert dec.snapshot_requests == set()
    (row,) = dec.decode(diff(40, 30, bids=[(100.0, 0), (100.5, 3)]), 5)  # 0 removes a level
    assert row.bids == [(100.5, 3.0), (98.0, 1.0)] and row.update_id == 40
    (reset,) = dec.decode(diff(60, 50, bids=[(1.0, 1)]), 6)  # pu 50 is not 40: the chain broke
    assert reset.reset and reset.bids == [] and dec.counters.resyncs == 1
    assert dec.snapshot_requests == {"BTCUSDT"}
    assert dec.decode(diff(70, 60), 7) == []  # waits for the new snapshot
    # the new snapshot at 60: the buffered event ending at 60 is applied again (absolute
    # quantities), the one after it joins at pu == 60
    (row,) = dec.decode(snapshot(60, [(97.0, 1), (1.0, 1)], [(103.0, 1)]), 8, "BTCUSDT")
    assert row.bids == [(97.0, 1.0), (1.0, 1.0)] and row.update_id == 70
    assert dec.counters.stale_snapshots == 0 and dec.counters.resyncs == 1


def test_a_snapshot_older_than_the_stream_is_counted_and_asked_for_again() -> None:
    dec = FrameDecoder()
    dec.decode(connected("c1", "btcusdt@depth@100ms"), 1)
    dec.decode(diff(40, 30, first=35), 2)
    dec.snapshot_requests.clear()
    assert dec.decode(snapshot(20, [(1.0, 1)], [(2.0, 1)]), 3, "BTCUSDT") == []
    assert dec.counters.stale_snapshots == 1 and dec.snapshot_requests == {"BTCUSDT"}


def test_a_reconnect_resets_the_book_once_per_connection_even_split_over_symbol_files() -> None:
    dec = FrameDecoder()
    dec.decode(connected("c1", "btcusdt@depth5@100ms", "ethusdt@depth5@100ms"), 1)
    dec.decode(frame("btcusdt@depth5@100ms", DEPTH), 2)
    # a recording splits the reopen over the two symbols' files: same receive time
    rows = dec.decode(connected("c1", "btcusdt@depth5@100ms"), 9) + dec.decode(
        connected("c1", "ethusdt@depth5@100ms"), 9
    )
    assert dec.counters.reconnects == 1
    assert [(r.symbol, r.reset, r.ts_ms) for r in rows] == [
        ("BTCUSDT", True, DEPTH["T"])
    ]  # only a known book
    dec.decode(frame("btcusdt@depth5@100ms", {**DEPTH, "pu": 1, "u": 2}), 10)
    assert dec.counters.depth_gaps == 0  # the chain starts over after a reconnect


def test_a_control_line_or_snapshot_that_does_not_validate_is_malformed() -> None:
    dec = FrameDecoder()
    for raw, symbol in ((b'{"v13":"connected"}', None), (b'{"v13":"reopened","conn":"c","streams":[]}', None),
                        (snapshot(1, [(1.0, 1)], [(2.0, 1)]), None)):  # fmt: skip
        with pytest.raises(ContractError):
            dec.decode(raw, 1, symbol)
    assert dec.counters.malformed == 3
