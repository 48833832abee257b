"""Recordings in the collector format (hftbacktest): written per symbol and day, read merged in
receive order, plain or gzip, a torn gzip end reported and the lines before it kept."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from v13.errors import UsageError
from v13.sources.recording import Recorder, read_recording, symbol_of_file

NS = 1_721_347_020_984_480_942


def line(stream: str, i: int) -> bytes:
    return orjson.dumps({"stream": stream, "data": {"i": i}})


def test_frames_go_to_their_symbols_files_and_read_back_merged_in_receive_order(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    rec.write(
        NS,
        orjson.dumps({"v13": "connected", "conn": "c0", "streams": ["btcusdt@aggTrade", "ethusdt@aggTrade"]}),
    )
    rec.write(NS + 1, line("btcusdt@aggTrade", 1))
    rec.write(NS + 2, line("ethusdt@aggTrade", 2))
    rec.write(NS + 3, b'{"lastUpdateId":5,"bids":[],"asks":[]}', symbol="ETHUSDT")
    rec.write(NS + 4, line("btcusdt@aggTrade", 3))
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["btcusdt_20240718.gz", "ethusdt_20240718.gz"]
    frames = list(read_recording(tmp_path))
    assert [ns - NS for ns, _raw, _sym in frames] == [0, 0, 1, 2, 3, 4]
    assert [sym for ns, _raw, sym in frames if ns == NS + 3] == ["ETHUSDT"]
    assert {orjson.loads(raw)["streams"][0] for ns, raw, _ in frames if ns == NS} == {
        "btcusdt@aggTrade",
        "ethusdt@aggTrade",
    }


def test_a_torn_gzip_end_is_reported_and_what_precedes_it_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "btcusdt_20240718.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(b"%d %s\n" % (NS + i, line("btcusdt@aggTrade", i)) for i in range(500)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # the recorder was killed mid-write
    errors: list[str] = []
    frames = list(read_recording(path, on_error=lambda why, where, raw: errors.append(why)))
    assert 0 < len(frames) < 500 and [ns - NS for ns, _, _ in frames] == list(range(len(frames)))
    assert errors == ["recording ends in a torn gzip member (the recorder was killed)"]


def test_a_plain_text_recording_reads_too_and_a_bad_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "ethusdt_20240718.txt"
    path.write_bytes(
        b"%d %s\nnot a frame\n%d %s\n"
        % (NS, line("ethusdt@aggTrade", 1), NS + 5, line("ethusdt@aggTrade", 2))
    )
    errors: list[bytes] = []
    frames = list(read_recording(path, on_error=lambda why, where, raw: errors.append(raw)))
    assert [ns - NS for ns, _, _ in frames] == [0, 5] and errors == [b"not a frame\n"]
    assert symbol_of_file(path) == "ETHUSDT"


def test_a_path_without_a_recording_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(UsageError, match="holds no recording in the collector format"):
        read_recording(tmp_path)
