"""Small file helpers: atomic replace, UTC stamps, run ids."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from v13.sealwork import fsync_dir

__all__ = [
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_json",
    "fsync_dir",
    "new_run_id",
    "now_ms",
    "read_json",
    "utc_day",
    "utc_iso",
]


def now_ms() -> int:
    """Wall clock, UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def utc_day(ts_ms: int) -> str:
    """YYYYMMDD of an epoch-ms timestamp, in UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y%m%d")


def utc_iso(ts_ms: int) -> str:
    """ISO-8601 UTC with seconds, e.g. 2026-11-28T22:24:16Z."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(ts_ms: int | None = None) -> str:
    """A run id that sorts by start time: 20261128T222416Z-1a2b3c."""
    stamp = datetime.fromtimestamp((ts_ms or now_ms()) / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@contextmanager
def atomic_output(path: Path, *, durable: bool = False) -> Iterator[BinaryIO]:
    """A file for ``path``'s new content, written beside it: it replaces ``path`` when the block
    ends without an error, so a reader sees the old or the new file, never a part; after an error
    (Ctrl-C included) it is removed and ``path`` is as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a mix."""
    with atomic_output(path, durable=durable) as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = False) -> None:
    """Atomically write ``obj`` as indented JSON (msgspec Structs and dataclasses included)."""
    atomic_write_bytes(path, _dumps(obj), durable=durable)


def _dumps(obj: Any) -> bytes:
    import msgspec

    if isinstance(obj, msgspec.Struct):
        obj = msgspec.to_builtins(obj)
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_DATACLASS) + b"\n"


def read_json(path: Path) -> Any:
    """Parse a JSON file; raises OSError or orjson.JSONDecodeError."""
    return orjson.loads(Path(path).read_bytes())
