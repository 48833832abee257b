"""Argument handling shared by the stage shells."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from v13.config import Config, load_config
from v13.errors import UsageError
from v13.layout import Layout

__all__ = ["add_common_args", "parse_symbols", "stage_setup"]


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="config file (default: config/defaults.yaml)")
    parser.add_argument("--root", type=Path, default=None, help="work root (default: current directory)")


def parse_symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    bad = [s for s in symbols if not s.isalnum()]
    if not symbols or bad:
        raise UsageError(f"--symbols {text!r} must be comma-separated symbols such as BTCUSDT,ETHUSDT")
    return symbols


def stage_setup(
    args: argparse.Namespace, overrides: Mapping[str, object] | None = None
) -> tuple[Config, Layout]:
    cfg = load_config(args.config, overrides=overrides)
    return cfg, Layout.from_config(cfg, args.root)
