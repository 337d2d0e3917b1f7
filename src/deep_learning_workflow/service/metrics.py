"""The service's Prometheus metrics, on a registry of its own (one per app, so tests can run several).

With several worker processes (:mod:`.workers`) prometheus_client's multiprocess mode is on: each worker writes its
values to a shared folder, ``/metrics`` sums every worker's, and each gauge says how its workers' values combine.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "dlw"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable naming the workers' shared metrics folder (set by :mod:`.workers`)."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HANDLERS = ("/predict", "/livez", "/readyz", "/metadata", "/metrics", "/openapi.json", "/docs")


class ServiceMetrics:
    """The metrics and cheap accessors for the hot path (label children are cached)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        p = PREFIX
        self.requests = Counter(
            f"{p}_http_requests",
            "HTTP requests by handler, method and status",
            ["handler", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{p}_http_request_duration_seconds",
            "Time from receiving a request to the end of its response",
            ["handler"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            f"{p}_http_errors",
            "Requests answered with an error, by handler and reason",
            ["handler", "reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            f"{p}_requests_in_flight",
            "Requests being served",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.predictions = Counter(
            f"{p}_predictions",
            "Records scored, by variant, model version and predicted label",
            ["variant", "model_version", "label"],
            registry=registry,
        )
        self.probability = Histogram(
            f"{p}_predicted_probability",
            "Reported probability of the records answered, by variant",
            ["variant"],
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=registry,
        )
        self.unseen = Counter(
            f"{p}_unseen_categories",
            "Categorical values never seen in training (mapped to the OOV bucket)",
            ["column"],
            registry=registry,
        )
        self.missing = Counter(
            f"{p}_missing_values", "Null feature values received", ["column"], registry=registry
        )
        self.ready = Gauge(
            f"{p}_model_ready",
            "1 when every configured bundle is loaded and verified",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.info = Gauge(
            f"{p}_model_info",
            "The loaded model versions (value 1)",
            ["variant", "model_version", "engine"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.log_written = Counter(
            f"{p}_prediction_log_written",
            "Records written to the prediction log (served and shadow)",
            registry=registry,
        )
        self.log_dropped = Counter(
            f"{p}_prediction_log_dropped",
            "Records that could not be logged (the database refused them or stayed down, or the queue had no room in time)",
            registry=registry,
        )
        self.log_queue = Gauge(
            f"{p}_prediction_log_queue",
            "Records waiting to be logged",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.shadow_errors = Counter(
            f"{p}_shadow_errors",
            "Requests the shadow version could not score",
            ["reason"],
            registry=registry,
        )
        self.drift = Gauge(
            f"{p}_feature_drift",
            "Drift of a feature over the recent window (PSI/JS numeric, L-inf categorical)",
            ["column", "metric"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.drifted = Gauge(
            f"{p}_feature_drifted",
            "1 when the feature's drift is above its threshold",
            ["column"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.retraining_due = Gauge(
            f"{p}_drift_retraining_due",
            "1 when the recent window's drift makes retraining due",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.drift_rows = Gauge(
            f"{p}_drift_window_records",
            "Records in the window the drift gauges use",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def observe_request(self, handler: str, method: str, status: int, seconds: float) -> None:
        key = (handler, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(handler, method, str(status))
        child.inc()
        latency = self._latency_children.get(handler)
        if latency is None:
            latency = self._latency_children[handler] = self.latency.labels(handler)
        latency.observe(seconds)

    def render(self) -> bytes:
        if os.environ.get(MULTIPROCESS_DIR):
            from prometheus_client import multiprocess

            every_worker = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_worker)
            return generate_latest(every_worker)
        return generate_latest(self.registry)


def observe_many(child: Any, values: Any) -> None:
    """Observe many values on a histogram child at once: one bucket count per bucket instead of a locked update
    per value (a batch of 1,000 records would otherwise spend longer here than in the model)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if values.size < 16:
        for value in values.tolist():
            child.observe(value)
        return
    # prometheus_client's own fields: per-bucket counts (not cumulative; the exposition sums them) and the sum.
    bounds = np.asarray(child._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(child._buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
    child._sum.inc(float(values.sum()))
