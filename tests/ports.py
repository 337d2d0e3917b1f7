"""TCP ports of 127.0.0.1 for servers that a test starts in another process, and for "nothing listens here".

Such a server is told its port on its command line, so the test picks the port before the server binds it, often
seconds before (Python and TensorFlow import first). A port found by binding port 0 lies in the kernel's ephemeral
range, which the kernel goes on handing out in that time: to the next bind to port 0, in this or any process, and
as the local port of outgoing connections, the test's own polling of the server included (a client whose local port
is the port it connects to connects to itself). The ports here lie below that range, where the kernel hands out
nothing by itself, and each pytest-xdist worker draws from its own share of them, so two workers of one run never
pick the same port and a fixed port never stands in for a free one.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

LOWEST = 20000
"""The lowest port handed out: above the registered ports that local services commonly listen on."""

DEFAULT_EPHEMERAL_START = 32768
"""Where the kernel's ephemeral range starts when it cannot be read (Linux's default; macOS starts at 49152)."""


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def worker_share(
    worker: str | None, workers: str | None, lowest: int = LOWEST, highest: int | None = None
) -> range:
    """The ports of one pytest-xdist worker (``gw0``, ``gw1``, ...) out of ``workers``; all of them without xdist.

    Raises:
        ValueError: when the shares would be too small to find a free port in.
    """
    end = highest if highest is not None else _ephemeral_start()
    count = int(workers) if workers else 1
    index = int(worker.removeprefix("gw")) if worker else 0
    size = (end - lowest) // count
    if size < 100 or not 0 <= index < count:
        raise ValueError(
            f"cannot share ports {lowest}-{end - 1} among {count} workers (worker {worker!r}): "
            "each needs at least 100"
        )
    return range(lowest + index * size, lowest + (index + 1) * size)


def _cycle(share: range) -> Iterator[int]:
    # A random start, so that two runs on one machine (a developer's and CI) rarely try the same ports first.
    start = random.randrange(len(share))
    while True:
        for offset in range(len(share)):
            yield share[(start + offset) % len(share)]


_share = worker_share(
    os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
)
_ports = _cycle(_share)


def first_free(candidates: Iterable[int]) -> int | None:
    """The first of ``candidates`` that a socket can bind on 127.0.0.1 now; None when none can."""
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None


def free_port() -> int:
    """A port of 127.0.0.1 that nothing holds now, from this worker's share, never the same twice in a row.

    Raises:
        RuntimeError: when every port of this worker's share is taken.
    """
    port = first_free(itertools.islice(_ports, len(_share)))
    if port is None:
        raise RuntimeError(
            f"every port of 127.0.0.1 from {_share.start} to {_share.stop - 1} is taken"
        )
    return port
