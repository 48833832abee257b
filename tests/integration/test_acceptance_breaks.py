"""The DoD mutation suite: for each of the 16 DoD items, a run with exactly that item broken, and
the assertion that exactly the broken items' tests fail, each with its message, and the others
pass. Items that do not interfere share a run; the two runs go in parallel (real stacks).

| DoD item | what is broken | how |
|---|---|---|
| dod01 completed, no exceptions | the broker crashes once (traceback, restart) | code (broker) |
| dod02 JSONL shards | the shard threshold is out of reach | config |
| dod03 SQLite rows | the row threshold is out of reach | config |
| dod04 orders | the order threshold is out of reach | config |
| dod05 report fields | the Markdown report loses its strong_ratio row | code (orchestrator) |
| dod06 layout | the data directory is moved (`paths.data_dir: feeds`) | config |
| dod07 env whitelist | the orchestrator passes an extra variable to every stage | code (orchestrator) |
| dod08 contract | the signals table's columns are reordered | code (signal) |
| dod09 dropped | every 25th signal row vanishes without being counted | code (signal) |
| dod10 rotation | JSONL segments rotate every 150 s | config |
| dod11 RSS / open files | the open-files limit is 5 | config |
| dod12 deadletter | the harvest writes one feature row that breaks its contract | code (harvest) |
| dod13 manifest | the manifest's exit_code is a string | code (orchestrator) |
| dod14 orchestrator log | the broker's Ready event is not logged | code (orchestrator) |
| dod15 last 5 minutes | the report's last five minutes lose a minute | code (orchestrator) |
| dod16 report recount | the report counts one buy too many | code (orchestrator) |
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.helpers import REPO, write_config

DOD = (REPO / "tests/acceptance/test_dod.py").read_text()
MUTANTS = Path(__file__).parent / "mutants" / "sitecustomize.py"
ALL = {f"dod{i:02d}" for i in range(1, 17)}
SINK_ONLY = {"dod02": "jsonl", "dod10": "jsonl", "dod03": "sqlite"}


@dataclass(frozen=True)
class Mutation:
    config: dict[str, object]
    message: str  # a literal part of what the failing DoD test says


MUTATIONS = {
    "dod01": Mutation({}, "broker: traceback in"),
    "dod02": Mutation(
        {"acceptance.jsonl_shards_min": 100_000}, ".jsonl shards in runtime/ready/signal, need >= "
    ),
    "dod03": Mutation({"acceptance.sqlite_rows_min": 1_000_000}, "rows in signals, need >= "),
    "dod04": Mutation({"acceptance.orders_min": 1_000_000}, "too few mock orders, or not both sides"),
    "dod05": Mutation({}, "report Markdown lacks ['strong_ratio']"),
    "dod06": Mutation(
        {"paths.data_dir": "feeds"}, "not where DESIGN.md section 3 puts them: ['trade (data/raw/"
    ),
    "dod07": Mutation({}, "has ['V13_LEAKED_SECRET']"),
    "dod08": Mutation({}, "sampled signal rows: [\"fields ['emit_ts_ms', 'run_id'"),
    "dod09": Mutation({}, "rows were lost: feature rows inside the run have no signal row"),
    "dod10": Mutation({"segments.rotate_seconds": 150}, "went longer than a minute without a JSONL rotation"),
    "dod11": Mutation({"acceptance.open_files_max": 5}, "peak (RSS MB, open files) over 600.0 / 5"),
    "dod12": Mutation({}, "deadletter not empty: 1 entries"),
    "dod13": Mutation({}, "breaks the documented manifest: Expected `int`, got `str`"),
    "dod14": Mutation({}, "orchestrator.log lacks events {'broker': ['Ready']}"),
    "dod15": Mutation({}, "the report's numbers differ from a recount of the sink: last_5min"),
    "dod16": Mutation(
        {}, "the report's numbers differ from a recount of the sink: (report, recount) {'buy_count'"
    ),
}


def literal(text: str) -> str:
    """``text`` as an fnmatch pattern that matches it literally, anywhere in a line."""
    return "*" + text.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]").replace("*", "[*]") + "*"


# items that do not interfere share a run: (sink, minutes, broken items)
RUNS = [
    (
        "jsonl",
        "1.5",
        {"dod01", "dod02", "dod05", "dod06", "dod07", "dod10", "dod13", "dod14", "dod15", "dod16"},
    ),
    ("sqlite", "1", {"dod03", "dod04", "dod08", "dod09", "dod11", "dod12"}),
]


def start_session(base: Path, sink: str, minutes: str, broken: set[str]) -> subprocess.Popen[str]:
    mutants = base / "mutants"
    mutants.mkdir(parents=True)
    shutil.copy(MUTANTS, mutants / "sitecustomize.py")
    (mutants / "mutations.json").write_text(json.dumps(sorted(broken)))
    changes = {k: v for item in broken for k, v in MUTATIONS[item].config.items()}
    cfg = write_config(base / "broken.yaml", changes)
    (base / "test_dod.py").write_text(DOD)
    env = {**os.environ, "PYTHONPATH": f"{mutants}:{REPO}"}
    argv = [sys.executable, "-m", "pytest", "test_dod.py", f"--v13-sink={sink}",
            f"--v13-minutes={minutes}", f"--v13-config={cfg}", f"--v13-root={base / 'runs'}",
            "-p", "no:cacheprovider", "-rA"]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_each_broken_dod_item_fails_exactly_its_own_test(tmp_path: Path) -> None:
    assert set(MUTATIONS) == ALL and set().union(*(b for _, _, b in RUNS)) == ALL
    procs = [start_session(tmp_path / sink, sink, minutes, broken) for sink, minutes, broken in RUNS]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for (sink, _minutes, broken), proc, out in zip(RUNS, procs, outputs, strict=True):
        failed = set(re.findall(r"^FAILED test_dod\.py::test_(dod\d+)_", out, re.M))
        passed = set(re.findall(r"^PASSED test_dod\.py::test_(dod\d+)_", out, re.M))
        runs_on_sink = {d for d in ALL if SINK_ONLY.get(d, sink) == sink}
        assert failed == broken, f"{sink}: failed {sorted(failed)}, broken {sorted(broken)}\n{out[-6000:]}"
        assert passed == runs_on_sink - broken, f"{sink}: passed {sorted(passed)}\n{out[-6000:]}"
        result = pytest.RunResult(proc.returncode, out.splitlines(), [], 0.0)
        for item in sorted(broken):  # the failure's own section holds the expected message
            result.stdout.fnmatch_lines(
                [f"_* test_{item}_*[[]{sink}[]] _*", literal(MUTATIONS[item].message)]
            )
