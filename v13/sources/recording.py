"""Raw exchange recordings in the collector format used by hftbacktest: one frame per line,
``<local receive time in ns> <raw websocket text>``, plain text or gzip, one file per symbol
(``btcusdt_20240718.gz``). A REST depth snapshot is a line whose JSON has ``lastUpdateId``; its
symbol is the file's. The harvest's own recordings (``source.binance.record``) are written in
this format, so outside recordings and ours are interchangeable; ours add a control line
``{"v13":"connected","conn":...,"streams":[...]}`` each time a connection (re)opens.

Example::

    rec = Recorder(layout.data.recording_dir(run_id))
    rec.write(recv_ns, raw, symbol=None)   # the symbol of a frame comes from its stream name
    rec.flush()                           # lines reach the file (a gzip sync point)
    for recv_ns, raw, symbol in read_recording(path): ...
"""

from __future__ import annotations

import gzip
import heapq
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

import orjson

from v13.errors import UsageError

__all__ = ["Recorder", "is_recording", "read_recording", "recording_files", "symbol_of_file"]

Frame = tuple[int, bytes, str | None]  # (receive time ns, raw text, symbol of a snapshot)
_STREAM_KEY = b'"stream":"'
_LINE = re.compile(rb"^\d{10,20} [{\[]")
_GZIP = b"\x1f\x8b"


def _stream_of(raw: bytes) -> str | None:
    start = raw.find(_STREAM_KEY, 0, 64)
    if start < 0:
        return None
    start += len(_STREAM_KEY)
    end = raw.find(b'"', start)
    return raw[start:end].decode("ascii", "replace") if end > 0 else None


def symbol_of_file(path: Path) -> str | None:
    """``btcusdt_20240718.gz`` -> ``BTCUSDT``; None when the name says no symbol."""
    head = path.name.split("_", 1)[0].split(".", 1)[0]
    return head.upper() if head.isalnum() and "_" in path.name else None


class Recorder:
    """Appends frames to ``<dir>/<symbol>_<YYYYMMDD>.gz`` (gzip, one member per open)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self._files: dict[tuple[str, str], BinaryIO] = {}
        self.lines = 0

    def write(self, recv_ns: int, raw: bytes, symbol: str | None = None) -> None:
        """One frame; a control line goes to the file of every symbol it names."""
        if raw.startswith(b'{"v13"'):
            doc = orjson.loads(raw)
            by_symbol: dict[str, list[str]] = {}
            for stream in doc.get("streams", []):
                by_symbol.setdefault(stream.split("@", 1)[0].upper(), []).append(stream)
            for sym, streams in by_symbol.items():
                line = orjson.dumps({**doc, "streams": streams})
                self._file(sym, recv_ns).write(b"%d %s\n" % (recv_ns, line))
            self.lines += 1
            return
        stream = _stream_of(raw)
        owner = stream.split("@", 1)[0].upper() if stream else symbol
        if owner is None:
            raise ValueError("a recorded line needs a stream name or a symbol")
        self._file(owner, recv_ns).write(b"%d %s\n" % (recv_ns, raw))
        self.lines += 1

    def flush(self) -> None:
        for fh in self._files.values():
            fh.flush()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _file(self, symbol: str, recv_ns: int) -> BinaryIO:
        day = datetime.fromtimestamp(recv_ns / 1e9, tz=UTC).strftime("%Y%m%d")
        fh = self._files.get((symbol, day))
        if fh is None:
            for key in [k for k in self._files if k[0] == symbol]:  # a new day: the old file is done
                self._files.pop(key).close()
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{symbol.lower()}_{day}.gz"
            fh = cast(BinaryIO, gzip.open(path, "ab"))  # noqa: SIM115 - closed in close()
            self._files[(symbol, day)] = fh
        return fh


def _opener(path: Path) -> Callable[[], BinaryIO]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP:
        return lambda: cast(BinaryIO, gzip.open(path, "rb"))
    return lambda: open(path, "rb")


def is_recording(path: Path) -> bool:
    """True for a gzip or text file whose first line is ``<ns> {...}``."""
    try:
        with _opener(path)() as fh:
            first = fh.readline(256)
    except (OSError, EOFError, zlib.error):
        return False
    return bool(_LINE.match(first))


def recording_files(path: Path) -> list[Path]:
    """The recording files of a file or a directory (not hidden, in the collector format)."""
    if path.is_file():
        return [path] if is_recording(path) else []
    found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in found if is_recording(p)]


def _lines(path: Path, symbol: str | None, on_error: Callable[[str, Path, bytes], None]) -> Iterator[Frame]:
    try:
        with _opener(path)() as fh:
            for line in fh:
                ns, sep, raw = line.rstrip(b"\r\n").partition(b" ")
                if not sep or not ns.isdigit():
                    if line.strip():
                        on_error("recording line is not '<ns> <frame>'", path, line[:200])
                    continue
                yield int(ns), raw, symbol
    except (EOFError, zlib.error, gzip.BadGzipFile):
        on_error("recording ends in a torn gzip member (the recorder was killed)", path, b"")


def read_recording(
    path: Path,
    *,
    default_symbol: str | None = None,
    on_error: Callable[[str, Path, bytes], None] | None = None,
) -> Iterator[Frame]:
    """Every frame of a recording file or directory, merged by receive time."""
    files = recording_files(path)
    if not files:
        raise UsageError(
            f"{path} holds no recording in the collector format ('<ns> <frame>' lines, plain or .gz)"
        )
    report = on_error or (lambda _why, _path, _line: None)
    streams = [_lines(p, symbol_of_file(p) or default_symbol, report) for p in files]
    return heapq.merge(*streams, key=lambda frame: frame[0])
