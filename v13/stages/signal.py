"""signal: follows the feature stream from its checkpoint and writes one signal row per feature
row to the sink named by ``V13_SINK`` (else ``signal.sink``) under ``V13_OUTPUT_DIR``.

The sink's bounded queue never blocks the engine: a full queue drops the row, counts it in
``dropped`` and logs it. The input checkpoint advances only to rows the sink has made durable,
so a crash (even kill -9) loses nothing; the sink's idempotent writes absorb the replayed tail.
"""

from __future__ import annotations

import argparse
import time

from v13.checkpoint import Checkpoint
from v13.deadletter import Deadletter
from v13.reader import StreamReader
from v13.signals import SignalEngine
from v13.sinks import open_sink
from v13.stage import StageRuntime, resolve_run_id
from v13.stages.common import add_common_args, stage_setup

__all__ = ["main"]

BATCH_ROWS = 2000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp.signal_server.app", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    cfg, layout = stage_setup(args)
    run_id = resolve_run_id(layout, first_stage=False)
    rt = StageRuntime("signal", cfg, layout, run_id)
    reader = StreamReader(
        layout.preview_spool, layout.preview_ready, "feature",
        checkpoint=Checkpoint(layout.state_file("signal"), run_id),
        deadletter=Deadletter(layout.deadletter_dir, "signal", run_id),
        stem_filter=run_id,
    )  # fmt: skip
    sink = open_sink(cfg, layout, run_id)
    engine = SignalEngine(cfg, run_id)
    # reader positions by the sink sequence number up to which they may be saved, oldest first
    positions: dict[int, dict[str, list[str | int]]] = {}
    last_drop_log = 0.0
    rt.started(sink=sink.kind, queue_max=cfg.signal.queue_max)
    try:
        while not rt.stopping:
            batch = reader.poll(BATCH_ROWS)
            for _tail, feature in batch:
                if sink.put(engine.on_feature(feature)) is None:
                    rt.count("dropped")
                rt.last_event_ts_ms = feature.ts_ms
            rt.count("in", len(batch))
            if batch:
                positions[sink.last_seq] = reader.positions()
            _commit_durable(reader, sink.durable_seq, positions)
            counters = sink.counters()
            rt.counters["out"] = counters.written
            rt.counters["duplicates"] = counters.duplicates
            rt.counters["deadletter"] = reader.rejected
            rt.queue_size = counters.queue_size
            if rt.counters["dropped"] and time.monotonic() - last_drop_log >= 1.0:
                last_drop_log = time.monotonic()
                rt.log("WARNING rows dropped: sink queue full", dropped=rt.counters["dropped"])
            rt.beat()
            if not batch:
                rt.wait(0.05)
    finally:
        sink.flush(timeout=3.0)
        sink.close()
        _commit_durable(reader, sink.durable_seq, positions)
        rt.counters["out"] = sink.counters().written
        rt.stopped()
    return 0


def _commit_durable(
    reader: StreamReader, durable: int, positions: dict[int, dict[str, list[str | int]]]
) -> None:
    """Save the newest reader position whose signal rows are all durable in the sink."""
    ready = [seq for seq in positions if seq <= durable]
    if not ready:
        return
    if reader.checkpoint is not None:
        reader.checkpoint.save({"positions": positions[ready[-1]]})
    for seq in ready:
        del positions[seq]
