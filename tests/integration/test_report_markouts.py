"""The report's markouts, recomputed here for one run of the batch tools (v13.sim, v13.features,
v13.signals, v13.report) with a small loop of its own over the feature and signal rows."""

from __future__ import annotations

import math
from statistics import NormalDist

import orjson
import pytest

from tests.unit.helpers import run_module
from v13.config import load_config

CFG = load_config(environ={})
Z = NormalDist().inv_cdf(0.975)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("markouts")
    steps = [
        ("v13.sim", "--symbols", "BTCUSDT,SOLUSDT", "--minutes", "20", "--seed", "5",
         "--out", str(base / "data")),
        ("v13.features", "--raw", str(base / "data"), "--out", str(base / "f.jsonl")),
        ("v13.signals", "--features", str(base / "f.jsonl"), "--out", str(base / "s.jsonl")),
        ("v13.report", "--features", str(base / "f.jsonl"), "--signals", str(base / "s.jsonl"), "--out",
         str(base / "out")),
    ]  # fmt: skip
    for step in steps:
        proc = run_module(*step, cwd=base)
        assert proc.returncode == 0, proc.stderr
    lines = lambda name: [orjson.loads(x) for x in (base / name).read_bytes().splitlines()]  # noqa: E731
    return {"features": lines("f.jsonl"), "signals": lines("s.jsonl"),
            "report": orjson.loads(next((base / "out").glob("summary_*.json")).read_bytes())}  # fmt: skip


def recount(features: list[dict], signals: list[dict], key: str | None) -> dict[str, list[dict]]:
    """Per group (or "all"), per horizon: the figures, computed plainly."""
    mids: dict[str, dict[int, float]] = {}
    last: dict[str, int] = {}
    for f in features:
        last[f["symbol"]] = max(last.get(f["symbol"], 0), f["ts_ms"])
        if f["mid"] is not None:
            mids.setdefault(f["symbol"], {})[f["ts_ms"]] = f["mid"]
    groups: dict[str, list[dict]] = {}
    for s in signals:
        if s["confirm"] and s["mid"] is not None:
            if key is None:
                group = "all"
            elif key == "strength":
                group = "strong" if s["signal_type"].startswith("strong") else "normal"
            else:
                group = s[key]
            groups.setdefault(group, []).append(s)
    out: dict[str, list[dict]] = {}
    for group, sigs in groups.items():
        out[group] = []
        for h in CFG.report.markout_horizons_s:
            moves, censored = [], 0
            for s in sigs:
                at = s["ts_ms"] + 1000 * h
                if at > last[s["symbol"]]:
                    censored += 1
                    continue
                while at not in mids[s["symbol"]]:  # the last row with a book at or before t + h
                    at -= 1000
                sign = 1 if s["signal_type"].endswith("buy") else -1
                moves.append(sign * (mids[s["symbol"]][at] / s["mid"] - 1) * 1e4)
            up, down = sum(m > 0 for m in moves), sum(m < 0 for m in moves)
            n = len(moves)
            p = up / (up + down)
            denominator = 1 + Z**2 / (up + down)
            centre = (p + Z**2 / (2 * (up + down))) / denominator
            spread = Z / denominator * math.sqrt(p * (1 - p) / (up + down) + Z**2 / (4 * (up + down) ** 2))
            mean = sum(moves) / n
            sd = math.sqrt(sum((m - mean) ** 2 for m in moves) / (n - 1))
            ordered = sorted(moves)
            lo, hi = math.floor(n / 2 - Z * math.sqrt(n) / 2), math.ceil(n / 2 + Z * math.sqrt(n) / 2)
            out[group].append({
                "horizon_s": h, "count": n, "censored": censored, "hits": up, "misses": down,
                "flat": n - up - down,
                "hit_rate": p, "hit_rate_ci": [centre - spread, centre + spread], "mean_bps": mean,
                "mean_ci": [mean - Z * sd / math.sqrt(n), mean + Z * sd / math.sqrt(n)],
                "median_bps": ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2,
                "median_ci": [ordered[lo - 1], ordered[hi - 1]],
            })  # fmt: skip
    return out


def same(reported: object, mine: object) -> bool:
    """Counts equal exactly; figures to 12 significant digits (the same formulas, written anew)."""
    if isinstance(mine, float):
        return isinstance(reported, float) and math.isclose(reported, mine, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(mine, list):
        return isinstance(reported, list) and len(reported) == len(mine) and all(map(same, reported, mine))
    if isinstance(mine, dict):
        return isinstance(reported, dict) and all(same(reported[k], v) for k, v in mine.items())
    return reported == mine


@pytest.mark.parametrize(("field", "key"), [("all", None), ("by_strength", "strength"),
                                            ("by_regime", "regime"), ("by_symbol", "symbol")])  # fmt: skip
def test_the_reports_markouts_equal_a_recount(batch, field: str, key: str | None) -> None:
    mine = recount(batch["features"], batch["signals"], key)
    reported = batch["report"]["markouts"][field]
    reported = {"all": reported} if key is None else reported
    assert set(reported) == set(mine)
    for group, table in mine.items():
        for got, want in zip(reported[group], table, strict=True):
            assert same(got, want), (group, got, want)


def test_the_edge_is_the_mean_move_less_the_round_trip_and_half_the_spread(batch) -> None:
    rep = batch["report"]["markouts"]
    fee, slip = CFG.broker.fee_bps, CFG.broker.slippage_bps
    confirmed = [s for s in batch["signals"] if s["confirm"] and s["mid"] is not None]
    assert rep["signals"] == len(confirmed)
    assert rep["cost"]["round_trip_bps"] == 2 * (fee + slip)
    half = sum(s["spread_bps"] / 2 for s in confirmed) / len(confirmed)
    assert math.isclose(rep["cost"]["mean_half_spread_bps"], half, rel_tol=1e-12)
    for edge, h in zip(rep["edge"], rep["all"], strict=True):
        assert edge["horizon_s"] == h["horizon_s"] and math.isclose(
            edge["mean_move_bps"], h["mean_bps"], rel_tol=1e-12
        )
        assert edge["exceeds_cost"] is (edge["net_bps"] > 0)
        assert edge["significant"] is (edge["net_ci"][0] > 0)
        assert math.isclose(
            edge["net_bps"], edge["mean_move_bps"] - edge["cost_bps"], rel_tol=1e-9, abs_tol=1e-12
        )


def test_a_signal_whose_horizon_runs_past_the_data_is_censored_not_dropped(batch) -> None:
    all_ = batch["report"]["markouts"]["all"]
    confirmed = batch["report"]["markouts"]["signals"]
    assert all(h["count"] + h["censored"] == confirmed for h in all_)
    assert [h["censored"] for h in all_] == sorted(
        h["censored"] for h in all_
    )  # longer horizons, more censored
    assert all_[-1]["censored"] > 0
