"""Library utilities: ``python -m v13 check-config [--config F]``, ``python -m v13 contracts-doc``."""

from __future__ import annotations

import argparse
import sys

from v13.cli import run_main
from v13.config import load_config
from v13.contracts import render_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m v13", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a config file and print what it resolves to")
    check.add_argument("--config", default=None, help="YAML file (default: config/defaults.yaml)")
    sub.add_parser("contracts-doc", help="print docs/api_contracts.md, generated from the contracts")
    args = parser.parse_args(argv)
    if args.command == "contracts-doc":
        sys.stdout.write(render_markdown())
        return 0
    cfg = load_config(args.config)
    print(f"config OK: {cfg.source_path}")
    print(f"  symbols: {','.join(cfg.symbols)}")
    print(f"  source: {cfg.source.kind.value}  sink: {cfg.signal.sink.value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("python -m v13", main))
