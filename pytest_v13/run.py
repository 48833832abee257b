"""What the ``v13_run`` fixture yields: the evidence of one finished stack run, gathered by the
plugin itself: the orchestrator's exit code and output, the stage processes as the plugin
sampled them, and the run's files read directly (sqlite3, orjson) without the v13 readers.

Paths come from :class:`v13.layout.Layout` (the one owner of the file layout); the layout check
(dod06) holds the files against the layout documented in DESIGN.md instead.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from pytest_v13.stack import StackProcess
from pytest_v13.thresholds import Thresholds
from v13.config import Config
from v13.layout import Layout

__all__ = ["V13Run"]

Row = dict[str, Any]


def _json_lines(path: Path) -> list[Any]:
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            out.append(orjson.loads(line))
    return out


@dataclass
class V13Run:
    sink: str
    process: StackProcess
    config: Config
    thresholds: Thresholds
    docs_root: Path  # where docs/api_contracts.md is: the project the tests belong to

    @property
    def root(self) -> Path:
        return self.process.root

    @cached_property
    def layout(self) -> Layout:
        return Layout.from_config(self.config, self.root)

    @cached_property
    def run_id(self) -> str:
        """The run id every stage process was given (V13_RUN_ID in its environment)."""
        ids = {env.get("V13_RUN_ID") for s in self.process.stages.values() for env in s.environ.values()}
        ids.discard(None)
        if len(ids) != 1:
            raise AssertionError(f"the stage processes do not share one V13_RUN_ID: {sorted(map(str, ids))}")
        return str(ids.pop())

    # -- files the orchestrator writes -----------------------------------------------------------
    @cached_property
    def manifest_path(self) -> Path:
        paths = self.layout.manifests().paths()
        if len(paths) != 1:
            raise AssertionError(f"expected one run manifest in {self.layout.run_logs_dir}, found {paths}")
        return paths[0]

    @cached_property
    def manifest(self) -> Row:
        doc = orjson.loads(self.manifest_path.read_bytes())
        assert isinstance(doc, dict), f"{self.manifest_path} is not a JSON object"
        return doc

    @cached_property
    def report_paths(self) -> dict[str, Path]:
        return self.layout.summary_paths(self.run_id)

    @cached_property
    def report_json(self) -> Row:
        doc = orjson.loads(self.report_paths["json"].read_bytes())
        assert isinstance(doc, dict), f"{self.report_paths['json']} is not a JSON object"
        return doc

    @cached_property
    def events(self) -> list[Row]:
        """The orchestrator's events of this run."""
        return [e for e in _json_lines(self.layout.orchestrator_log) if e.get("run_id") == self.run_id]

    # -- files the stages write ------------------------------------------------------------------
    @cached_property
    def signal_rows(self) -> list[Row]:
        """Every signal row of this run, straight from the sink's files."""
        if self.sink == "sqlite":
            uri = f"file:{self.layout.signals_db}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True)) as conn:
                conn.row_factory = sqlite3.Row
                rows = conn.execute("SELECT * FROM signals WHERE run_id = ?", (self.run_id,)).fetchall()
                return [dict(r) for r in rows]
        return [r for p in self.jsonl_shards() for r in _json_lines(p) if r.get("run_id") == self.run_id]

    def jsonl_shards(self) -> list[Path]:
        return self.layout.signal_segments().paths()

    @cached_property
    def feature_lines(self) -> list[bytes]:
        """Every feature row line the harvest wrote in this run (its segments carry the run id)."""
        paths = [p for p in self.layout.data.feature_segments().paths() if self.run_id in p.name]
        return [line for p in paths for line in p.read_bytes().splitlines() if line.strip()]

    @cached_property
    def deadletter(self) -> list[Row]:
        return [e for p in self.layout.deadletter_files().paths() for e in _json_lines(p)]

    @cached_property
    def orders(self) -> list[Row]:
        path = self.layout.orders_file
        return [r for r in _json_lines(path) if r.get("run_id") == self.run_id] if path.exists() else []

    def status(self, name: str) -> Row:
        doc = orjson.loads(self.layout.health_file(name).read_bytes())
        assert isinstance(doc, dict)
        return doc

    # -- logs ------------------------------------------------------------------------------------
    def stderr_logs(self) -> dict[str, Path]:
        return {name: self.layout.stage_stderr(name) for name in self.process.stages}

    def log_tail(self, name: str, lines: int = 30) -> str:
        if name == "orchestrator":
            path = self.process.output
        elif name == "events":
            path = self.layout.orchestrator_log
        else:
            path = self.layout.stage_stderr(name)
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {path})"
