"""Build the run summary (counts, markouts, edge against cost, PnL decomposition) from files.

Examples::

    python -m v13.report --root RUN_ROOT                  # a finished run: rewrites its summary
    python -m v13.report --root RUN_ROOT --out compare/   # ... or writes it elsewhere
    python -m v13.report --features features.jsonl --signals signals.jsonl --out out/   # batch files

With ``--root`` the run is the one of the root's manifest (``--run-id`` picks one of several);
its config and sink come from the manifest. With ``--features`` (a JSONL file of feature rows, or
a data directory holding ``preview/``) and ``--signals`` (a JSONL file of signal rows, e.g. from
``python -m v13.signals``), ``--orders`` adds the broker's orders. It prints the edge table.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import orjson

from v13.cli import run_main
from v13.config import Config, default_config_path, load_config
from v13.contracts import FeatureRow, OrderRow, ReportRow, SignalRow, decode_row
from v13.errors import ConfigError, ContractError, UsageError
from v13.layout import Layout, summary_stem
from v13.report.build import FeaturePoint, build_report, report_from_rows
from v13.report.render import write_report
from v13.segments import SegmentFollower, discover_tails


def _manifest(root: Path, run_id: str | None) -> dict[str, object]:
    found = Layout.from_config(load_config(default_config_path(), environ={}), root).manifests().paths()
    docs = [orjson.loads(p.read_bytes()) for p in found]
    docs = [d for d in docs if run_id is None or d.get("run_id") == run_id]
    if not docs:
        which = f"of run {run_id} " if run_id else ""
        raise UsageError(
            f"--root {root} holds no run manifest {which}(artifacts/run_logs/run_manifest_*.json)"
        )
    if len(docs) > 1 and run_id is None:
        ids = ", ".join(str(d.get("run_id")) for d in docs)
        raise UsageError(f"--root {root} holds several runs ({ids}); pick one with --run-id")
    doc = docs[0]
    assert isinstance(doc, dict)
    return doc


def _run_config(manifest: dict[str, object]) -> Config:
    config = manifest.get("config")
    path = Path(str(config.get("path"))) if isinstance(config, dict) else None
    overrides = {"signal.sink": manifest["sink"]} if "sink" in manifest else None
    try:
        return load_config(
            path if path is not None and path.is_file() else None, overrides=overrides, environ={}
        )
    except ConfigError as exc:
        raise UsageError(f"the run's config cannot be used: {exc}") from None


def _lines(path: Path) -> Iterator[bytes]:
    if path.is_dir():
        preview = path / "preview" if (path / "preview").is_dir() else path
        spool = preview.parent / "spool" / preview.name
        for tail in discover_tails(spool, preview):
            follower = SegmentFollower(spool, preview, tail)
            while batch := follower.read(50_000):
                yield from (line for line, _pos in batch)
        return
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    with open(path, "rb") as fh:
        yield from (line for line in fh if line.strip())


def _rows(kind: str, path: Path) -> list[object]:
    out = []
    for line in _lines(path):
        try:
            out.append(decode_row(kind, line))
        except ContractError as exc:
            raise UsageError(f"{path}: a {kind} row does not match its contract: {exc}") from None
    return out


def _from_files(args: argparse.Namespace) -> tuple[ReportRow, Path]:
    if args.out is None:
        raise UsageError("--features and --signals need --out DIR for the report files")
    cfg = load_config(args.config, environ={})
    signals = [s for s in _rows("signal", args.signals) if isinstance(s, SignalRow)]
    run_id = args.run_id or (signals[0].run_id if signals else "batch")
    rows = _rows("feature", args.features)
    features = [FeaturePoint(f.ts_ms, f.symbol, f.mid) for f in rows if isinstance(f, FeatureRow)]
    if signals and not features:
        raise UsageError(
            f"--features {args.features} holds no feature rows; the markouts need the mids that the signals "
            f"of --signals {args.signals} were computed from"
        )
    orders = [o for o in _rows("order", args.orders) if isinstance(o, OrderRow)] if args.orders else []
    report = report_from_rows(cfg, run_id, [s for s in signals if s.run_id == run_id], features,
                              [o for o in orders if o.run_id == run_id])  # fmt: skip
    return report, args.out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m v13.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=None, help="a run root (holds artifacts/run_logs/)")
    parser.add_argument("--run-id", default=None, help="which run of the root (or of the signal file)")
    parser.add_argument(
        "--features", type=Path, default=None, help="feature rows: a JSONL file or a data dir"
    )
    parser.add_argument("--signals", type=Path, default=None, help="signal rows: a JSONL file")
    parser.add_argument("--orders", type=Path, default=None, help="order rows: a JSONL file (optional)")
    parser.add_argument(
        "--config", default=None, help="config for batch files (default: config/defaults.yaml)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the report files here")
    args = parser.parse_args(argv)
    if (args.root is None) == (args.features is None or args.signals is None):
        raise UsageError("give either --root RUN_ROOT, or --features and --signals")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give the directory to write the report files into")
    if args.root is not None:
        manifest = _manifest(args.root, args.run_id)
        cfg = _run_config(manifest)
        run_id = str(manifest["run_id"])
        layout = Layout.from_config(cfg, args.root)
        report = build_report(cfg, layout, run_id)
        paths = layout.summary_paths(run_id)
        if args.out is not None:
            paths = {ext: args.out / f"{summary_stem(run_id)}.{ext}" for ext in paths}
    else:
        report, out = _from_files(args)
        paths = {ext: out / f"{summary_stem(report.run_id)}.{ext}" for ext in ("json", "md", "png")}
    written = write_report(report, paths)
    mk = report.markouts
    print(f"{report.run_id}: {report.rows} signal rows, {mk.signals} confirmed with a book")
    for e in mk.edge:
        print(f"  {e.horizon_s:>3} s: mean move {e.mean_move_bps:+.2f} bps, cost {e.cost_bps:.2f}, "
              f"net {e.net_bps:+.2f} bps{' (significant)' if e.significant else ''}")  # fmt: skip
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("python -m v13.report", main))
