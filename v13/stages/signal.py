"""signal: follows the feature stream from its checkpoint and writes one signal row per feature
row to the sink named by ``V13_SINK`` (else ``signal.sink``) under ``V13_OUTPUT_DIR``.

The sink's bounded queue never blocks the engine: a full queue drops the row, counts it in
``dropped`` and logs it. The input checkpoint advances only to rows the sink has made durable,
so a crash (even kill -9) loses nothing; the sink's idempotent writes absorb the replayed tail.

The sink is checked every loop: a failed writer, or a sink file deleted, replaced or made
unwritable, ends the stage with exit code 1 and the reason in its status file, so the
supervisor restarts it. On start, a sink that holds less of this run than the checkpoint says
was written (its file was deleted) makes the stage signal the run again from its start.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import msgspec

from v13.checkpoint import Checkpoint, StreamPositions
from v13.config import Config
from v13.deadletter import Deadletter
from v13.errors import StageFailure
from v13.fsutil import now_ms
from v13.layout import Layout
from v13.reader import StreamReader
from v13.signals import SignalEngine
from v13.sinks import SignalSink, open_sink
from v13.stage import StageRuntime
from v13.stages.common import add_common_args, stage_setup
from v13.watch import ChangeWatch

__all__ = ["SignalState", "main"]

BATCH_ROWS = 2000


class SignalState(msgspec.Struct, forbid_unknown_fields=True):
    """The signal stage's checkpoint: reader positions, and the last signal ts_ms per symbol
    that the sink holds durably at those positions."""

    positions: StreamPositions = msgspec.field(default_factory=dict)
    last_ts: dict[str, int] = msgspec.field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp.signal_server.app", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    cfg, layout = stage_setup(args)
    rt = StageRuntime("signal", cfg, layout)
    try:
        run(rt, cfg, layout)
    except StageFailure as exc:
        return rt.fail(str(exc))
    finally:
        rt.stopped()
    return 0


def run(rt: StageRuntime, cfg: Config, layout: Layout) -> None:
    """Signal until stopped; StageFailure when the sink cannot take rows any more."""
    run_id = rt.run_id
    checkpoint = Checkpoint(layout.state_file("signal"), run_id, warn=rt.log)
    saved = checkpoint.load(SignalState) or SignalState()
    sink = open_sink(cfg, layout, run_id)
    lost = {s: ts for s, ts in saved.last_ts.items() if sink.last_ts.get(s, -1) < ts}
    if lost:
        rt.log("WARNING the sink lost rows of this run (its file was deleted or replaced): "
               "signalling the run again from its start", symbols=",".join(sorted(lost)))  # fmt: skip
        saved = SignalState()
    deadletter = Deadletter(layout.deadletter_stage_dir("signal"), "signal", run_id)
    reader = StreamReader(
        layout.preview_spool, layout.preview_ready, "feature",
        positions=saved.positions, deadletter=deadletter, stem_filter=run_id,
    )  # fmt: skip
    engine = SignalEngine(cfg, run_id)
    watch = ChangeWatch([layout.preview_spool, layout.preview_ready])
    changed: set[Path] | None = None
    last_ts = dict(saved.last_ts)
    # checkpoint states by the sink sequence number up to which they may be saved, oldest first
    pending: dict[int, SignalState] = {}
    last_drop_log = 0.0
    rt.started(sink=sink.kind, queue_max=cfg.signal.queue_max)
    while not rt.stopping:
        sink.check()
        poll_ms = now_ms()
        batch = reader.poll(BATCH_ROWS, changed)
        signals = [engine.on_feature(feature) for _tail, feature in batch]
        taken = sink.put_many(signals)
        for row in signals[:taken]:
            last_ts[row.symbol] = row.ts_ms
        rt.count("in", len(batch))
        if batch:
            rt.count("dropped", len(signals) - taken)
            rt.last_event_ts_ms = batch[-1][1].ts_ms
            pending[sink.last_seq] = SignalState(reader.positions(), dict(last_ts))
        _commit_durable(checkpoint, sink.durable_seq, pending)
        _report(rt, sink, reader)
        rt.caught_up_at(poll_ms if not batch and sink.durable_seq == sink.last_seq else None)
        if rt.counters["dropped"] and time.monotonic() - last_drop_log >= 1.0:
            last_drop_log = time.monotonic()
            rt.log("WARNING rows dropped: sink queue full", dropped=rt.counters["dropped"])
        rt.beat()
        # wake on the next feature row (or a periodic look); after rows, read on at once
        changed = watch.wait(stop=rt.stop_event) if not batch else set()
    watch.close()
    sink.flush(timeout=3.0)
    sink.close()
    _commit_durable(checkpoint, sink.durable_seq, pending, final=True)
    _report(rt, sink, reader)


def _report(rt: StageRuntime, sink: SignalSink, reader: StreamReader) -> None:
    counters = sink.counters()
    rt.counters["out"] = counters.written
    rt.counters["duplicates"] = counters.duplicates
    rt.counters["deadletter"] = reader.rejected
    rt.queue_size = counters.queue_size


def _commit_durable(
    checkpoint: Checkpoint, durable: int, pending: dict[int, SignalState], *, final: bool = False
) -> None:
    """Save the newest checkpoint state whose signal rows are all durable in the sink, when a
    save is due (or at the end)."""
    ready = [seq for seq in pending if seq <= durable]
    if not ready or not (final or checkpoint.due()):
        return
    checkpoint.save(pending[ready[-1]])
    for seq in ready:
        del pending[seq]
