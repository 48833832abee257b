"""Where every file of a run lives under the work root (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from v13.config import Config

__all__ = ["Layout"]


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
    def signal_ready(self) -> Path:
        return self.runtime_dir / "ready" / "signal"

    @property
    def signal_spool(self) -> Path:
        return self.runtime_dir / "spool" / "signal"

    @property
    def signals_db(self) -> Path:
        return self.runtime_dir / "signals.db"

    @property
    def orders_file(self) -> Path:
        return self.runtime_dir / "mock_orders.jsonl"

    @property
    def health_dir(self) -> Path:
        return self.runtime_dir / "health"

    @property
    def state_dir(self) -> Path:
        return self.runtime_dir / "state"

    @property
    def deadletter_dir(self) -> Path:
        return self.artifacts_dir / "deadletter"

    @property
    def run_logs_dir(self) -> Path:
        return self.artifacts_dir / "run_logs"

    @property
    def report_dir(self) -> Path:
        return self.logs_dir / "report"

    def stage_log_dir(self, name: str) -> Path:
        return self.logs_dir / name

    def health_file(self, name: str) -> Path:
        return self.health_dir / f"{name}.json"

    def state_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"
