"""Drift of the served traffic: live gauges over a window of recent records, and a report over the log.

Both use the shared :func:`deep_learning_workflow.inference.drift.compute_drift` against the
bundle's training reference, so the service, the batch drift report and the alert rules agree on what drift is.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from .columnar import plain_records
from .metrics import ServiceMetrics

logger = logging.getLogger(__name__)


def _drift_api() -> tuple[Any, Any]:
    from deep_learning_workflow.inference.drift import DriftSettings, compute_drift

    return DriftSettings, compute_drift


class DriftMonitor:
    """Keeps the last ``window`` served records and refreshes the drift gauges every ``interval`` seconds.

    Runs in the prediction-log thread, never on a request.
    """

    def __init__(
        self,
        reference: Mapping[str, Any],
        metrics: ServiceMetrics,
        window: int,
        interval: float,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        drift_settings, self._compute = _drift_api()
        self.settings = drift_settings(**dict(settings or {}))
        self.reference = reference
        self.metrics = metrics
        self.interval = interval
        self.records: deque[Any] = deque(maxlen=window)
        self._next = time.monotonic() + interval

    def add(self, records: list[Any]) -> None:
        self.records.extend(records)

    def maybe_update(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            try:
                self.update()
            except Exception:  # a gauge refresh must never stop the log writer
                logger.exception("Could not compute the live drift gauges")

    def update(self) -> dict[str, Any] | None:
        """Recompute the gauges; None while the window holds fewer records than ``min_rows``."""
        rows = len(self.records)
        self.metrics.drift_rows.set(rows)
        if rows < self.settings.min_rows:
            return None
        report = self._compute(
            pd.DataFrame.from_records(plain_records(list(self.records))),
            self.reference,
            self.settings,
        )
        for column, entry in report["features"].items():
            self.metrics.drift.labels(column, entry["metric"]).set(entry["value"])
            self.metrics.drifted.labels(column).set(1 if entry["drifted"] else 0)
        self.metrics.retraining_due.set(1 if report["retraining_due"] else 0)
        return report


def logged_drift_report(
    log_url: str,
    bundle: str,
    table: str = "predictions",
    since: datetime | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The drift report of the records the service answered, against the bundle's training reference.

    Args:
        log_url: SQLAlchemy URL of the prediction log.
        bundle: the serving bundle folder (its ``reference`` block; the model is not loaded).
        table: the log table.
        since: only records logged from this time on.
        settings: drift settings (``DriftSettings`` fields), defaults otherwise.

    Returns:
        :func:`compute_drift`'s report, with ``model_versions`` (records per served version) added.
    """
    from deep_learning_workflow.bundle import read_bundle
    from deep_learning_workflow.redaction import redact_url

    from .prediction_log import read_logged_records

    drift_settings, compute = _drift_api()
    reference = read_bundle(bundle, verify=True).reference
    records = read_logged_records(log_url, table, served=True, since=since)
    if records.empty:
        raise ValueError(
            f"The prediction log at '{redact_url(log_url)}' holds no served record yet."
        )
    report = compute(records, reference, drift_settings(**dict(settings or {})))
    report["model_versions"] = records["model_version"].value_counts().to_dict()
    return report
