"""broker (mock): follows the signal sink (JSONL or SQLite, whichever is configured) and places
paper orders, appended as contract ``order`` rows to ``runtime/mock_orders.jsonl``.

Only ``--mock 1`` exists: this broker never talks to an exchange. The reader position and the
account state are saved together in one checkpoint after the orders are written (at most every
``Checkpoint.every_s`` while busy, and at stop); order ids are deterministic, so a restart that
replays the tail does not append an order twice.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import msgspec
import orjson

from v13.broker import Book, Broker
from v13.checkpoint import Checkpoint
from v13.config import Config
from v13.contracts import encode_row
from v13.deadletter import Deadletter
from v13.errors import UsageError
from v13.fsutil import atomic_write_json, now_ms
from v13.layout import Layout
from v13.sinks import ReaderState, open_signal_reader
from v13.stage import StageRuntime
from v13.stages.common import add_common_args, stage_setup

__all__ = ["BrokerState", "main", "orders_of_run"]

BATCH_ROWS = 2000


def orders_of_run(path: Path, run_id: str) -> list[dict[str, object]]:
    """The order rows of one run in ``mock_orders.jsonl`` (complete lines only)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("run_id") == run_id:
            out.append(doc)
    return out


def _repair_tail(path: Path) -> None:
    """Cut a torn last line left by a crash, so the next append starts on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


class BrokerState(msgspec.Struct, forbid_unknown_fields=True):
    """The broker's checkpoint: where it is in the sink, and the account, saved together."""

    reader: ReaderState = msgspec.field(default_factory=ReaderState)
    books: dict[str, Book] = msgspec.field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp.broker_gateway_server.app", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--mock", default=None, help="must be 1: orders are simulated, never sent")
    args = parser.parse_args(argv)
    if args.mock != "1":
        raise UsageError(
            f"--mock {args.mock!r} is not supported: only the mock broker exists (pass --mock 1); "
            "use PAPER_ENABLE=1 for paper positions"
        )
    cfg, layout = stage_setup(args)
    rt = StageRuntime("broker", cfg, layout)
    try:
        run(rt, cfg, layout)
    finally:
        rt.stopped()
    return 0


def run(rt: StageRuntime, cfg: Config, layout: Layout) -> None:
    run_id = rt.run_id
    checkpoint = Checkpoint(layout.state_file("broker"), run_id, warn=rt.log)
    saved = checkpoint.load(BrokerState) or BrokerState()
    broker = Broker(cfg.broker, run_id, saved.books)
    reader = open_signal_reader(
        cfg,
        layout,
        run_id,
        state=saved.reader,
        deadletter=Deadletter(layout.deadletter_stage_dir("broker"), "broker", run_id),
    )
    orders_path = layout.orders_file
    orders_path.parent.mkdir(parents=True, exist_ok=True)
    _repair_tail(orders_path)
    known = {str(o["order_id"]) for o in orders_of_run(orders_path, run_id)}
    rt.count("out", len(known))
    last_positions = 0.0
    watch = reader.change_watch()
    changed: set[Path] | None = None
    unsaved = False  # rows handled since the last checkpoint save
    rt.started(sink=cfg.signal.sink.value, mode="paper" if broker.paper else "mock")
    with open(orders_path, "ab") as out:
        try:
            while not rt.stopping:
                poll_ms = now_ms()
                batch = reader.poll(BATCH_ROWS, changed)
                lines = []
                for sig in batch:
                    order = broker.on_signal(sig)
                    rt.last_event_ts_ms = sig.ts_ms
                    if order is None or order.order_id in known:
                        continue
                    known.add(order.order_id)
                    lines.append(encode_row(order) + b"\n")
                    rt.count("out")
                    rt.count(order.side.lower())
                if lines:
                    out.write(b"".join(lines))
                    out.flush()
                    os.fsync(out.fileno())
                unsaved = unsaved or bool(batch)
                if unsaved and checkpoint.due():
                    checkpoint.save(BrokerState(reader.state(), broker.books))
                    unsaved = False
                rt.count("in", len(batch))
                rt.counters["deadletter"] = reader.rejected
                rt.caught_up_at(None if batch else poll_ms)
                if time.monotonic() - last_positions >= 1.0:
                    last_positions = time.monotonic()
                    _write_positions(layout.positions_file, broker, run_id)
                rt.beat()
                # wake on the next signal row (or a periodic look); after rows, read on at once
                changed = watch.wait(stop=rt.stop_event) if not batch else set()
        finally:
            watch.close()
            if unsaved:
                checkpoint.save(BrokerState(reader.state(), broker.books))
            _write_positions(layout.positions_file, broker, run_id)
            reader.close()


def _write_positions(path: Path, broker: Broker, run_id: str) -> None:
    atomic_write_json(
        path,
        {
            "run_id": run_id,
            "mode": "paper" if broker.paper else "mock",
            "ts_ms": now_ms(),
            **broker.totals(),
            "symbols": msgspec.to_builtins(broker.books),
        },
    )
