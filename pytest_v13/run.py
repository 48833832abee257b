"""What the ``v13_run`` fixture yields: the orchestrator's result plus independent views of the
run's files (read directly, without the v13 readers, so the checks are a real recount)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from orchestrator.api import RunResult
from pytest_v13.thresholds import Thresholds

__all__ = ["V13Run"]


@dataclass
class V13Run:
    sink: str
    result: RunResult
    thresholds: Thresholds

    @property
    def root(self) -> Path:
        return self.result.root

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return orjson.loads(self.result.manifest_path.read_bytes())

    @cached_property
    def report_json(self) -> dict[str, Any]:
        return orjson.loads(Path(self.result.report_paths["json"]).read_bytes())

    @cached_property
    def signal_rows(self) -> list[dict[str, Any]]:
        """Every signal row of this run, straight from the sink's files."""
        layout = self.result.layout
        if self.sink == "sqlite":
            with closing(sqlite3.connect(f"file:{layout.signals_db}?mode=ro", uri=True)) as conn:
                conn.row_factory = sqlite3.Row
                rows = conn.execute("SELECT * FROM signals WHERE run_id = ?", (self.run_id,)).fetchall()
                return [dict(r) for r in rows]
        out = []
        for path in layout.signal_segments().paths():
            for line in path.read_bytes().splitlines():
                row = orjson.loads(line)
                if row.get("run_id") == self.run_id:
                    out.append(row)
        return out

    @cached_property
    def orders(self) -> list[dict[str, Any]]:
        path = self.result.layout.orders_file
        if not path.exists():
            return []
        rows = (orjson.loads(line) for line in path.read_bytes().splitlines())
        return [r for r in rows if r.get("run_id") == self.run_id]

    def jsonl_shards(self) -> list[Path]:
        return self.result.layout.signal_segments().paths()

    def stderr_logs(self) -> dict[str, Path]:
        return {name: self.result.layout.stage_stderr(name) for name in self.result.children}

    def log_tail(self, name: str, lines: int = 30) -> str:
        layout = self.result.layout
        path = layout.orchestrator_log if name == "orchestrator" else layout.stage_stderr(name)
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {path})"
