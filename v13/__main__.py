"""Library utilities::

python -m v13 init [DIR]              write DIR/config/defaults.yaml, an editable copy of the defaults
python -m v13 check-config [--config F]
python -m v13 contracts-doc           print docs/api_contracts.md
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from v13.cli import run_main
from v13.config import DEFAULT_CONFIG_PATH, load_config, packaged_defaults
from v13.contracts import render_markdown
from v13.errors import UsageError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m v13", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write an editable copy of the defaults: DIR/config/defaults.yaml")
    init.add_argument("dir", nargs="?", type=Path, default=Path("."), help="work root (default: .)")
    init.add_argument("--force", action="store_true", help="replace an existing config/defaults.yaml")
    check = sub.add_parser("check-config", help="validate a config file and print what it resolves to")
    check.add_argument("--config", default=None, help="YAML file (default: config/defaults.yaml)")
    sub.add_parser("contracts-doc", help="print docs/api_contracts.md, generated from the contracts")
    args = parser.parse_args(argv)
    if args.command == "init":
        return _init(args.dir, force=args.force)
    if args.command == "contracts-doc":
        sys.stdout.write(render_markdown())
        return 0
    cfg = load_config(args.config)
    print(f"config OK: {cfg.source_path}")
    print(f"  symbols: {','.join(cfg.symbols)}")
    print(f"  source: {cfg.source.kind.value}  sink: {cfg.signal.sink.value}")
    return 0


def _init(root: Path, *, force: bool) -> int:
    target = root / DEFAULT_CONFIG_PATH
    if target.exists() and not force:
        raise UsageError(f"{target} exists already; edit it, or pass --force to replace it with the defaults")
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(packaged_defaults(), target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    print(f"wrote {target}: runs started in {root} use it (edit it, or pass --config elsewhere)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("python -m v13", main))
