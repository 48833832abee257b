"""report: follows the run's signals and orders and rewrites the summary
(``logs/report/summary_<YYYYMMDD_HHMM>_<token>.{json,md,png}``) every ``report.interval_s`` and
at stop.

Each rewrite is :class:`v13.report.live.LiveReport`'s: the report
:func:`v13.report.build_report` makes from the run's files (the orchestrator's final report, after
the other stages stopped), kept up to date from the rows added since the last rewrite.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from v13.cli import release_free_memory
from v13.contracts import ReportRow
from v13.errors import UsageError
from v13.layout import Layout
from v13.report import write_report
from v13.report.live import LiveReport
from v13.stage import StageRuntime
from v13.stages.common import add_common_args, stage_setup

__all__ = ["main", "refresh_summary"]


def refresh_summary(live: LiveReport, paths: dict[str, Path]) -> ReportRow:
    """Bring the report up to date and rewrite its summary files. Then a full garbage collection
    and the freed memory handed back: a chart's figure is a web of reference cycles, which the
    stages' raised collection thresholds (:mod:`v13.cli`) would otherwise leave to pile up,
    several MB per refresh."""
    report = live.refresh()
    write_report(report, paths, chart=live.cfg.report.chart)
    release_free_memory()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp.report_server.app", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--tail", type=Path, default=None,
                        help="the JSONL signal ready directory, e.g. ./runtime/ready/signal")  # fmt: skip
    args = parser.parse_args(argv)
    overrides = None
    if args.tail is not None:
        runtime_dir = Layout.runtime_dir_of(args.tail)
        if runtime_dir is None:
            raise UsageError(f"--tail {args.tail} must be a <runtime>/ready/signal directory")
        overrides = {"paths.runtime_dir": str(runtime_dir)}
    cfg, layout = stage_setup(args, overrides)
    # a refresh is a burst of a core every interval_s; at a lower priority it does not take
    # the CPU from the stages that keep up with the market
    os.nice(cfg.report.niceness)
    rt = StageRuntime("report", cfg, layout)
    run_id = rt.run_id
    paths = layout.summary_paths(run_id)
    rt.started(sink=cfg.signal.sink.value, summary=paths["json"])
    next_at = time.monotonic()  # the first summary at once: it is what says the stage is up

    live = LiveReport(cfg, layout, run_id)

    def refresh() -> None:
        report = refresh_summary(live, paths)
        rt.counters["in"] = report.rows
        rt.count("out")
        rt.counters["orders"] = report.orders.count

    try:
        while not rt.stopping:
            if time.monotonic() >= next_at:
                refresh()
                next_at = time.monotonic() + cfg.report.interval_s
            rt.beat()
            rt.wait(min(0.5, max(0.0, next_at - time.monotonic())))
    finally:
        refresh()
        live.close()
        rt.stopped()
    return 0
