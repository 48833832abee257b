"""Replay sources: a recording of raw exchange frames, the project's own raw segments, or
Binance public-data aggTrades files (CSV or zip).

* a recording in the collector format of hftbacktest (:mod:`v13.sources.recording`): a file or a
  directory of ``<symbol>_<YYYYMMDD>.gz`` files, plain or gzip, written by the live harvest with
  ``source.binance.record`` or by hftbacktest's collector; replayed in arrival order through the
  same decoder, so the features equal those of the live run.
* a directory of raw segments (``<YYYYMMDD>/<SYMBOL>/{trades,book}/*.jsonl``) — trades and books
  merged in the order they were received (``recv_ts_ms``; each stream keeps its own order), as
  the harvest saw them.
* ``*.csv`` / ``*.zip`` aggTrades (agg_trade_id, price, quantity, first_trade_id, last_trade_id,
  transact_time, is_buyer_maker; header optional; ms or µs times) — trades only: there is no book,
  so book features stay empty and the signal stage gates the rows with ``no_book``.
"""

from __future__ import annotations

import bisect
import csv
import heapq
import io
import operator
import zipfile
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

from v13.config import Config
from v13.contracts import BookRow, TradeRow
from v13.deadletter import Deadletter
from v13.errors import ContractError, UsageError
from v13.layout import DataLayout
from v13.reader import StreamReader
from v13.segments import discover_tails
from v13.sources.recording import recording_files

__all__ = [
    "aggtrades_rows",
    "raw_roots",
    "raw_segment_rows",
    "raw_symbols",
    "replay_kind",
    "symbol_rows",
]

Row = TradeRow | BookRow
_RECEIVED = operator.attrgetter("recv_ts_ms")  # a C-level key: it is called per row
_US_THRESHOLD = 10**14  # epoch ms stay below this until the year 5138; µs are above it


def replay_kind(path: Path) -> str:
    """``recording``, ``raw`` or ``aggtrades``; UsageError when the path is none of them."""
    if not path.exists():
        raise UsageError(f"replay path {path} does not exist; set source.replay.path")
    if path.is_file() and path.name.lower().endswith((".csv", ".zip")):
        return "aggtrades"
    if path.is_dir() and (DataLayout(path).raw_ready.is_dir() or raw_symbols(*raw_roots(path))):
        return "raw"
    if recording_files(path):
        return "recording"
    raise UsageError(
        f"replay path {path} is not a raw segment directory, a recording ('<ns> <frame>' lines, "
        "plain or .gz, or a directory of them) or an aggTrades .csv/.zip file"
    )


def replay_path(cfg: Config, root: Path) -> Path:
    """``source.replay.path`` (a relative one from the work root ``root``), checked: UsageError when
    it is no replay source (:func:`replay_kind`)."""
    path = root / cfg.source.replay.path
    replay_kind(path)
    return path


def raw_roots(path: Path) -> tuple[Path, Path]:
    """(spool, ready) roots of raw segments under a data directory or a raw root."""
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory; pass the data directory that holds raw/")
    data = DataLayout(path)
    if data.raw_ready.is_dir():
        return data.raw_spool, data.raw_ready
    return DataLayout(path.parent).raw_spool.parent / path.name, path


def _batches(reader: StreamReader) -> Iterator[list[Any]]:
    while batch := reader.poll(20_000):
        yield [row for _tail, row in batch]


def merge_received(first: Iterator[list[Row]], second: Iterator[list[Row]]) -> Iterator[Row]:
    """The rows of two streams of batches in the order of
    ``heapq.merge(first_rows, second_rows, key=recv_ts_ms)``: the smaller head first, ``first``'s on
    a tie. That order is taken a batch at a time (a bisect and a stable sort of what comes before
    the end of the batch that runs out first); from a batch whose receive times step back on,
    row by row."""
    a: list[Row] = []
    b: list[Row] = []
    while True:
        if not a:
            a = next(first, [])
        if not b:
            b = next(second, [])
        if not a or not b:
            yield from a or b
            yield from chain.from_iterable(first if a else second)
            return
        a_keys, b_keys = list(map(_RECEIVED, a)), list(map(_RECEIVED, b))
        if not (_rising(a_keys) and _rising(b_keys)):
            rest_a, rest_b = chain(a, chain.from_iterable(first)), chain(b, chain.from_iterable(second))
            yield from heapq.merge(rest_a, rest_b, key=_RECEIVED)
            return
        if b_keys[-1] >= a_keys[-1]:  # a runs out first: b's rows below a's last come before it
            j = bisect.bisect_left(b_keys, a_keys[-1])
            yield from sorted(a + b[:j], key=_RECEIVED)
            a, b = [], b[j:]
        else:  # b runs out first: a's rows up to b's last (a first on a tie) come before it
            i = bisect.bisect_right(a_keys, b_keys[-1])
            yield from sorted(a[:i] + b, key=_RECEIVED)
            a, b = a[i:], []


def _rising(keys: list[int]) -> bool:
    return all(map(operator.le, keys, islice(keys, 1, None)))


def symbol_rows(spool: Path, ready: Path, symbol: str, deadletter: Deadletter | None) -> Iterator[Row]:
    """One symbol's trades and books merged in the order they were received."""
    trades, books = (
        _batches(
            StreamReader(spool, ready, kind, deadletter=deadletter, tails=[DataLayout.raw_tail(symbol, sub)])
        )
        for kind, sub in (("trade", "trades"), ("book", "book"))
    )
    return merge_received(trades, books)


def raw_symbols(spool: Path, ready: Path) -> list[str]:
    return sorted({t.split("/")[0] for t in discover_tails(spool, ready) if "/" in t})


def raw_segment_rows(path: Path, deadletter: Deadletter | None = None) -> Iterator[Row]:
    """Every raw row under ``path``, in the order they were received across symbols."""
    spool, ready = raw_roots(path)
    per_symbol = [symbol_rows(spool, ready, s, deadletter) for s in raw_symbols(spool, ready)]
    return heapq.merge(*per_symbol, key=_RECEIVED)


def _csv_lines(path: Path) -> Iterator[list[str]]:
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            for name in sorted(n for n in zf.namelist() if n.lower().endswith(".csv")):
                with zf.open(name) as fh:
                    yield from csv.reader(io.TextIOWrapper(fh, encoding="utf-8"))
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            yield from csv.reader(fh)


def aggtrades_rows(
    path: Path, symbol: str | None = None, deadletter: Deadletter | None = None
) -> Iterator[TradeRow]:
    """Trades of a Binance aggTrades file; the symbol comes from the file name if not given."""
    sym = (symbol or path.name.split("-")[0]).upper()
    for lineno, fields in enumerate(_csv_lines(path), 1):
        if not fields or (lineno == 1 and not fields[0].strip().isdigit()):
            continue  # blank line, or the optional header
        try:
            agg_id, price, qty, _first, _last, ts, maker = fields[:7]
            ts_ms = int(ts)
            if ts_ms > _US_THRESHOLD:
                ts_ms //= 1000
            yield TradeRow(
                ts_ms=ts_ms, recv_ts_ms=ts_ms, symbol=sym, price=float(price), qty=float(qty),
                side="sell" if maker.strip().lower() == "true" else "buy", trade_id=int(agg_id), src="replay",
            )  # fmt: skip
        except (ValueError, TypeError, ContractError) as exc:
            if deadletter is not None:
                deadletter.write(f"aggTrades row invalid: {exc}", str(path), ",".join(fields), lineno)
