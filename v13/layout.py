"""Where every file of a run lives under the work root (DESIGN.md section 3).

This module is the one owner of the file layout: every path, file name and glob a run uses
comes from here, so no other module rebuilds one.

Example::

    layout = Layout.from_config(cfg, root)
    layout.signals_db                      # <root>/runtime/signals.db
    layout.signal_segments().paths()       # sealed JSONL signal shards
    layout.manifest_path(run_id)           # artifacts/run_logs/run_manifest_<run_id>.json
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from v13.config import Config
from v13.errors import UsageError
from v13.segments import PART, SEALED

__all__ = ["DataLayout", "Glob", "Layout", "summary_stem"]

_RUN_ID_RE = re.compile(r"^(\d{8})T(\d{4})\d{2}Z-([0-9a-f]+)$")
_SIGNAL_READY = ("ready", "signal")


class Glob(NamedTuple):
    """A pattern under a root; ``paths()`` lists the files that match it now."""

    root: Path
    pattern: str

    def paths(self) -> list[Path]:
        return sorted(self.root.glob(self.pattern))

    def __str__(self) -> str:
        return f"{self.root}/{self.pattern}"


def summary_stem(run_id: str) -> str:
    """``summary_<YYYYMMDD_HHMM>_<token>`` of a generated run id (stamp = run start, UTC), so two
    runs started in the same minute never share a file; ``summary_<run_id>`` for any other id."""
    m = _RUN_ID_RE.match(run_id)
    if m is None:
        return f"summary_{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id)}"
    day, hhmm, token = m.groups()
    return f"summary_{day}_{hhmm}_{token}"


@dataclass(frozen=True)
class DataLayout:
    """The harvest's data directory: raw and feature segment streams, and recordings::

    <data>/raw/<YYYYMMDD>/<SYMBOL>/{trades,book}/*.jsonl    <data>/spool/raw/...      (*.part)
    <data>/preview/<YYYYMMDD>/<SYMBOL>/features/*.jsonl     <data>/spool/preview/...  (*.part)
    <data>/recordings/<run_id>/<symbol>_<YYYYMMDD>.gz       (hftbacktest's collector format)
    """

    data_dir: Path

    @property
    def raw_ready(self) -> Path:
        return self.data_dir / "raw"

    @property
    def raw_spool(self) -> Path:
        return self.data_dir / "spool" / "raw"

    @property
    def preview_ready(self) -> Path:
        return self.data_dir / "preview"

    @property
    def preview_spool(self) -> Path:
        return self.data_dir / "spool" / "preview"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    def recording_dir(self, run_id: str) -> Path:
        return self.recordings_dir / run_id

    @staticmethod
    def raw_tail(symbol: str, kind: str) -> str:
        """Stream name inside a partition: ``BTCUSDT/trades``, ``BTCUSDT/book``."""
        return f"{symbol}/{kind}"

    @staticmethod
    def feature_tail(symbol: str) -> str:
        return f"{symbol}/features"

    def raw_segments(self, kind: str = "*", symbol: str = "*") -> Glob:
        """Sealed raw segments of one kind (``trades``, ``book``) or all."""
        return Glob(self.raw_ready, f"*/{symbol}/{kind}/*{SEALED}")

    def feature_segments(self, symbol: str = "*") -> Glob:
        return Glob(self.preview_ready, f"*/{symbol}/features/*{SEALED}")

    def open_segments(self) -> Glob:
        return Glob(self.data_dir / "spool", f"**/*{PART}")


