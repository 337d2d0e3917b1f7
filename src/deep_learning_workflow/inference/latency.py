"""Single-record latency: the one way tuning, pruning and the benchmarks time a forward pass per record."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

WARMUP_CALLS = 20


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call."""

    median_ms: float
    """Median over every timed call."""
    p95_ms: float
    """95th percentile over every timed call."""
    best_block_ms: float
    """The smallest block median: contention from other processes only ever adds time, so the fastest block is
    the steadiest estimate of the call's own cost."""


def time_single_records(
    call: Callable[[Any], Any], records: Sequence[Any], blocks: int = 1, calls: int | None = None
) -> Latency:
    """Time ``call(record)`` one record at a time, after a warm-up (first-call caches, a ``tf.function``'s trace).

    Args:
        call: what to time, e.g. an engine's forward pass or a whole validate-and-score.
        records: the inputs, cycled through.
        blocks: how many blocks of ``calls`` calls.
        calls: calls per block (default: one per record).

    Raises:
        ValueError: when there is no record.
    """
    if not records:
        raise ValueError("No record to measure the latency on.")
    calls = calls or len(records)
    for record in records[:WARMUP_CALLS]:
        call(record)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection inside a timed call belongs to no record
    spent: list[list[int]] = []
    try:
        for _ in range(blocks):
            block = []
            for index in range(calls):
                record = records[index % len(records)]
                start = time.perf_counter_ns()
                call(record)
                block.append(time.perf_counter_ns() - start)
            spent.append(block)
    finally:
        if enabled:
            gc.enable()
    every = np.concatenate([np.asarray(block, dtype="float64") for block in spent]) / 1e6
    return Latency(
        median_ms=float(np.median(every)),
        p95_ms=float(np.percentile(every, 95)),
        best_block_ms=min(statistics.median(block) for block in spent) / 1e6,
    )
