"""The run summary: counts, markouts, PnL decomposition (:mod:`v13.report.build`), written as
JSON, Markdown and a chart (:mod:`v13.report.render`); ``python -m v13.report`` for a finished
run or batch files."""

from v13.report.build import (
    WARNING_CODES,
    FeaturePoint,
    build_report,
    deadletter_entries,
    feature_points,
    read_orders,
    read_signal_rows,
    report_from_rows,
    run_dropped,
)
from v13.report.render import render_chart, render_markdown, write_report

__all__ = [
    "WARNING_CODES",
    "FeaturePoint",
    "build_report",
    "deadletter_entries",
    "feature_points",
    "read_orders",
    "read_signal_rows",
    "render_chart",
    "render_markdown",
    "report_from_rows",
    "run_dropped",
    "write_report",
]
