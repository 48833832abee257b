"""The real Binance USD-M sample (shared/data/binance-usdm/btcusdt_20240718.gz: one REST snapshot,
3,326 depth diffs, 974 trades, 7,113 bookTicker frames) replayed by the harvest in diff mode,
against a reconstruction written here from the same lines, sharing no code with v13: its own
local book, its own Cont-Kukanov-Stoikov OFI, its own CVD.
"""

from __future__ import annotations

import gzip
import math
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from tests.integration.stack import Stack, wait_for
from tests.unit.helpers import REPO, run_module
from v13.config import load_config

SAMPLE = REPO / "tests/data/btcusdt_20240718.gz"  # provenance and licence: tests/data/README.md
FEATURES = load_config(environ={}).features
LEVELS = FEATURES.ofi_levels
WEIGHTS = FEATURES.ofi_weights


def e(
    pb0: float, qb0: float, pa0: float, qa0: float, pb1: float, qb1: float, pa1: float, qa1: float
) -> float:
    """One level's order-flow imbalance between two books (Cont, Kukanov & Stoikov 2014)."""
    return ((qb1 if pb1 >= pb0 else 0.0) - (qb0 if pb1 <= pb0 else 0.0)
            - (qa1 if pa1 <= pa0 else 0.0) + (qa0 if pa1 >= pa0 else 0.0))  # fmt: skip