@dataclass(frozen=True)
class Layout:
    """Paths of one work root; ``Layout.from_config(cfg, root)`` resolves the configured dirs."""

    root: Path
    data_dir: Path
    runtime_dir: Path
    logs_dir: Path
    artifacts_dir: Path

    @classmethod
    def from_config(cls, cfg: Config, root: Path | None = None) -> Layout:
        base = Path.cwd() if root is None else Path(root)
        p = cfg.paths
        return cls(
            root=base,
            data_dir=base / p.data_dir,
            runtime_dir=base / p.runtime_dir,
            logs_dir=base / p.logs_dir,
            artifacts_dir=base / p.artifacts_dir,
        )

    def prepare(self, *, what: str = "--root") -> None:
        """Create the run's directories; UsageError (one line, naming the path) when the root is
        not a directory or a directory cannot be created or written."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{what} {self.root} is not a directory; pass a directory to run in")
        for directory in (self.root, self.data_dir, self.runtime_dir, self.logs_dir, self.artifacts_dir):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"{what} {self.root}: cannot create {directory}: {exc.strerror}") from None
            if not directory.is_dir():
                raise UsageError(f"{what} {self.root}: {directory} is not a directory")
            if not os.access(directory, os.W_OK | os.X_OK):
                raise UsageError(
                    f"{what} {self.root}: {directory} is not writable by this user; "
                    "pick a root you can write to"
                )

    # -- data (harvest) ------------------------------------------------------------------------
    @property
    def data(self) -> DataLayout:
        return DataLayout(self.data_dir)

    @property
    def raw_ready(self) -> Path:
        return self.data.raw_ready

    @property
    def preview_ready(self) -> Path:
        return self.data.preview_ready

    @property
    def preview_spool(self) -> Path:
        return self.data.preview_spool

    # -- runtime -------------------------------------------------------------------------------
    @property
    def signal_ready(self) -> Path:
        return self.runtime_dir.joinpath(*_SIGNAL_READY)

    @staticmethod
    def runtime_dir_of(signal_ready: Path) -> Path | None:
        """The runtime dir whose :attr:`signal_ready` is ``signal_ready``, or None if it is not one."""
        if signal_ready.parts[-2:] != _SIGNAL_READY:
            return None
        return signal_ready.parent.parent

    @property
    def signal_spool(self) -> Path:
        return self.runtime_dir / "spool" / "signal"

    def signal_segments(self) -> Glob:
        """Sealed JSONL signal shards: ``runtime/ready/signal/<YYYYMMDD>/<SYMBOL>/*.jsonl``."""
        return Glob(self.signal_ready, f"*/*/*{SEALED}")

    @property
    def signals_db(self) -> Path:
        return self.runtime_dir / "signals.db"

    @property
    def orders_file(self) -> Path:
        return self.runtime_dir / "mock_orders.jsonl"

    @property
    def positions_file(self) -> Path:
        return self.runtime_dir / "positions.json"

    @property
    def health_dir(self) -> Path:
        return self.runtime_dir / "health"

    def status_files(self) -> Glob:
        return Glob(self.health_dir, "*.json")

    @property
    def state_dir(self) -> Path:
        return self.runtime_dir / "state"

    @property
    def run_file(self) -> Path:
        """The run id that stages started by hand join (``runtime/run.json``)."""
        return self.runtime_dir / "run.json"

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the process that owns the run on this root."""
        return self.runtime_dir / "run.lock"

    def health_file(self, name: str) -> Path:
        return self.health_dir / f"{name}.json"

    def state_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def open_segments(self) -> list[Glob]:
        """Every open (``*.part``) segment of the run: harvest's and the JSONL sink's."""
        return [self.data.open_segments(), Glob(self.signal_spool, f"**/*{PART}")]

    # -- artifacts -----------------------------------------------------------------------------
    @property
    def deadletter_dir(self) -> Path:
        return self.artifacts_dir / "deadletter"

    def deadletter_stage_dir(self, stage: str) -> Path:
        return self.deadletter_dir / stage

    def deadletter_files(self, stage: str = "*") -> Glob:
        return Glob(self.deadletter_dir, f"{stage}/*.jsonl")

    @property
    def run_logs_dir(self) -> Path:
        return self.artifacts_dir / "run_logs"

    def manifest_path(self, run_id: str) -> Path:
        """``run_manifest_<run_id>.json``; a generated run id starts with its UTC start stamp."""
        return self.run_logs_dir / f"run_manifest_{run_id}.json"

    def manifests(self) -> Glob:
        return Glob(self.run_logs_dir, "run_manifest_*.json")

    # -- logs ----------------------------------------------------------------------------------
    @property
    def report_dir(self) -> Path:
        return self.logs_dir / "report"

    def summary_paths(self, run_id: str) -> dict[str, Path]:
        """The run's summary files by extension (json, md, png)."""
        stem = summary_stem(run_id)
        return {ext: self.report_dir / f"{stem}.{ext}" for ext in ("json", "md", "png")}

    def summaries(self) -> Glob:
        return Glob(self.report_dir, "summary_*.json")

    @property
    def orchestrator_log(self) -> Path:
        return self.logs_dir / "orchestrator" / "orchestrator.log"

    def stage_log_dir(self, name: str) -> Path:
        return self.logs_dir / name

    def stage_stdout(self, name: str) -> Path:
        return self.stage_log_dir(name) / "stdout.log"

    def stage_stderr(self, name: str) -> Path:
        return self.stage_log_dir(name) / "stderr.log"
