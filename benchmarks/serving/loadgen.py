"""A bounded HTTP/1.1 load generator for 127.0.0.1: a fixed number of requests over N keep-alive connections.

Hand-written on asyncio streams (uvloop when installed) so that the client, not the server, is never the
bottleneck on a small machine: requests are pre-encoded bytes, responses are read by Content-Length.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import numpy as np

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def encode_request(method: str, path: str, body: bytes = b"", port: int = 8000) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: np.ndarray
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000)


async def _client(
    host: str,
    port: int,
    requests: list[bytes],
    count: int,
    offset: int,
    latencies: list,
    statuses: dict,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in range(count):
            request = requests[(offset + i) % len(requests)]
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _LENGTH.search(head)
            if match:
                await reader.readexactly(int(match.group(1)))
            latencies.append(time.perf_counter() - start)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(
    host: str, port: int, requests: list[bytes], total: int, concurrency: int
) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    per_client = [
        total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)
    ]
    start = time.perf_counter()
    await asyncio.gather(
        *(
            _client(host, port, requests, n, i * 7919, latencies, statuses)
            for i, n in enumerate(per_client)
        )
    )
    seconds = time.perf_counter() - start
    return LoadResult(total, seconds, np.asarray(latencies), statuses)


def run_load(
    port: int, requests: list[bytes], total: int, concurrency: int = 8, host: str = "127.0.0.1"
) -> LoadResult:
    """Send ``total`` requests (cycling through ``requests``) over ``concurrency`` connections to 127.0.0.1."""
    if host not in {"127.0.0.1", "localhost"}:
        raise ValueError("The load generator only targets 127.0.0.1.")
    try:
        import uvloop

        return uvloop.run(_run(host, port, requests, total, concurrency))
    except ImportError:
        return asyncio.run(_run(host, port, requests, total, concurrency))
