"""Mutations of the stack for the DoD mutation suite (tests/integration/test_acceptance_breaks.py).

Copied into a directory with ``mutations.json`` (the DoD items to break) and put first on the
orchestrator's PYTHONPATH; Python imports this module at start-up. In the orchestrator it patches
the orchestrator and hands the directory on to the stages (PYTHONPATH is whitelisted), where it
patches the stage. Each mutation breaks exactly one DoD item; production code has no test hooks.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ACTIVE = set(json.loads((HERE / "mutations.json").read_text()))
ARGV = " ".join(sys.orig_argv)


def _orchestrator() -> None:
    import orchestrator.api as api
    import orchestrator.events as events
    import orchestrator.spec as spec
    import v13.report as report
    import v13.report.render as render

    real_env = spec.child_env

    def child_env(run_id: str, whitelist: dict[str, str]) -> dict[str, str]:
        env = real_env(run_id, whitelist)
        env["PYTHONPATH"] = f"{HERE}:{env['PYTHONPATH']}"  # the stages load these mutations too
        if "dod07" in ACTIVE:
            env["V13_LEAKED_SECRET"] = "1"  # the whitelist broken
        return env

    spec.child_env = child_env

    if "dod05" in ACTIVE:  # the Markdown report loses its strong_ratio row
        real_md = render.render_markdown
        render.render_markdown = lambda r: "\n".join(
            line for line in real_md(r).splitlines() if "| strong_ratio |" not in line
        )

    if "dod13" in ACTIVE:  # the manifest's exit_code becomes a string
        real_manifest = api.build_manifest

        def build_manifest(*args: Any) -> dict[str, Any]:
            doc = real_manifest(*args)
            doc["exit_code"] = str(doc["exit_code"])
            return doc

        api.build_manifest = build_manifest

    if "dod14" in ACTIVE:  # the broker's Ready event is never logged
        real_emit = events.EventLog.emit

        def emit(self: Any, event: str, **fields: Any) -> dict[str, Any]:
            if event == "Ready" and fields.get("name") == "broker":
                return {}
            return real_emit(self, event, **fields)

        events.EventLog.emit = emit  # type: ignore[method-assign]

    real_build = report.build_report  # the orchestrator imports it when it builds the report

    @functools.wraps(real_build)
    def build_report(*args: Any, **kwargs: Any) -> Any:
        r = real_build(*args, **kwargs)
        if "dod15" in ACTIVE:  # the last five minutes lose their first minute
            r.last_5min.per_minute = r.last_5min.per_minute[1:]
        if "dod16" in ACTIVE:  # one buy too many
            r.buy_count += 1
        return r

    report.build_report = build_report


def _broker() -> None:
    import v13.broker as broker

    marker = HERE / "dod01.crashed"
    real = broker.Broker.on_signal
    calls = 0

    def on_signal(self: Any, sig: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 30 and not marker.exists():
            marker.touch()
            raise RuntimeError("mutation dod01: the broker crashes once")
        return real(self, sig)

    broker.Broker.on_signal = on_signal  # type: ignore[method-assign]


def _signal() -> None:
    import v13.sinks.base as base
    import v13.sinks.sqlite as sqlite

    if "dod08" in ACTIVE:  # the table's columns in another order than the contract's
        columns = list(sqlite.COLUMNS)
        columns.insert(0, columns.pop())
        sqlite._CREATE = (
            "CREATE TABLE IF NOT EXISTS signals ("
            + ", ".join(sqlite._column(c, sqlite._HINTS[c]) for c in columns)
            + ", PRIMARY KEY (run_id, symbol, ts_ms))"
        )
    if "dod09" in ACTIVE:  # every 25th row vanishes without being counted
        real_put_many = base.SignalSink.put_many
        calls = 0

        def put_many(self: Any, rows: Any) -> int:
            nonlocal calls
            kept = []
            for row in rows:
                calls += 1
                if calls % 25 == 0:
                    kept.append(None)  # a place in the sequence, and no row
                else:
                    kept.append(row)
            taken = 0
            for row in kept:
                if row is None:
                    with self._cond:
                        self._seq += 1
                    taken += 1
                elif real_put_many(self, (row,)) == 1:
                    taken += 1
                else:
                    break
            return taken

        base.SignalSink.put_many = put_many  # type: ignore[method-assign]


def _harvest() -> None:
    import msgspec

    import v13.streams as streams
    from v13.contracts import FeatureRow

    real_encode = streams.encode_row
    features = 0

    def encode_row(row: Any) -> bytes:
        nonlocal features
        line = real_encode(row)
        if isinstance(row, FeatureRow):
            features += 1
            if features == 20:  # one feature row breaks its contract
                doc = msgspec.json.decode(line)
                doc["ofi"] = "not-a-number"
                return msgspec.json.encode(doc)
        return line

    streams.encode_row = encode_row


if "orchestrator.run" in ARGV:
    _orchestrator()
elif "mcp.broker_gateway_server.app" in ARGV and "dod01" in ACTIVE:
    _broker()
elif "mcp.signal_server.app" in ARGV:
    _signal()
elif "mcp.harvest_server.app" in ARGV and "dod12" in ACTIVE:
    _harvest()
