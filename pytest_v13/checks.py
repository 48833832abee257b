"""The Definition of Done of the seed task card, one check per item, each raising AssertionError
with a readable message. ``tests/acceptance`` turns each into its own test.

Every check recounts from evidence the plugin gathered itself: the orchestrator's exit code, the
stage processes as the plugin sampled them (pids, RSS, open files, ``/proc/<pid>/environ``), and
the run's files read directly. Where the stack reports a number (a counter, a report field), the
check compares it with its own recount and fails on a mismatch. Nothing here imports the
orchestrator.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson

from pytest_v13.contract_doc import (
    FieldSpec,
    contracts_doc,
    parse_contracts,
    row_problems,
    sqlite_column_problems,
)
from pytest_v13.manifest_schema import decode_manifest
from pytest_v13.run import V13Run

__all__ = [
    "MSG_COUNTERS",
    "MSG_DROPPED",
    "MSG_ENV",
    "MSG_ORDERS",
    "MSG_RECOUNT",
    "MSG_ROTATION",
    "SEED_WHITELIST",
    "STOP_TAIL_MAX_S",
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

# seed section 3.2: the only variables the orchestrator may pass on
SEED_WHITELIST = frozenset({"V13_SINK", "V13_OUTPUT_DIR", "PAPER_ENABLE"})
# DESIGN section 8: what Python itself needs, and the run id
PYTHON_ENV = frozenset({"PATH", "PYTHONUNBUFFERED", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME",
                        "V13_RUN_ID"})  # fmt: skip
STOP_TAIL_MAX_S = 10  # the signal stage stops before harvest: at most this many unsignalled seconds
ROTATION_S = 60  # seed section 6: JSONL rotation at least once a minute
ROTATION_SLACK_S = 5  # a rotation is done by the writer's next tick after its minute

MSG_DROPPED = "rows were lost: feature rows inside the run have no signal row"
MSG_COUNTERS = "the stack's counters disagree with a recount of its files"
MSG_ENV = "a stage's environment holds keys outside the whitelist"
MSG_ORDERS = "too few mock orders, or not both sides"
MSG_RECOUNT = "the report's numbers differ from a recount of the sink"
MSG_ROTATION = "a symbol went longer than a minute without a JSONL rotation"
REPORT_FIELDS = ("total", "buy_ratio", "strong_ratio", "per_minute", "dropped", "warnings")
MD_LABELS = ("total", "buy_ratio", "strong_ratio", "## Per minute", "dropped", "warnings")
BUY, SELL, STRONG = ("buy", "strong_buy"), ("sell", "strong_sell"), ("strong_buy", "strong_sell")


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _minute(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def _contracts(run: V13Run) -> dict[str, list[FieldSpec]]:
    return parse_contracts(contracts_doc(run.docs_root))


# -- dod01 ---------------------------------------------------------------------------------------
def check_no_uncaught_exceptions(run: V13Run) -> None:
    problems = []
    if run.process.exit_code != 0:
        problems.append(f"the orchestrator exited {run.process.exit_code}")
    last = [line for line in run.process.output_text().splitlines() if line.startswith(f"run {run.run_id} ")]
    if not last or " completed (exit 0" not in last[-1]:
        problems.append(f"the orchestrator's last line is {last[-1:] or 'missing'}, not 'completed'")
    for name, path in run.stderr_logs().items():
        text = path.read_text(errors="replace") if path.exists() else ""
        if "Traceback (most recent call last)" in text:
            problems.append(f"{name}: traceback in {path}")
    for name, stage in run.process.stages.items():
        if len(stage.pids) != 1:
            problems.append(
                f"{name}: {len(stage.pids)} processes over the run (pids {stage.pids}): restarted"
            )
    assert not problems, "; ".join(problems)


# -- dod02 .. dod04 ------------------------------------------------------------------------------
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


# -- dod05 ---------------------------------------------------------------------------------------
def check_report_fields(run: V13Run) -> None:
    paths = run.report_paths
    assert paths["json"].exists() and paths["md"].exists(), f"report files missing: {paths}"
    missing = [k for k in REPORT_FIELDS if k not in run.report_json]
    assert not missing, f"report JSON lacks {missing}"
    md = paths["md"].read_text()
    absent = [k for k in MD_LABELS if k not in md]
    assert not absent, f"report Markdown lacks {absent}"


# -- dod06 ---------------------------------------------------------------------------------------
def check_layout(run: V13Run) -> None:
    """The files against DESIGN.md section 3, written out here, and the rows' field names against
    the documented contracts."""
    root = run.root
    documented = {
        "trade": "data/raw/*/*/trades/*.jsonl",
        "book": "data/raw/*/*/book/*.jsonl",
        "feature": "data/preview/*/*/features/*.jsonl",
        "signal": "runtime/ready/signal/*/*/*.jsonl" if run.sink == "jsonl" else "runtime/signals.db",
        "manifest": "artifacts/run_logs/run_manifest_*.json",
        "orchestrator log": "logs/orchestrator/orchestrator.log",
        "summary": "logs/report/summary_*.json",
        "orders": "runtime/mock_orders.jsonl",
        **{f"{n} status": f"runtime/health/{n}.json" for n in run.process.stages},
        **{f"{n} log": f"logs/{n}/stderr.log" for n in run.process.stages},
    }
    found = {what: sorted(root.glob(pattern)) for what, pattern in documented.items()}
    missing = [f"{what} ({documented[what]})" for what, paths in found.items() if not paths]
    assert not missing, f"not where DESIGN.md section 3 puts them: {missing}"
    leftovers = sorted(str(p.relative_to(root)) for p in root.rglob("*.part"))
    assert not leftovers, f"open segments left after the stop: {leftovers[:5]}"
    contracts = _contracts(run)
    for kind in ("trade", "book", "feature"):
        first = orjson.loads(found[kind][0].read_bytes().splitlines()[0])
        names = [f.name for f in contracts[kind]]
        assert list(first) == names, f"{kind} row fields {list(first)}, documented {names}"


# -- dod07 ---------------------------------------------------------------------------------------
def check_env_whitelist(run: V13Run) -> None:
    allowed = SEED_WHITELIST | PYTHON_ENV
    problems = []
    for name, stage in run.process.stages.items():
        for pid, error in stage.environ_errors.items():
            problems.append(f"{name} pid {pid}: /proc/{pid}/environ unreadable ({error})")
        unread = [pid for pid in stage.pids if pid not in stage.environ and pid not in stage.environ_errors]
        if not stage.environ or unread:
            problems.append(f"{name}: no environment sampled for pid(s) {unread or stage.pids}")
        for pid, env in stage.environ.items():
            extra = sorted(set(env) - allowed)
            if extra:
                problems.append(f"{MSG_ENV}: {name} pid {pid} has {extra}")
            if env.get("V13_SINK") != run.sink:
                problems.append(f"{name} pid {pid} has V13_SINK={env.get('V13_SINK')!r}, not {run.sink!r}")
    assert not problems, "; ".join(problems)


# -- dod08 ---------------------------------------------------------------------------------------
def check_contract_sample(run: V13Run) -> None:
    spec = _contracts(run)["signal"]
    rows = run.signal_rows
    n = min(run.thresholds.contract_sample, len(rows))
    assert n > 0, "no signal rows to sample"
    sample = random.Random(run.run_id).sample(rows, n)
    bad = [p for row in sample for p in row_problems(row, spec, sqlite=run.sink == "sqlite")]
    assert not bad, f"{len(bad)} problem(s) in {n} sampled signal rows: {bad[:3]}"
    if run.sink == "sqlite":
        uri = f"file:{run.layout.signals_db}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            info = conn.execute("PRAGMA table_info(signals)").fetchall()
        problems = sqlite_column_problems([(c[1], c[2], bool(c[3])) for c in info], spec)
        assert not problems, f"table signals differs from the documented contract: {problems}"


# -- dod09 ---------------------------------------------------------------------------------------
def _recount_signalled(run: V13Run) -> tuple[dict[str, int], dict[str, int], int]:
    """Per symbol: feature rows after its last signal (the stop tail) and feature rows inside the
    run without a signal row (lost), and how many feature rows the signal stage rejected."""
    signalled: dict[str, set[int]] = {}
    for r in run.signal_rows:
        signalled.setdefault(r["symbol"], set()).add(r["ts_ms"])
    last = {s: max(ts) for s, ts in signalled.items()}
    rejected_lines = {e["line"] for e in run.deadletter if e.get("stage") == "signal"}
    tail: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    rejected = 0
    for line in run.feature_lines:
        if line.decode("utf-8", "replace") in rejected_lines:
            rejected += 1
            continue
        row = orjson.loads(line)
        sym, ts = row["symbol"], row["ts_ms"]
        if ts in signalled.get(sym, ()):
            continue
        if ts > last.get(sym, -1):
            tail[sym] += 1
        else:
            lost[sym] += 1
    return dict(tail), dict(lost), rejected


def check_dropped_zero(run: V13Run) -> None:
    tail, lost, _rejected = _recount_signalled(run)
    assert not lost, f"{MSG_DROPPED}: {sum(lost.values())} ({lost})"
    long_tails = {s: n for s, n in tail.items() if n > STOP_TAIL_MAX_S}
    assert not long_tails, f"unsignalled tails longer than {STOP_TAIL_MAX_S} s: {long_tails}"
    counters = {n: int(run.status(n)["counters"].get("dropped", 0)) for n in run.process.stages}
    report = run.report_json
    claimed = (
        sum(counters.values()),
        report["dropped"],
        report["unprocessed_tail"],
        report["missing_signals"],
    )
    recount = (sum(lost.values()), sum(lost.values()), sum(tail.values()), sum(lost.values()))
    assert claimed == recount, (
        f"{MSG_COUNTERS}: (dropped counters, report dropped, unprocessed_tail, missing_signals) "
        f"{claimed} vs recount {recount}; counters {counters}"
    )


# -- dod10 ---------------------------------------------------------------------------------------
def check_rotation(run: V13Run) -> None:
    """For every symbol, no stretch longer than a minute between its first signal row, each of
    its segments sealed into ready/ (file time) and the last one."""
    first: dict[str, float] = {}
    for r in run.signal_rows:
        first[r["symbol"]] = min(first.get(r["symbol"], float("inf")), r["emit_ts_ms"] / 1000)
    seals: dict[str, list[float]] = {}
    for path in run.jsonl_shards():
        seals.setdefault(path.parent.name, []).append(path.stat().st_mtime)
    assert set(seals) == set(first), f"symbols with rows {sorted(first)}, with shards {sorted(seals)}"
    worst = {}
    for sym, times in seals.items():
        points = [first[sym], *sorted(times)]
        gaps = [b - a for a, b in itertools.pairwise(points)]
        if max(gaps) > ROTATION_S + ROTATION_SLACK_S:
            worst[sym] = round(max(gaps), 1)
    assert not worst, f"{MSG_ROTATION}: longest gap (s) {worst}"


# -- dod11 ---------------------------------------------------------------------------------------
def check_resources(run: V13Run) -> None:
    t = run.thresholds
    stages = run.process.stages
    assert stages, f"the plugin saw no stage process ({run.process.sampler_errors})"
    over = {
        n: (round(s.peak_rss_bytes / 2**20, 1), s.peak_open_files)
        for n, s in stages.items()
        if s.peak_rss_bytes / 2**20 >= t.rss_mb_max or s.peak_open_files >= t.open_files_max or s.samples == 0
    }
    assert not over, (
        f"peak (RSS MB, open files) over {t.rss_mb_max} / {t.open_files_max}, sampled by the plugin: {over}"
    )


# -- dod12 ---------------------------------------------------------------------------------------
def check_deadletter_empty(run: V13Run) -> None:
    files = sorted(run.root.glob("artifacts/deadletter/**/*.jsonl"))
    entries = sum(len(p.read_bytes().splitlines()) for p in files)
    assert not files, (
        f"deadletter not empty: {entries} entries in {[str(p.relative_to(run.root)) for p in files]}"
    )


# -- dod13 ---------------------------------------------------------------------------------------
def check_manifest(run: V13Run) -> None:
    try:
        m = decode_manifest(run.manifest_path.read_bytes())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise AssertionError(f"{run.manifest_path.name} breaks the documented manifest: {exc}") from None
    problems = []
    if (m.status, m.exit_code) != ("completed", run.process.exit_code):
        problems.append(
            f"status {m.status} / exit_code {m.exit_code}, the process exited {run.process.exit_code}"
        )
    if m.run_id != run.run_id:
        problems.append(f"run_id {m.run_id}, the stages ran with {run.run_id}")
    if m.sink != run.sink:
        problems.append(f"sink {m.sink}, the run was {run.sink}")
    if m.config.sha256 != hashlib.sha256(Path(m.config.path).read_bytes()).hexdigest():
        problems.append(f"config sha256 {m.config.sha256} is not that of {m.config.path}")
    seen = {n: s.pids for n, s in run.process.stages.items()}
    listed = {n: c.pids for n, c in m.children.items()}
    if listed != seen:
        problems.append(f"children pids {listed}, the plugin saw {seen}")
    assert not problems, "; ".join(problems)


# -- dod14 ---------------------------------------------------------------------------------------
def check_orchestrator_log(run: V13Run) -> None:
    events = run.events
    per_child: dict[str, Counter[str]] = {}
    started: dict[str, list[int]] = {}
    for e in events:
        if "name" in e:
            per_child.setdefault(e["name"], Counter())[e["event"]] += 1
            if e["event"] == "Start":
                started.setdefault(e["name"], []).append(e["pid"])
    missing = {
        name: [k for k in ("Start", "Ready", "Health", "Stop") if not per_child.get(name, Counter())[k]]
        for name in run.process.stages
    }
    missing = {n: m for n, m in missing.items() if m}
    assert not missing, f"orchestrator.log lacks events {missing} for this run"
    seen = {n: s.pids for n, s in run.process.stages.items()}
    assert started == seen, f"Start events name pids {started}, the plugin saw {seen}"
    runs = Counter(e.get("phase") for e in events if e["event"] == "Run")
    assert runs == Counter({"start": 1, "end": 1}), f"Run events {dict(runs)}, expected one start and one end"


# -- dod15 / dod16 ---------------------------------------------------------------------------------
def _per_minute(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    minutes: dict[str, Counter[str]] = {}
    for r in rows:
        bucket = minutes.setdefault(_minute(r["ts_ms"]), Counter())
        if r["confirm"]:
            bucket["count"] += 1
            bucket["buy"] += r["signal_type"] in BUY
            bucket["sell"] += r["signal_type"] in SELL
            bucket["strong"] += r["signal_type"] in STRONG
    return [
        {"minute": m, **{k: c[k] for k in ("count", "buy", "sell", "strong")}}
        for m, c in sorted(minutes.items())
    ]


def check_report_last_5min(run: V13Run) -> None:
    last5 = _per_minute(run.signal_rows)[-5:]
    strong, total = sum(m["strong"] for m in last5), sum(m["count"] for m in last5)
    recount = {"per_minute": last5, "strong_ratio": _ratio(strong, total)}
    reported = run.report_json["last_5min"]
    assert reported == recount, f"{MSG_RECOUNT}: last_5min {reported} vs recount {recount}"
    md = run.report_paths["md"].read_text()
    assert f"## Last 5 minutes (strong ratio {recount['strong_ratio']:.3f})" in md, (
        "the Markdown report lacks the last-5-minutes section with the recounted strong ratio"
    )


def check_report_recount(run: V13Run) -> None:
    rows = run.signal_rows
    confirmed = Counter(r["signal_type"] for r in rows if r["confirm"])
    total = sum(confirmed.values())
    buys, sells, strong = (sum(confirmed[k] for k in ks) for ks in (BUY, SELL, STRONG))
    tail, lost, _rejected = _recount_signalled(run)
    sides = Counter(o["side"] for o in run.orders)
    recount = {
        "rows": len(rows), "total": total, "buy_count": confirmed["buy"], "sell_count": confirmed["sell"],
        "strong_buy_count": confirmed["strong_buy"], "strong_sell_count": confirmed["strong_sell"],
        "buy_ratio": _ratio(buys, total), "sell_ratio": _ratio(sells, total),
        "strong_ratio": _ratio(strong, total),
        "per_minute": _per_minute(rows), "unprocessed_tail": sum(tail.values()),
        "missing_signals": sum(lost.values()),
        "orders": {"count": len(run.orders), "buy": sides["BUY"], "sell": sides["SELL"]},
    }  # fmt: skip
    r = run.report_json
    reported = {k: r[k] for k in recount}
    reported["orders"] = {k: r["orders"][k] for k in ("count", "buy", "sell")}
    diff = {k: (reported[k], recount[k]) for k in recount if reported[k] != recount[k]}
    assert not diff, f"{MSG_RECOUNT}: (report, recount) {diff}"
