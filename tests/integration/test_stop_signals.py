"""A stop signal reaches a stage at any point of its loop, and the stage still stops cleanly."""

from __future__ import annotations

import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 300

# One process, many stage runtimes: the test sends each SIGTERM 0-2 ms after it is up, while the
# main thread spins in ``rt.wait``, which holds a lock most of the time (an ``Event`` guards its flag with
# a lock that is not reentrant): a handler that took that lock again would hang there.
BUSY_STAGE = """
import sys
from pathlib import Path
from v13.config import load_config
from v13.layout import Layout
from v13.stage import StageRuntime

base, rounds = Path(sys.argv[1]), int(sys.argv[2])
cfg = load_config(None)
for i in range(rounds):
    rt = StageRuntime("signal", cfg, Layout.from_config(cfg, base / str(i)), first_stage=True)
    print("up", i, flush=True)
    while not rt.wait(0):
        pass
    rt.stopped()
"""


def test_sigterm_anywhere_in_the_loop_stops_the_stage_with_one_stopping_line_before_stopped(
    tmp_path: Path,
) -> None:
    log = tmp_path / "stderr.log"
    rng = random.Random(13)
    with log.open("wb") as err, subprocess.Popen(
        [sys.executable, "-c", BUSY_STAGE, str(tmp_path / "roots"), str(ROUNDS)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=err,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        try:
            for i in range(ROUNDS):
                ready, _, _ = select.select([proc.stdout], [], [], 10)
                assert ready, f"round {i}: the stage did not stop after SIGTERM (or did not start)"
                assert proc.stdout.readline().split() == [b"up", str(i).encode()]
                time.sleep(rng.uniform(0.0, 0.002))
                proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    lifecycle = [line.split(" ", 2)[2] for line in text.splitlines() if " signal Stopp" in line]
    assert lifecycle[0::2] == ["Stopping signal=SIGTERM"] * ROUNDS, text[-2000:]
    assert all(line.startswith("Stopped") for line in lifecycle[1::2])
    assert len(lifecycle) == 2 * ROUNDS
