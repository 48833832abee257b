"""The run manifest as documented in docs/orchestrator_smoke.md ("The run manifest"), as a strict
schema: every documented field, its type, nothing else."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ChildEntry", "Manifest", "decode_manifest"]

Status = Literal[
    "completed", "degraded", "early_stop", "failed",
    "interrupted_SIGHUP", "interrupted_SIGINT", "interrupted_SIGTERM",
]  # fmt: skip


class ChildEntry(msgspec.Struct, forbid_unknown_fields=True):
    argv: list[str]
    env_keys: list[str]
    status: Literal["stopped", "degraded"]
    degraded_reason: str | None
    pids: list[int]
    start_ts_ms: list[int]
    ready_ts_ms: list[int]
    stop_ts_ms: list[int]
    restarts: int
    exit_codes: list[int | None]
    stop_how: list[str]
    peak_rss_mb: float
    peak_open_files: int
    last_findings: list[str]


class ConfigEntry(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    sha256: str


class HealthEntry(msgspec.Struct, forbid_unknown_fields=True):
    ticks: int
    last: dict[str, Any] | None


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    run_id: str
    status: Status
    exit_code: int
    ended_by: Literal["time", "drained", "stop", "signal", "early_stop", "error"]
    started_at: str
    updated_at: str
    config: ConfigEntry
    cli_args: dict[str, Any]
    enabled: list[str]
    sink: Literal["jsonl", "sqlite"]
    symbols: list[str]
    children: dict[str, ChildEntry]
    health: HealthEntry
    early_stop: list[str]
    report_paths: dict[str, str]
    versions: dict[str, str | int]


def decode_manifest(data: bytes) -> Manifest:
    """Raises msgspec.ValidationError / DecodeError naming the first field that breaks the schema."""
    return msgspec.json.decode(data, type=Manifest)
