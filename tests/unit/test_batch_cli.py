"""The batch CLIs: deterministic files, replay equals the in-process path, clear errors, deadletter."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from tests.unit.helpers import REPO, run_module

SIM_ARGS = ("--symbols", "BTCUSDT,ETHUSDT", "--minutes", "3", "--preset", "weak", "--seed", "7")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sim_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    dirs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(name)
        proc = run_module("v13.sim", *SIM_ARGS, "--out", str(out / "data"))
        assert proc.returncode == 0, proc.stderr
        assert "v13.sim: done" in proc.stderr
        dirs.append(out)
    return dirs[0], dirs[1]


def replay(work: Path) -> tuple[bytes, bytes]:
    feats, sigs = work / "features.jsonl", work / "signals.jsonl"
    proc = run_module("v13.features", "--raw", str(work / "data"), "--out", str(feats), cwd=work)
    assert proc.returncode == 0, proc.stderr
    proc = run_module("v13.signals", "--features", str(feats), "--out", str(sigs), cwd=work)
    assert proc.returncode == 0, proc.stderr
    return feats.read_bytes(), sigs.read_bytes()


def test_same_seed_gives_byte_identical_raw_feature_and_signal_files(sim_dirs) -> None:
    a, b = sim_dirs
    raw_a, raw_b = tree(a / "data"), tree(b / "data")
    assert raw_a == raw_b
    assert any(k.startswith("raw/20250101/BTCUSDT/trades/") for k in raw_a)
    assert any(k.startswith("raw/20250101/ETHUSDT/book/") for k in raw_a)
    assert not any(k.endswith(".part") for k in raw_a)
    assert replay(a) == replay(b)


def test_replay_through_the_clis_gives_the_features_of_the_live_path(sim_dirs) -> None:
    a, _ = sim_dirs
    feats, sigs = replay(a)
    live = [
        line for p in sorted((a / "data/preview").rglob("*.jsonl")) for line in p.read_bytes().splitlines()
    ]
    key = lambda line: (orjson.loads(line)["ts_ms"], orjson.loads(line)["symbol"])  # noqa: E731
    assert feats.splitlines() == sorted(live, key=key)
    assert len(feats.splitlines()) == 2 * 180
    assert len(sigs.splitlines()) == len(feats.splitlines())
    types = {orjson.loads(line)["signal_type"] for line in sigs.splitlines()}
    assert {"neutral", "buy", "sell"} <= types


def test_malformed_raw_rows_go_to_the_deadletter_and_the_run_goes_on(sim_dirs, tmp_path: Path) -> None:
    a, _ = sim_dirs
    work = tmp_path / "w"
    for rel, data in tree(a / "data").items():
        (work / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "data" / rel).write_bytes(data)
    victim = sorted((work / "data/raw").rglob("BTCUSDT/trades/*.jsonl"))[1]
    lines = victim.read_bytes().splitlines()
    lines[3] = b'{"ts_ms": "soon", "symbol": "BTCUSDT"}'
    lines[5] = b"not json at all"
    victim.write_bytes(b"\n".join(lines) + b"\n")
    feats, _ = replay(work)
    assert len(feats.splitlines()) == 2 * 180
    entries = [
        orjson.loads(x)
        for p in (work / "artifacts/deadletter/features").glob("*.jsonl")
        for x in p.read_bytes().splitlines()
    ]
    assert len(entries) == 2
    assert {e["line"] for e in entries} == {lines[3].decode(), "not json at all"}
    assert all(victim.stem in e["source"] for e in entries)


@pytest.mark.parametrize(
    ("module", "args", "needle"),
    [
        ("v13.features", ("--raw", "/no/such/dir", "--out", "x.jsonl"), "is not a directory"),
        ("v13.features", ("--raw", ".", "--out", "x.jsonl"), "holds no raw segments"),
        ("v13.signals", ("--features", "/no/such.jsonl", "--out", "x.jsonl"), "is not a file"),
        ("v13.sim", ("--minutes", "-1", "--out", "x"), "--minutes must be positive"),
        ("v13.sim", ("--start", "yesterday", "--out", "x"), "is not an ISO time"),
        ("v13.sim", ("--preset", "huge", "--out", "x"), "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, module, args, needle) -> None:
    proc = run_module(module, *args, "--config", str(REPO / "config/defaults.yaml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_feature_rows_go_to_the_deadletter(tmp_path: Path) -> None:
    src = tmp_path / "f.jsonl"
    src.write_text('{"ts_ms": 1}\n\n')
    proc = run_module("v13.signals", "--features", str(src), "--out", str(tmp_path / "s.jsonl"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.jsonl").read_bytes() == b""
    assert "deadletter=1" in proc.stderr


@pytest.mark.parametrize(
    ("script", "args", "needles"),
    [
        ("bench_engine.py", ("--minutes", "0.5"), ("ratio (full / decode):", "µs/event")),
        ("bench_decode.py", ("--frames", "2000"), ("FrameDecoder -> validated BookRow", "msg/s")),
    ],
)
def test_benchmarks_run_and_print_their_figures(
    script: str, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for needle in needles:
        assert needle in proc.stdout
