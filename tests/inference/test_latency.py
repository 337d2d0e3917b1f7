"""Single-record latency: warm-up, blocks of calls cycling through the records, figures from the timed calls."""

from __future__ import annotations

import time

import pytest

from deep_learning_workflow.inference import time_single_records


def test_blocks_cycle_through_the_records_after_a_warm_up():
    calls = []

    def forward(record):
        calls.append(record["x"][0])
        return [[0.5, 0.5]]

    records = [{"x": [float(i)]} for i in range(3)]
    latency = time_single_records(forward, records, blocks=4, calls=10)
    assert len(calls) == 3 + 40 and calls[3:13] == [0.0, 1.0, 2.0] * 3 + [0.0]
    assert 0 < latency.best_block_ms and 0 < latency.median_ms <= latency.p95_ms
    with pytest.raises(ValueError, match="No record"):
        time_single_records(forward, [])


def test_the_best_block_is_the_fastest_block_median(monkeypatch):
    clock = [0]
    durations = iter([4_000_000] * 25 + [500_000] * 5 + [4_000_000] * 5)  # nanoseconds per call

    def forward(record):
        clock[0] += next(durations)

    monkeypatch.setattr(time, "perf_counter_ns", lambda: clock[0])
    # 20 warm-up calls, then three blocks of five: the second block is the fast one.
    latency = time_single_records(forward, [None] * 20, blocks=3, calls=5)
    assert latency.best_block_ms == 0.5 and latency.median_ms == 4.0 and latency.p95_ms == 4.0
