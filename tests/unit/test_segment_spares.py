"""A writer's next segment is a spare file made ahead by the sealer's thread, given its name by a
link, so a rotation (and 00:00 UTC, when every stream opens a segment) creates no file in the loop
that writes rows; spares are never read as segments and never outlive their writer."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import orjson
import pytest

from v13.segments import NextDayDirs, Sealer, SegmentFollower, SegmentWriter

DAY0 = 1_764_300_000_000  # 2025-11-28, UTC
MIDNIGHT = 1_764_374_400_000  # 2025-11-29 00:00 UTC
TAIL = "BTCUSDT/trades"


def line(i: int) -> bytes:
    return orjson.dumps({"i": i})


@pytest.fixture
def sealer():
    s = Sealer()
    yield s
    s.close()


def spares(root: Path) -> list[Path]:
    return sorted(root.rglob("*.spare"))


def parts(root: Path) -> list[Path]:
    return sorted(root.rglob("*.part"))


def read_all(tmp_path: Path) -> list[int]:
    follower = SegmentFollower(tmp_path / "spool", tmp_path / "ready", TAIL)
    return [orjson.loads(raw)["i"] for raw, _ in follower.read(10_000)]


def writer(tmp_path: Path, sealer: Sealer | None, writer_id: str = "w") -> SegmentWriter:
    return SegmentWriter(tmp_path / "spool", tmp_path / "ready", TAIL, writer_id=writer_id, sealer=sealer)


def test_each_rotation_gives_the_spare_made_ahead_the_next_segments_name(tmp_path: Path, sealer) -> None:
    spool = tmp_path / "spool"
    w = writer(tmp_path, sealer)
    for i in range(4):
        w.write(line(i), DAY0 + 2 * i * 1_000)
        sealer.drain()
        (spare,) = spares(spool)
        spare_ino = spare.stat().st_ino
        assert spare.parent == parts(spool)[0].parent
        w.seal()
        sealer.drain()
        assert parts(spool) == []
        w.write(line(100 + i), DAY0 + (2 * i + 1) * 1_000)
        (part,) = parts(spool)
        assert part.stat().st_ino == spare_ino  # the spare, renamed: no file created by the write
        w.seal()
    w.close()
    sealer.drain()
    assert spares(tmp_path) == []
    assert read_all(tmp_path) == [0, 100, 1, 101, 2, 102, 3, 103]


def test_at_midnight_the_new_days_first_segment_is_the_spare_in_the_directory_made_ahead(
    tmp_path: Path, sealer
) -> None:
    spool = tmp_path / "spool"
    w = writer(tmp_path, sealer)
    w.write(line(0), MIDNIGHT - 30_000)
    NextDayDirs(sealer).tick(MIDNIGHT - 30_000, [w])
    sealer.drain()
    spare_ino = spares(spool)[0].stat().st_ino
    w.write(line(1), MIDNIGHT + 2)
    sealer.drain()  # the day's last segment is sealed
    (part,) = parts(spool)
    assert part.parent == spool / "20251129" / TAIL
    assert part.stat().st_ino == spare_ino
    w.close()
    sealer.drain()
    assert read_all(tmp_path) == [0, 1]
    assert spares(tmp_path) == []


def test_a_spare_removed_by_hand_is_not_missed_and_is_made_again(tmp_path: Path, sealer) -> None:
    spool = tmp_path / "spool"
    w = writer(tmp_path, sealer)
    w.write(line(0), DAY0)
    sealer.drain()
    spares(spool)[0].unlink()
    w.seal()
    w.write(line(1), DAY0 + 1)  # no spare: the segment is created
    w.flush()
    sealer.drain()
    assert len(spares(spool)) == 1  # and the writer has one again for its next rotation
    w.close()
    sealer.drain()
    assert read_all(tmp_path) == [0, 1]
    assert spares(tmp_path) == []


def test_a_dead_writers_spare_is_removed_by_the_streams_next_writer(tmp_path: Path, sealer) -> None:
    spool = tmp_path / "spool"
    dead = writer(tmp_path, sealer, "dead")
    dead.write(line(0), DAY0)
    dead.flush()
    sealer.drain()
    assert [p.name for p in spares(spool)] == ["dead.spare"]  # the writer dies here: no close
    nxt = writer(tmp_path, None, "next")
    assert nxt.recovered == 1
    assert spares(tmp_path) == []
    nxt.write(line(1), DAY0 + 1)
    nxt.close()
    assert read_all(tmp_path) == [0, 1]


def test_a_writer_without_a_sealer_makes_no_spare(tmp_path: Path) -> None:
    w = writer(tmp_path, None)
    w.write(line(0), DAY0)
    w.seal()
    w.write(line(1), DAY0 + 1)
    w.close()
    assert spares(tmp_path) == []
    assert read_all(tmp_path) == [0, 1]
    assert not [n for n in os.listdir(tmp_path / "ready" / "20251128" / TAIL) if not n.endswith(".jsonl")]


def test_on_a_file_system_without_hard_links_segments_are_created_and_no_spare_is_kept(
    tmp_path: Path, sealer, monkeypatch
) -> None:
    def no_links(src, dst):  # what FAT and some network file systems answer
        raise PermissionError(errno.EPERM, "Operation not permitted", src)

    monkeypatch.setattr(os, "link", no_links)
    w = writer(tmp_path, sealer)
    for i in range(4):
        w.write(line(i), DAY0 + i * 1_000)
        sealer.drain()
        w.seal()
    sealer.drain()
    assert spares(tmp_path) == []  # tried once, then no more
    w.close()
    sealer.drain()
    assert read_all(tmp_path) == [0, 1, 2, 3]
    assert len(list((tmp_path / "ready").rglob("*.jsonl"))) == 4


def test_a_spare_not_made_yet_when_the_next_segment_opens_is_not_left_behind(tmp_path: Path, sealer) -> None:
    """The sealer's thread is behind: the writer creates the new day's segment itself, and the
    spare it asked for in yesterday's directory, made afterwards, must not stay there."""
    spool = tmp_path / "spool"
    spool.mkdir()
    gate = spool / "gate.part"
    os.mkfifo(gate)  # a seal opens its file for writing: a FIFO holds the thread until read
    sealer.submit(str(gate), str(tmp_path / "gate.jsonl"), followed=False)
    w = writer(tmp_path, sealer)
    w.write(line(0), MIDNIGHT - 1_000)  # asks for a spare in 20251128/, behind the gate
    w.write(line(1), MIDNIGHT + 1_000)  # the spare is not there: the segment is created
    release = threading.Thread(target=lambda: os.close(os.open(gate, os.O_RDONLY)))
    release.start()
    sealer.drain()
    release.join()
    assert [p.relative_to(spool).as_posix() for p in spares(spool)] == [f"20251129/{TAIL}/w.spare"]
    assert list((spool / "20251128" / TAIL).iterdir()) == []  # sealed, and no spare
