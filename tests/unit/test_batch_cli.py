"""The batch CLIs: deterministic files, replay equals the in-process path, clear errors, deadletter."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from tests.unit.helpers import REPO, run_module, signal_row
from v13.config import load_config
from v13.contracts import TradeRow, encode_row
from v13.features import FeatureEngine
from v13.fsutil import now_ms, utc_day

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


def test_sim_will_not_write_into_a_data_directory_that_holds_a_run(sim_dirs) -> None:
    a, _ = sim_dirs
    before = tree(a / "data")
    proc = run_module(
        "v13.sim", "--symbols", "BTCUSDT", "--minutes", "1", "--seed", "8", "--out", str(a / "data")
    )
    assert proc.returncode == 2
    assert (
        f"--out {a / 'data'} is not an empty directory; the segments of another run would mix" in proc.stderr
    )
    assert tree(a / "data") == before


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


def with_two_bad_btc_rows(data: Path, work: Path) -> tuple[Path, list[bytes]]:
    """A copy of ``data`` in ``work/data`` with two malformed rows in a BTCUSDT trades segment."""
    for rel, content in tree(data).items():
        (work / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "data" / rel).write_bytes(content)
    victim = sorted((work / "data/raw").rglob("BTCUSDT/trades/*.jsonl"))[1]
    lines = victim.read_bytes().splitlines()
    lines[3] = b'{"ts_ms": "soon", "symbol": "BTCUSDT"}'
    lines[5] = b"not json at all"
    victim.write_bytes(b"\n".join(lines) + b"\n")
    return victim, lines


def test_malformed_raw_rows_go_to_the_deadletter_and_the_run_goes_on(sim_dirs, tmp_path: Path) -> None:
    a, _ = sim_dirs
    work = tmp_path / "w"
    victim, lines = with_two_bad_btc_rows(a / "data", work)
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


def test_the_output_is_the_same_bytes_whatever_the_number_of_workers(sim_dirs, tmp_path: Path) -> None:
    a, _ = sim_dirs
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"f{jobs}.jsonl"
        proc = run_module("v13.features", "--raw", str(a / "data"), "--out", str(out), "--jobs", jobs,
                          cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"symbols (100%), rows=360, deadletter=0, jobs={jobs}," in proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 2 * 180
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1.jsonl", "f2.jsonl"]  # no worker files left


Start = Callable[[str], tuple[subprocess.Popen[str], psutil.Process]]


@pytest.fixture
def blocked_run(sim_dirs, tmp_path: Path) -> Iterator[Start]:
    """Starts ``v13.features --jobs N`` on data with bad BTCUSDT rows whose deadletter file is a FIFO
    nobody reads: the worker that meets them blocks opening it. Gives the run and that worker; the
    run's process group is killed at the end whatever the test did."""
    with_two_bad_btc_rows(sim_dirs[0] / "data", tmp_path)
    fifo_deadletter(tmp_path / "artifacts/deadletter/features")
    (tmp_path / "f.jsonl").write_bytes(b"the previous run's rows\n")
    with process_groups() as popen:

        def start(jobs: str) -> tuple[subprocess.Popen[str], psutil.Process]:
            args = ("--raw", "data", "--out", "f.jsonl", "--jobs", jobs)
            proc = popen([sys.executable, "-m", "v13.features", *args], tmp_path)
            return proc, blocked_on_a_fifo(proc)

        yield start


def fifo_deadletter(directory: Path) -> None:
    """Deadletter files that are FIFOs nobody reads: whoever writes a rejected row blocks opening one."""
    directory.mkdir(parents=True)
    for day in (0, 1):  # today's file, and tomorrow's should the test run across midnight
        os.mkfifo(directory / f"{utc_day(now_ms() + day * 86_400_000)}.jsonl")


