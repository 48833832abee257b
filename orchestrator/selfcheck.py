"""``--enable`` empty: check that a run could start (config, writable dirs, deps, disk) and exit."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from v13.config import Config
from v13.layout import Layout

__all__ = ["CheckResult", "self_check"]

MIN_FREE_MB = 500
MODULES = ("yaml", "pydantic", "psutil", "pandas", "numpy", "orjson", "msgspec", "matplotlib")


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def self_check(cfg: Config, layout: Layout) -> list[CheckResult]:
    out = [CheckResult("config", True, f"{cfg.source_path} is valid")]
    for label, path in (("data_dir", layout.data_dir), ("runtime_dir", layout.runtime_dir),
                        ("logs_dir", layout.logs_dir), ("artifacts_dir", layout.artifacts_dir)):  # fmt: skip
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path):
                pass
            out.append(CheckResult(label, True, f"{path} is writable"))
        except OSError as exc:
            out.append(CheckResult(label, False, f"{path} is not writable: {exc}"))
    for module in MODULES:
        try:
            importlib.import_module(module)
            out.append(CheckResult(f"import {module}", True, "ok"))
        except ImportError as exc:
            out.append(CheckResult(f"import {module}", False, f"{exc}; run: python -m pip install -e ."))
    free_mb = shutil.disk_usage(Path(layout.root)).free / 2**20
    out.append(CheckResult("disk", free_mb >= MIN_FREE_MB, f"{free_mb:,.0f} MB free (need {MIN_FREE_MB})"))
    return out
