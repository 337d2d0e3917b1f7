"""What the app serves: the loaded model versions, readiness, the prediction log writer and the live drift
gauges, and the per-request counting of labels, probabilities, missing and unseen values."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections import Counter as Tally
from typing import Any

from .metrics import ServiceMetrics, observe_many
from .prediction_log import PredictionLogWriter
from .scoring import ModelVersion
from .settings import ServiceSettings
from .validation import Columns

logger = logging.getLogger(__name__)


class ServiceState:
    """What the app serves: the loaded versions, readiness, the log writer and the live drift gauges."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.status = "loading"
        self.error: str | None = None
        self.ready = False
        self.primary: ModelVersion | None = None
        self.canary: ModelVersion | None = None
        self.shadow: ModelVersion | None = None
        self.writer: PredictionLogWriter | None = None
        self.drift = None
        self.in_flight = 0
        self.draining = False
        self._label_children: dict[tuple[str, str, str], Any] = {}
        self._column_children: dict[tuple[str, str], Any] = {}
        self._probability_children: dict[str, Any] = {}
        self.metrics.ready.set(0)

    # -- loading ------------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load and verify every configured bundle (runs in a thread; TensorFlow is imported here)."""
        settings = self.settings
        if settings.blas_threads is not None:
            limit_blas_threads(settings.blas_threads)
        try:
            from .loader import load_version

            def load(path: str) -> ModelVersion:
                return load_version(
                    path, settings.range_policy, settings.range_margin, settings.engine
                )

            primary = load(settings.bundle)
            canary = load(settings.canary_bundle) if settings.canary_bundle else None
            shadow = load(settings.shadow_bundle) if settings.shadow_bundle else None
            drift = None
            if primary.metadata.get("reference"):
                from .monitoring import DriftMonitor

                drift = DriftMonitor(
                    primary.metadata["reference"],
                    self.metrics,
                    settings.drift_window,
                    settings.drift_interval_seconds,
                    settings.drift,
                )
            writer = PredictionLogWriter(
                settings.log_url,
                settings.log_table,
                self.metrics,
                queue_size=settings.log_queue_size,
                flush_seconds=settings.log_flush_seconds,
                shadow=shadow,
                on_records=drift.add if drift else None,
                on_idle=drift.maybe_update if drift else None,
            )
            writer.start()
        # Whatever went wrong is served on /readyz; the process stays up (live, not ready) to report it.
        except Exception as error:
            logger.error("The service cannot become ready: %s", error)
            self.error = f"{type(error).__name__}: {error}"
            self.status = "failed"
            return
        self.primary, self.canary, self.shadow, self.writer, self.drift = (
            primary,
            canary,
            shadow,
            writer,
            drift,
        )
        for variant, version in (("primary", primary), ("canary", canary), ("shadow", shadow)):
            if version is not None:
                self.metrics.info.labels(variant, version.version, version.engine).set(1)
        # Everything loaded so far (TensorFlow, the models) lives as long as the process: keep the garbage
        # collector from scanning it again on every full collection.
        gc.freeze()
        self.status = "ready"
        self.ready = True
        self.metrics.ready.set(1)
        logger.info("Ready: serving model version %s.", primary.version)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # -- request helpers ----------------------------------------------------------------------------------------

    def route(self, body: bytes, routing_key: bytes | None) -> tuple[str, ModelVersion]:
        """The canary answers the share ``canary_fraction`` of requests, chosen by a hash of the routing key
        (header ``X-Routing-Key``) or of the body: deterministic, so a retried request gets the same version."""
        fraction = self.settings.canary_fraction
        if self.canary is not None and fraction > 0:
            digest = hashlib.blake2b(routing_key or body, digest_size=8).digest()
            if int.from_bytes(digest, "big") < fraction * 2**64:
                return "canary", self.canary
        return "primary", self.primary

    def count(
        self,
        variant: str,
        version: ModelVersion,
        labels: list[str],
        probability: list[float],
        columns: Columns,
    ) -> None:
        metrics = self.metrics
        for label, n in Tally(labels).items() if len(labels) > 1 else ((labels[0], 1),):
            key = (variant, version.version, label)
            child = self._label_children.get(key)
            if child is None:
                child = self._label_children[key] = metrics.predictions.labels(*key)
            child.inc(n)
        histogram = self._probability_children.get(variant)
        if histogram is None:
            histogram = self._probability_children[variant] = metrics.probability.labels(variant)
        if len(probability) == 1:
            histogram.observe(probability[0])
        else:
            observe_many(histogram, probability)
        for kind, tally in (("unseen", columns.unseen), ("missing", columns.missing)):
            for column, n in tally.items():
                child = self._column_children.get((kind, column))
                if child is None:
                    counter = metrics.unseen if kind == "unseen" else metrics.missing
                    child = self._column_children[(kind, column)] = counter.labels(column)
                child.inc(n)


def limit_blas_threads(threads: int) -> None:
    """Cap NumPy's BLAS threads: a small matrix product split over threads waits more than it computes, the
    more so on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the library default stays
        logger.info("threadpoolctl is not installed; NumPy's BLAS keeps its default threads.")
        return
    threadpool_limits(limits=threads, user_api="blas")
