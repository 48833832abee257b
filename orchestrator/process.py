"""One supervised child process: start, observe, stop its whole process group.

The child runs in its own session (``start_new_session=True``, never ``preexec_fn``), stdin from
/dev/null, stdout/stderr appended straight to its log files (no pipe that could fill up).
Stopping signals the leader, then the group, then SIGKILLs the group and every descendant seen
before the stop; the child counts as stopped only when its group and those
descendants are gone (a leader that exited is not enough).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["Child", "TreeMetrics", "group_alive"]


@dataclass(frozen=True)
class TreeMetrics:
    """RSS and open files summed over a child's process tree."""

    rss_bytes: int
    open_files: int
    processes: int


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process of the group exists.

    ``killpg(pgid, 0)`` also answers for zombies, which an init that does not reap would keep
    forever, so a positive answer is checked against the process table.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Child:
    """A started child; ``poll()`` reaps it, ``stop()`` ends its whole tree."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, *, stdout: Path, stderr: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.stdout_path = stdout
        self.stderr_path = stderr
        for path in (stdout, stderr):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.stderr_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.pgid = self.pid
        self.started_at = time.time()
        self.psutil = psutil.Process(self.pid)  # kept: it checks create_time, so pid reuse is caught
        self._descendants: dict[int, psutil.Process] = {}

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def poll(self) -> int | None:
        """Reap the leader if it exited; returns its exit code or None while it runs."""
        return self.popen.poll()

    def stderr_text(self) -> str:
        """What the child wrote to stderr since this start."""
        try:
            with open(self.stderr_path, "rb") as fh:
                fh.seek(self.stderr_offset)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _tree(self) -> list[psutil.Process]:
        procs = []
        if _alive(self.psutil):
            procs.append(self.psutil)
            with contextlib.suppress(psutil.NoSuchProcess):
                for p in self.psutil.children(recursive=True):
                    self._descendants[p.pid] = p
        procs += [p for p in self._descendants.values() if _alive(p) and p not in procs]
        return procs

    def metrics(self) -> TreeMetrics:
        rss = files = n = 0
        for proc in self._tree():
            try:
                rss += proc.memory_info().rss
                files += proc.num_fds()
                n += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return TreeMetrics(rss_bytes=rss, open_files=files, processes=n)

    def environ(self) -> dict[str, str]:
        """The child's environment as the kernel holds it (/proc/<pid>/environ)."""
        try:
            data = Path(f"/proc/{self.pid}/environ").read_bytes()
        except OSError:
            return {}
        pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
        return {k.decode(): v.decode("utf-8", "replace") for k, v in pairs}

    def gone(self) -> bool:
        """Leader reaped, process group empty, and no descendant seen earlier still alive."""
        self.poll()
        if self.popen.returncode is None:
            return False
        if group_alive(self.pgid):
            return False
        return not any(_alive(p) for p in self._descendants.values())

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def _wait_gone(self, seconds: float, abort: Callable[[], bool] | None = None) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.gone():
                return True
            if abort is not None and abort():
                return False
            time.sleep(0.05)
        return self.gone()

    def stop(self, grace_s: float, *, force: bool = False, abort: Callable[[], bool] | None = None) -> str:
        """End the child's tree; returns how: ``exited``, ``sigterm``, ``group_sigterm``, ``sigkill``.

        ``abort`` (a second Ctrl-C) cuts the grace periods short and goes to SIGKILL.
        """
        self._tree()  # snapshot descendants before anything is signalled
        if self.gone():
            return "exited"
        if not force:
            if self.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.send_signal(signal.SIGTERM)
            if self._wait_gone(grace_s, abort):
                return "sigterm"
            self._tree()
            self._signal_group(signal.SIGTERM)
            if self._wait_gone(2.0, abort):
                return "group_sigterm"
        self._tree()
        self._signal_group(signal.SIGKILL)
        for proc in self._descendants.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if not self._wait_gone(5.0):
            raise RuntimeError(f"{self.name} (pid {self.pid}) survived SIGKILL")
        return "sigkill"
