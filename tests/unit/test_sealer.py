"""The sealer's thread seals the segments of streams a reader follows before the others'."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from v13.segments import Sealer


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def make_gates(spool: Path, *names: str) -> list[Path]:
    """FIFOs to seal. A seal opens its file for writing, and a FIFO's open waits for a reader:
    that holds the sealer at a chosen job while others are handed over (a FIFO has no fsync, so
    its own seal then fails)."""
    spool.mkdir(exist_ok=True)
    gates = [spool / f"{name}.part" for name in names]
    for gate in gates:
        os.mkfifo(gate)
    return gates


def hold(gate: Path) -> threading.Thread:
    """A thread that, started, lets the seal of the FIFO ``gate`` go on."""
    return threading.Thread(target=lambda: os.close(os.open(gate, os.O_RDONLY)))


def test_followed_streams_seals_go_before_the_ones_handed_over_earlier(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    gates = make_gates(spool, "gate1", "gate2")
    raw = [spool / f"raw{i}.part" for i in range(3)]
    feature = [spool / f"feature{i}.part" for i in range(3)]
    for path in raw + feature:
        path.write_bytes(b'{"i":1}\n')
    sealer = Sealer()
    sealer.submit(str(gates[0]), str(ready / "gate1.jsonl"), followed=False)  # holds the thread
    for path in raw:
        sealer.submit(str(path), str(ready / f"{path.stem}.jsonl"), followed=False)
    for path in feature:
        sealer.submit(str(path), str(ready / f"{path.stem}.jsonl"))
    sealer.submit(str(gates[1]), str(ready / "gate2.jsonl"))  # holds it after the followed ones
    release = [hold(gate) for gate in gates]
    release[0].start()
    wait_for(lambda: all((ready / f"{p.stem}.jsonl").exists() for p in feature), "followed seals")
    assert [p.exists() for p in raw] == [True, True, True]  # still waiting: not sealed yet
    release[1].start()
    sealer.drain()
    for thread in release:
        thread.join()
    assert sorted(p.name for p in ready.iterdir() if p.name.startswith(("raw", "feature"))) == [
        "feature0.jsonl",
        "feature1.jsonl",
        "feature2.jsonl",
        "raw0.jsonl",
        "raw1.jsonl",
        "raw2.jsonl",
    ]
    sealer.close()


def test_seals_waiting_together_are_done_at_once_and_arrive_whole(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    gates = make_gates(spool, "gate0", "gate1")
    files = [spool / f"f{i}.part" for i in range(40)]  # fewer than a batch
    for i, path in enumerate(files):
        path.write_bytes(b'{"i":%d}\n' % i * (i + 1))
    sealer = Sealer()
    sealer.submit(str(gates[0]), str(ready / "gate0.jsonl"))  # holds the thread while the rest queue
    sealer.submit(str(gates[1]), str(ready / "gate1.jsonl"))  # first of the batch: held while it runs
    for path in files:
        sealer.submit(str(path), str(ready / "day" / f"{path.stem}.jsonl"))  # a new directory
    releases = [hold(gate) for gate in gates]
    releases[0].start()
    # one after the other, nothing would pass the held gate1; done together, the others arrive
    wait_for(lambda: sum(1 for _ in (ready / "day").glob("f*.jsonl")) == len(files), "the batch's seals")
    assert not (ready / "gate1.jsonl").exists()
    releases[1].start()
    sealer.drain()
    for thread in releases:
        thread.join()
    assert sorted(p.name for p in spool.iterdir()) == ["gate0.part", "gate1.part"]
    for i, path in enumerate(files):
        assert (ready / "day" / f"{path.stem}.jsonl").read_bytes() == b'{"i":%d}\n' % i * (i + 1)
    sealer.close()


def test_a_failed_seal_in_a_batch_is_raised_by_the_next_call(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    (gate,) = make_gates(spool, "gate")
    sealer = Sealer()
    sealer.submit(str(gate), str(ready / "gate.jsonl"))
    for i in range(5):
        (spool / f"f{i}.part").write_bytes(b"{}\n")
        sealer.submit(str(spool / f"f{i}.part"), str(ready / f"f{i}.jsonl"))
    sealer.submit(str(spool / "missing.part"), str(ready / "missing.jsonl"))
    release = hold(gate)
    release.start()
    sealer.drain()
    release.join()
    assert sorted(p.name for p in ready.iterdir()) == [f"f{i}.jsonl" for i in range(5)]
    with pytest.raises(RuntimeError, match=r"sealing segments failed.*missing\.part"):
        sealer.submit(str(spool / "f9.part"), str(ready / "f9.jsonl"))
    sealer.close()


def sealer_processes(besides: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This process's children that run v13.sealwork, found by their command line, but for the
    pids ``besides`` (other tests' writers that were left open on purpose, as by a crash)."""
    return [
        p
        for p in psutil.Process().children()
        if p.pid not in besides and any(a.endswith("sealwork.py") for a in p.cmdline())
    ]


def seal_one(sealer: Sealer, spool: Path, ready: Path, name: str) -> Path:
    (spool / f"{name}.part").write_bytes(b"{}\n")
    sealer.submit(str(spool / f"{name}.part"), str(ready / f"{name}.jsonl"))
    return ready / f"{name}.jsonl"


def test_the_sealer_process_outlives_terminal_signals_and_ends_with_close(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    spool.mkdir()
    others = frozenset(p.pid for p in sealer_processes())
    sealer = Sealer()
    assert sealer_processes(others) == []  # started at the first job
    first = seal_one(sealer, spool, ready, "a")
    sealer.drain()
    (process,) = sealer_processes(others)
    process.send_signal(signal.SIGINT)  # a Ctrl-C reaches the whole process group
    process.send_signal(signal.SIGTERM)
    second = seal_one(sealer, spool, ready, "b")
    sealer.drain()
    assert first.read_bytes() == second.read_bytes() == b"{}\n"
    assert process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    sealer.close()
    assert sealer_processes(others) == []
    assert not psutil.pid_exists(process.pid)
    with pytest.raises(RuntimeError, match="the sealer is closed"):  # not a job that waits forever
        seal_one(sealer, spool, ready, "c")
    sealer.close()  # twice is fine


def test_a_killed_sealer_process_is_raised_by_the_next_submit(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    spool.mkdir()
    others = frozenset(p.pid for p in sealer_processes())
    sealer = Sealer()
    seal_one(sealer, spool, ready, "a")
    sealer.drain()
    (process,) = sealer_processes(others)
    process.kill()
    wait_for(lambda: process.status() == psutil.STATUS_ZOMBIE, "the kill")  # not reaped: the sealer does
    lost = seal_one(sealer, spool, ready, "b")
    sealer.drain()
    assert not lost.exists() and (spool / "b.part").exists()  # left for the stream's next writer
    with pytest.raises(
        RuntimeError, match=r"sealing segments failed: the sealer's process ended \(exit code -9\)"
    ):
        seal_one(sealer, spool, ready, "c")
    sealer.close()


def test_a_job_that_cannot_be_handed_over_fails_the_next_submit_without_stopping_the_sealer(
    tmp_path: Path,
) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    spool.mkdir()
    sealer = Sealer()
    sealer.make_dirs([tmp_path / "a path object"])  # type: ignore[list-item]  # JSON takes strings
    draining = threading.Thread(target=sealer.drain)
    draining.start()
    draining.join(10)
    assert not draining.is_alive()  # the job is counted as done, not left pending forever
    with pytest.raises(RuntimeError, match="sealing segments failed: Type is not JSON serializable"):
        seal_one(sealer, spool, ready, "a")
    sealer.close()