class Reference:
    """The sample, rebuilt line by line: a book from the snapshot and the diffs (Binance's sync
    rules), OFI and depth per second of event time, CVD, and the book's top at every update."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_u: int | None = None
        self.pending: list[dict] = []
        self.prev: tuple[list, list] | None = None
        self.ofi: dict[int, float] = defaultdict(float)
        self.depth: dict[int, list[float]] = defaultdict(list)
        self.cvd: dict[int, float] = defaultdict(float)
        self.top_by_u: dict[int, tuple[float, float]] = {}
        self.tickers: list[dict] = []
        self.broken = 0

    def top(self) -> tuple[list, list]:
        return (sorted(self.bids.items(), reverse=True)[:LEVELS], sorted(self.asks.items())[:LEVELS])

    def book_state(self, ts: int) -> None:
        bids, asks = self.top()
        second = ts - ts % 1000 + 1000
        if self.prev is not None:
            (pb, pa), n = self.prev, min(LEVELS, len(bids), len(asks))
            self.ofi[second] += sum(WEIGHTS[m] * e(pb[m][0], pb[m][1], pa[m][0], pa[m][1],
                                                   bids[m][0], bids[m][1], asks[m][0], asks[m][1])
                                    for m in range(n))  # fmt: skip
        n = min(LEVELS, len(bids), len(asks))
        self.depth[second].append(sum(bids[m][1] + asks[m][1] for m in range(n)) / (2 * n))
        self.prev = (bids, asks)

    def apply(self, d: dict) -> None:
        for side, levels in ((self.bids, d["b"]), (self.asks, d["a"])):
            for p, q in levels:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        self.last_u = d["u"]
        self.top_by_u[d["u"]] = (max(self.bids), min(self.asks))

    def line(self, raw: bytes) -> None:
        doc = orjson.loads(raw)
        if "lastUpdateId" in doc:
            self.bids = {float(p): float(q) for p, q in doc["bids"] if float(q)}
            self.asks = {float(p): float(q) for p, q in doc["asks"] if float(q)}
            self.last_u = doc["lastUpdateId"]
            kept = [d for d in self.pending if d["u"] >= self.last_u]
            assert kept, "no diff event after the snapshot"
            first = kept[0]
            assert first["U"] <= self.last_u <= first["u"] or first["pu"] == self.last_u
            for d in kept:
                self.apply(d)
            self.book_state(max(doc["T"], kept[-1]["T"]))
            self.pending = []
            return
        stream, d = doc["stream"], doc["data"]
        if stream.endswith("@bookTicker"):
            self.tickers.append(d)
        elif stream.endswith("@trade"):
            second = d["T"] - d["T"] % 1000 + 1000
            self.cvd[second] += -float(d["q"]) if d["m"] else float(d["q"])
        elif self.last_u is None:
            self.pending.append(d)
        else:
            if d["pu"] != self.last_u:
                self.broken += 1
            self.apply(d)
            self.book_state(d["T"])


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    assert SAMPLE.is_file(), f"the real sample is missing: {SAMPLE}"
    stack = Stack(tmp_path_factory.mktemp("sample"), "jsonl", {
        "symbols": ["BTCUSDT"], "source.kind": "replay", "source.replay.path": str(SAMPLE),
        "source.binance.depth_mode": "diff",
    })  # fmt: skip
    stack.start("harvest")
    wait_for(lambda: "Source exhausted" in stack.log("harvest").read_text(), 120, "the replay of the sample")
    assert stack.stop("harvest")[0] == 0
    reference = Reference()
    with gzip.open(SAMPLE, "rb") as fh:
        for line in fh:
            reference.line(line.rstrip(b"\n").partition(b" ")[2])
    rows = [orjson.loads(x) for p in sorted((stack.root / "data/preview").rglob("*.jsonl"))
            for x in p.read_bytes().splitlines()]  # fmt: skip
    books = [orjson.loads(x) for p in sorted((stack.root / "data/raw").rglob("book/*.jsonl"))
             for x in p.read_bytes().splitlines()]  # fmt: skip
    status = orjson.loads((stack.root / "runtime/health/harvest.json").read_bytes())
    return {
        "rows": rows,
        "books": books,
        "reference": reference,
        "status": status["counters"],
        "root": stack.root,
        "config": stack.config,
    }


def test_the_sample_replays_clean(replayed) -> None:
    c = replayed["status"]
    assert (c["resyncs"], c["depth_gaps"], c["late_rows"], c["deadletter"], c["snapshots"]) == (0, 0, 0, 0, 1)
    assert replayed["reference"].broken == 0
    assert c["trades"] == 974 and c["book_tickers"] == 7113
    rows = replayed["rows"]
    assert len({r["ts_ms"] for r in rows}) == len(rows) > 150


def test_every_seconds_ofi_equals_an_ofi_computed_from_a_book_rebuilt_here(replayed) -> None:
    ref = replayed["reference"]
    checked = 0
    for row in replayed["rows"]:
        second = row["ts_ms"]
        depth = ref.depth.get(second)
        expected = ref.ofi[second] / (sum(depth) / len(depth)) if depth else 0.0
        assert math.isclose(row["ofi"], expected, rel_tol=1e-9, abs_tol=1e-12), (second, row["ofi"], expected)
        checked += bool(depth)
    assert checked > 150
    print(f"OFI equal in {checked} seconds with book updates (of {len(replayed['rows'])} rows)")


def test_every_seconds_cvd_equals_the_trades_own_sum(replayed) -> None:
    ref = replayed["reference"]
    total = 0.0
    for row in replayed["rows"]:
        assert math.isclose(row["cvd_delta"], ref.cvd.get(row["ts_ms"], 0.0), abs_tol=1e-9)
        total += ref.cvd.get(row["ts_ms"], 0.0)
        assert math.isclose(row["cvd"], total, abs_tol=1e-9)
    assert sum(ref.cvd.values()) == pytest.approx(total)


def test_the_top_of_the_rebuilt_book_equals_the_recorded_book_ticker(replayed) -> None:
    """Where a bookTicker frame and a diff event end on the same update id, the exchange's best
    bid/ask equals the top of the book rebuilt here; and v13's book equals it at every update."""
    ref = replayed["reference"]
    same_id = [t for t in ref.tickers if t["u"] in ref.top_by_u]
    for ticker in same_id:
        assert ref.top_by_u[ticker["u"]] == (float(ticker["b"]), float(ticker["a"])), ticker
    ours = {b["update_id"]: (b["bids"][0][0], b["asks"][0][0]) for b in replayed["books"] if not b["reset"]}
    common = set(ours) & set(ref.top_by_u)
    assert {u: ours[u] for u in common} == {u: ref.top_by_u[u] for u in common}
    assert len(same_id) > 150 and len(common) > 3000
    print(f"bookTicker = rebuilt top at {len(same_id)} shared ids; v13 book = rebuilt book at {len(common)}")


def test_recomputing_features_from_the_harvests_raw_rows_is_bit_exact(replayed, tmp_path: Path) -> None:
    out = tmp_path / "features.jsonl"
    raw = replayed["root"] / "data"
    proc = run_module("v13.features", "--config", str(replayed["config"]), "--raw", str(raw),
                      "--out", str(out), "--deadletter", str(tmp_path / "dl"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    harvest = sorted(
        x for p in (replayed["root"] / "data/preview").rglob("*.jsonl") for x in p.read_bytes().splitlines()
    )
    batch = sorted(out.read_bytes().splitlines())
    assert batch == harvest and len(batch) == len(replayed["rows"])
