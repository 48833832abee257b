"""The Definition of Done of the seed task card, one check per item, each raising AssertionError
with a readable message. ``tests/acceptance`` turns each into its own test."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson

from orchestrator.spec import WHITELIST
from pytest_v13.run import V13Run
from v13.contracts import CONTRACTS, decode_row
from v13.errors import ContractError

__all__ = [
    "ALLOWED_ENV",
    "MSG_DROPPED",
    "MSG_ENV",
    "MSG_ORDERS",
    "MSG_RECOUNT",
    "check_contract_sample",
    "check_deadletter_empty",
    "check_dropped_zero",
    "check_env_whitelist",
    "check_jsonl_shards",
    "check_layout",
    "check_manifest",
    "check_no_uncaught_exceptions",
    "check_orchestrator_log",
    "check_orders",
    "check_report_fields",
    "check_report_last_5min",
    "check_report_recount",
    "check_resources",
    "check_rotation",
    "check_sqlite_rows",
]

PYTHON_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONPATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "HOME",
    "V13_RUN_ID",
}
ALLOWED_ENV = PYTHON_ENV | set(WHITELIST)

MSG_DROPPED = "rows were dropped: the signal queue overflowed (raise signal.queue_max)"
MSG_ENV = "a stage's environment holds keys outside the whitelist"
MSG_ORDERS = "too few mock orders, or not both sides"
MSG_RECOUNT = "the report's numbers differ from a recount of the sink"
MANIFEST_KEYS = ("run_id", "config", "cli_args", "enabled", "sink", "symbols", "children", "status",
                 "versions", "report_paths", "health")  # fmt: skip
REPORT_FIELDS = ("total", "buy_ratio", "strong_ratio", "per_minute", "dropped", "warnings")


def check_no_uncaught_exceptions(run: V13Run) -> None:
    problems = []
    for name, path in run.stderr_logs().items():
        text = path.read_text(errors="replace") if path.exists() else ""
        if "Traceback (most recent call last)" in text:
            problems.append(f"{name}: traceback in {path}")
    for name, child in run.result.children.items():
        if child.restarts or child.status != "stopped":
            problems.append(f"{name}: {child.restarts} restart(s), final state {child.status}")
        if any(rc != 0 for rc in child.exit_codes):
            problems.append(f"{name}: exit codes {child.exit_codes}")
    if run.result.status != "completed":
        problems.append(f"run status {run.result.status} (exit code {run.result.exit_code})")
    assert not problems, "; ".join(problems)


def check_jsonl_shards(run: V13Run) -> None:
    shards = run.jsonl_shards()
    need = run.thresholds.jsonl_shards_min
    assert len(shards) >= need, f"{len(shards)} .jsonl shards in runtime/ready/signal, need >= {need}"


def check_sqlite_rows(run: V13Run) -> None:
    need = run.thresholds.sqlite_rows_min
    assert len(run.signal_rows) >= need, f"{len(run.signal_rows)} rows in signals, need >= {need}"


def check_orders(run: V13Run) -> None:
    sides = Counter(o["side"] for o in run.orders)
    need = run.thresholds.orders_min
    assert len(run.orders) >= need and sides["BUY"] and sides["SELL"], (
        f"{MSG_ORDERS}: {len(run.orders)} orders (BUY {sides['BUY']}, SELL {sides['SELL']}), need >= {need}"
    )


def check_report_fields(run: V13Run) -> None:
    paths = run.result.report_paths
    assert Path(paths["json"]).exists() and Path(paths["md"]).exists(), f"report files missing: {paths}"
    missing = [k for k in REPORT_FIELDS if k not in run.report_json]
    assert not missing, f"report JSON lacks {missing}"
    md = Path(paths["md"]).read_text()
    for label in ("total", "buy_ratio", "strong_ratio", "dropped", "warnings", "Per minute"):
        assert label in md, f"report Markdown lacks {label!r}"


def check_layout(run: V13Run) -> None:
    layout = run.result.layout
    data = layout.data
    segments = {kind: glob.paths() for kind, glob in (("trade", data.raw_segments("trades")),
                ("book", data.raw_segments("book")), ("feature", data.feature_segments()))}  # fmt: skip
    empty = [kind for kind, paths in segments.items() if not paths]
    assert not empty, f"no {empty} segments under data/raw and data/preview"
    needed = [
        layout.orders_file,
        layout.orchestrator_log,
        *(layout.health_file(n) for n in run.result.children),
        *(layout.stage_stderr(n) for n in run.result.children),
        layout.signals_db if run.sink == "sqlite" else layout.signal_ready,
    ]
    missing = [str(p) for p in needed if not p.exists()]
    assert not missing, f"missing: {missing}"
    leftovers = [str(p) for glob in layout.open_segments() for p in glob.paths()]
    assert not leftovers, f"open segments left after the stop: {leftovers[:5]}"
    for kind, paths in segments.items():
        decode_row(kind, paths[0].read_bytes().splitlines()[0])


def check_env_whitelist(run: V13Run) -> None:
    problems = {
        n: sorted(set(c.env) - ALLOWED_ENV)
        for n, c in run.result.children.items()
        if set(c.env) - ALLOWED_ENV
    }
    assert not problems, f"{MSG_ENV}: {problems}"
    for name, child in run.result.children.items():
        assert child.env.get("V13_SINK") == run.sink, f"{name} got V13_SINK={child.env.get('V13_SINK')}"
        assert child.env.get("V13_RUN_ID") == run.run_id, f"{name} lacks the run id"


def check_contract_sample(run: V13Run) -> None:
    rows = run.signal_rows
    n = min(run.thresholds.contract_sample, len(rows))
    assert n > 0, "no signal rows to sample"
    sample = random.Random(run.run_id).sample(rows, n)
    fields = CONTRACTS["signal"].__struct_fields__
    bad = []
    for row in sample:
        if run.sink == "sqlite":
            row = {**row, "confirm": bool(row["confirm"]), "gating": bool(row["gating"])}
        if tuple(row) != fields:
            bad.append(f"fields {tuple(row)}")
            continue
        try:
            decode_row("signal", orjson.dumps(row))
        except ContractError as exc:
            bad.append(str(exc))
    assert not bad, f"{len(bad)} of {n} sampled signal rows break the contract: {bad[:3]}"


def check_dropped_zero(run: V13Run) -> None:
    dropped = {}
    for name in run.result.children:
        status = orjson.loads(run.result.layout.health_file(name).read_bytes())
        dropped[name] = status["counters"].get("dropped", 0)
    assert run.report_json["dropped"] == 0 and not any(dropped.values()), f"{MSG_DROPPED}: {dropped}"


def check_rotation(run: V13Run) -> None:
    """At least one segment sealed into runtime/ready/signal in every full minute of the run."""
    start = run.result.started_ts_ms / 1000
    end = run.result.ended_ts_ms / 1000
    sealed = sorted(p.stat().st_mtime for p in run.jsonl_shards())
    minutes = int((end - start) // 60)
    assert minutes >= 1, "the run was shorter than a minute"
    empty = [
        m for m in range(1, minutes) if not any(start + 60 * m <= t < start + 60 * (m + 1) for t in sealed)
    ]
    assert not empty, f"no rotation in minute(s) {empty} of the run ({len(sealed)} segments sealed)"
    assert len(sealed) >= minutes, f"{len(sealed)} rotations in {minutes} minutes"


def check_resources(run: V13Run) -> None:
    t = run.thresholds
    over = {
        n: (c.peak_rss_mb, c.peak_open_files)
        for n, c in run.result.children.items()
        if c.peak_rss_mb >= t.rss_mb_max or c.peak_open_files >= t.open_files_max or c.peak_rss_mb <= 0
    }
    assert not over, (
        f"peak (RSS MB, open files) over {t.rss_mb_max} / {t.open_files_max} or not measured: {over}"
    )


def check_deadletter_empty(run: V13Run) -> None:
    files = run.result.layout.deadletter_files().paths()
    assert not files, f"deadletter not empty: {[str(p) for p in files]}"


def check_manifest(run: V13Run) -> None:
    m = run.manifest
    for key in MANIFEST_KEYS:
        assert key in m, f"manifest lacks {key}"
    assert m["status"] == run.result.status and m["run_id"] == run.run_id
    for name, child in m["children"].items():
        for key in (
            "argv",
            "env_keys",
            "pids",
            "start_ts_ms",
            "ready_ts_ms",
            "stop_ts_ms",
            "exit_codes",
            "peak_rss_mb",
        ):
            assert key in child, f"manifest child {name} lacks {key}"


def check_orchestrator_log(run: V13Run) -> None:
    path = run.result.layout.orchestrator_log
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    mine = Counter(e["event"] for e in events if e["run_id"] == run.run_id)
    missing = [e for e in ("Start", "Ready", "Health", "Stop") if not mine[e]]
    assert not missing, f"orchestrator.log lacks {missing} events for this run (has {dict(mine)})"


def check_report_last_5min(run: V13Run) -> None:
    last5 = run.report_json["last_5min"]
    per_minute = run.report_json["per_minute"]
    assert last5["per_minute"] == per_minute[-5:], "last_5min does not hold the last five minutes"
    strong = sum(m["strong"] for m in last5["per_minute"])
    total = sum(m["count"] for m in last5["per_minute"])
    assert abs(last5["strong_ratio"] - (strong / total if total else 0.0)) < 1e-6
    md = Path(run.result.report_paths["md"]).read_text()
    assert "Last 5 minutes (strong ratio" in md, "the Markdown report lacks the last-5-minutes section"


def check_report_recount(run: V13Run) -> None:
    rows = run.signal_rows
    confirmed = Counter(r["signal_type"] for r in rows if r["confirm"])
    r = run.report_json
    recount = {
        "rows": len(rows),
        "total": sum(confirmed.values()),
        "buy_count": confirmed["buy"],
        "sell_count": confirmed["sell"],
        "strong_buy_count": confirmed["strong_buy"],
        "strong_sell_count": confirmed["strong_sell"],
        "orders": len(run.orders),
    }
    reported = {k: (r["orders"]["count"] if k == "orders" else r[k]) for k in recount}
    assert reported == recount, f"{MSG_RECOUNT}: report {reported} vs recount {recount}"
    total = recount["total"]
    strong = confirmed["strong_buy"] + confirmed["strong_sell"]
    assert abs(r["strong_ratio"] - (strong / total if total else 0)) < 1e-6
