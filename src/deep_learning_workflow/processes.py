"""Who is running: this process's identity, and whether another process recorded earlier is still alive.

A process is named by its pid and its start time (``/proc/<pid>/stat`` on Linux), so that a pid reused by an
unrelated process after a crash is not taken for the run that recorded it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_start_time(pid: int) -> float | None:
    """The UNIX time a live process started (Linux), or None when it is gone or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    boot = _boot_time()
    if boot is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return boot + int(fields[19]) / _CLOCK_TICKS


def current_process() -> dict[str, Any]:
    """This process: pid, host, start time (UNIX and ISO, UTC) and command line."""
    started = process_start_time(os.getpid()) or time.time()
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": round(started, 2),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def is_alive(record: dict[str, Any]) -> bool:
    """Whether the process a :func:`current_process` record names still runs (another host's counts as alive)."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    started = process_start_time(pid)
    if started is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return "started" not in record or not Path("/proc").is_dir()
    recorded = record.get("started")
    return recorded is None or abs(started - float(recorded)) < 2.0


def describe(record: dict[str, Any]) -> str:
    """``pid 123 on host, started 2026-01-01T10:00:00+00:00: kedro run ...``."""
    return (
        f"pid {record.get('pid')} on {record.get('host')}, started {record.get('started_at')}: "
        f"`{record.get('command')}`"
    )


def git_commit(folder: Path) -> str:
    """The git commit of ``folder`` (with ``+changes`` when the work tree differs from it), or ``no git``."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "no git"
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}+changes" if changed else commit
