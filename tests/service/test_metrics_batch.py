"""A batch's probabilities observed at once give the histogram that observing them one by one gives."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from deep_learning_workflow.service.metrics import observe_many


@pytest.mark.parametrize("size", [3, 1000])
def test_observe_many_matches_one_by_one(size):
    values = np.random.default_rng(0).random(size)
    values[:3] = [0.1, 1.0, 0.0]  # on a bucket's upper bound, and the ends
    buckets = tuple(i / 10 for i in range(1, 11))
    one, many = (
        Histogram("p", "p", ["v"], registry=CollectorRegistry(), buckets=buckets).labels("a")
        for _ in range(2)
    )
    for value in values:
        one.observe(float(value))
    observe_many(many, values)
    assert [b.get() for b in one._buckets] == [b.get() for b in many._buckets]
    assert many._sum.get() == pytest.approx(one._sum.get())
