"""The sealer's thread seals the segments of streams a reader follows before the others'."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from v13.segments import Sealer


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def test_followed_streams_seals_go_before_the_ones_handed_over_earlier(tmp_path: Path) -> None:
    spool, ready = tmp_path / "spool", tmp_path / "ready"
    spool.mkdir()
    # A seal opens its file for writing; a FIFO's open waits for a reader, which holds the
    # sealer's thread at a chosen job while the others are handed over.
    gates = [spool / "gate1.part", spool / "gate2.part"]
    for gate in gates:
        os.mkfifo(gate)
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
    release = [threading.Thread(target=lambda g=g: os.close(os.open(g, os.O_RDONLY))) for g in gates]
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