@contextlib.contextmanager
def process_groups() -> Iterator[Callable[[list[str], Path], subprocess.Popen[str]]]:
    """Starts commands in process groups of their own, each killed at the end whatever the test did."""
    started: list[subprocess.Popen[str]] = []

    def popen(cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # fmt: skip
        started.append(proc)
        return proc

    try:
        yield popen
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def blocked_on_a_fifo(proc: subprocess.Popen[str]) -> psutil.Process:
    """The process, or one of its children, once it waits to open a FIFO (Linux: its wchan)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parent = psutil.Process(proc.pid)
        for p in (parent, *parent.children()):
            with contextlib.suppress(FileNotFoundError):
                if Path(f"/proc/{p.pid}/wchan").read_text() == "wait_for_partner":
                    return p
        time.sleep(0.01)
    raise AssertionError("nothing blocked on a FIFO")


def assert_nothing_left(work: Path, workers: list[psutil.Process]) -> None:
    assert (work / "f.jsonl").read_bytes() == b"the previous run's rows\n"  # untouched
    assert sorted(p.name for p in work.iterdir()) == ["artifacts", "data", "f.jsonl"]
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]


def test_a_killed_worker_stops_the_run_with_a_clear_error_and_no_output(blocked_run, tmp_path: Path) -> None:
    proc, worker = blocked_run("1")
    worker.kill()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "error: a worker process ended with exit code -9 (killed by a signal)" in err
    assert "no output was written" in err
    assert "Traceback" not in err
    assert_nothing_left(tmp_path, [worker])


def test_ctrl_c_stops_the_workers_and_leaves_no_output(blocked_run, tmp_path: Path) -> None:
    proc, worker = blocked_run("2")
    workers = psutil.Process(proc.pid).children()
    sigign = int(Path(f"/proc/{worker.pid}/status").read_text().split("SigIgn:")[1].split()[0], 16)
    assert sigign & 1 << (signal.SIGINT - 1)  # so Ctrl-C prints no traceback of a worker
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.endswith("interrupted\n")
    assert "Traceback" not in err  # the workers ignored the signal: the parent stopped them
    assert worker in workers
    assert_nothing_left(tmp_path, workers)


def test_a_deadletter_it_cannot_write_stops_the_run_with_a_clear_error(sim_dirs, tmp_path: Path) -> None:
    with_two_bad_btc_rows(sim_dirs[0] / "data", tmp_path)
    (tmp_path / "dl").write_text("a file where the deadletter directory should go")
    proc = run_module("v13.features", "--raw", "data", "--out", "f.jsonl", "--deadletter", "dl", cwd=tmp_path)
    assert proc.returncode == 1
    assert "error: BTCUSDT: [Errno 20] Not a directory: 'dl/features'; no output was written" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "dl"]


def test_an_out_it_cannot_write_is_one_line_and_exit_1(sim_dirs, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the output's directory should go")
    raw = str(sim_dirs[0] / "data")
    proc = run_module("v13.features", "--raw", raw, "--out", "taken/f.jsonl", cwd=tmp_path)
    assert proc.returncode == 1
    assert (
        proc.stderr
        == "python -m v13.features: error: [Errno 17] File exists: 'taken'; no output was written\n"
    )


def test_an_interrupted_signals_run_leaves_the_previous_output_as_it_was(tmp_path: Path) -> None:
    good = valid_feature_line() + b"\n"
    (tmp_path / "f.jsonl").write_bytes(good * 50 + b"not a feature row\n" + good * 50)
    (tmp_path / "s.jsonl").write_bytes(b"the previous run's rows\n")
    fifo_deadletter(tmp_path / "artifacts/deadletter/signals")
    with process_groups() as popen:
        proc = popen(
            [sys.executable, "-m", "v13.signals", "--features", "f.jsonl", "--out", "s.jsonl"], tmp_path
        )
        blocked_on_a_fifo(proc)  # 50 signal rows written, the bad row on its way to the deadletter
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.endswith("interrupted\n")
    assert (tmp_path / "s.jsonl").read_bytes() == b"the previous run's rows\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "f.jsonl", "s.jsonl"]


def test_signals_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").write_bytes(valid_feature_line() + b"\n")
    proc = run_module("v13.signals", "--features", "f.jsonl", "--out", "./f.jsonl", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "python -m v13.signals: error: --out f.jsonl is also --features: "
        "writing it would replace what is read\n"
    )
    assert (tmp_path / "f.jsonl").read_bytes() == valid_feature_line() + b"\n"


def test_a_report_from_signals_without_their_features_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").write_bytes(b"")
    (tmp_path / "s.jsonl").write_bytes(encode_row(signal_row("replay", "BTCUSDT", 1_735_689_601_000)) + b"\n")
    proc = run_module(
        "v13.report", "--features", "f.jsonl", "--signals", "s.jsonl", "--out", "rep", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "error: --features f.jsonl holds no feature rows; the markouts need the mids" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "rep").exists()


def valid_feature_line() -> bytes:
    """One feature row as the engine writes it."""
    engine = FeatureEngine(load_config(environ={}).features)
    t = 1_735_689_600_000
    engine.on_row(TradeRow(ts_ms=t, recv_ts_ms=t, symbol="BTCUSDT", price=100.0, qty=1.0, side="buy",
                           trade_id=1, src="sim"))  # fmt: skip
    return encode_row(engine.finish()[0])


@pytest.mark.parametrize(
    ("module", "args", "needle"),
    [
        ("v13.features", ("--raw", "/no/such/dir", "--out", "x.jsonl"), "is not a directory"),
        ("v13.features", ("--raw", ".", "--out", "x.jsonl"), "holds no raw segments"),
        ("v13.features", ("--raw", ".", "--out", "x.jsonl", "--jobs", "0"), "at least 1 (got '0')"),
        ("v13.features", ("--raw", ".", "--out", "."), "--out . is a directory; give the name of the file"),
        ("v13.signals", ("--features", "/no/such.jsonl", "--out", "x.jsonl"), "is not a file"),
        ("v13.signals", ("--features", str(REPO / "README.md"), "--out", "."), "--out . is a directory"),
        ("v13.report", (), "give either --root RUN_ROOT, or --features and --signals"),
        ("v13.report", ("--root", "."), "--root . holds no run manifest"),
        (
            "v13.report",
            ("--features", "f", "--signals", "s", "--out", str(REPO / "README.md")),
            "is a file; give",
        ),
        ("v13.report", ("--features", "f", "--signals", "s"), "need --out DIR"),
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
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for needle in needles:
        assert needle in proc.stdout
