"""The shadow version's rows of the prediction log: it scores what the served version answered, in the log
writer's thread, never on a request."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .metrics import ServiceMetrics
from .scoring import ModelVersion, NonFiniteOutput, Scores
from .validation import InvalidRecords

logger = logging.getLogger(__name__)


def score_entries(
    shadow: ModelVersion, batches: Sequence[Sequence[Any]], metrics: ServiceMetrics
) -> list[tuple[Scores | None, str | None, float]]:
    """(scores, error, latency in ms) of the shadow for each request's records.

    Every request's records are scored in one call; when that fails (a record the shadow's schema refuses, a
    non-finite output), each request is scored on its own, so one request's problem costs only its own row.
    """
    start = time.perf_counter()
    records = [record for batch in batches for record in batch]
    try:
        everything = shadow.score(shadow.validator.validate(records, batch=True))
    except (InvalidRecords, NonFiniteOutput):
        everything = None
    per_record_ms = (time.perf_counter() - start) * 1000 / max(len(records), 1)
    results: list[tuple[Scores | None, str | None, float]] = []
    offset = 0
    for batch in batches:
        count = len(batch)
        if everything is not None:
            scores = Scores(
                everything.probabilities[offset : offset + count],
                everything.probability[offset : offset + count],
                everything.labels[offset : offset + count],
            )
            results.append((scores, None, per_record_ms * count))
        else:
            results.append(_score_one(shadow, batch, metrics))
        offset += count
        scores = results[-1][0]
        if scores is not None:
            for label, n in Counter(scores.labels).items():
                metrics.predictions.labels("shadow", shadow.version, label).inc(n)
    return results


def _score_one(
    shadow: ModelVersion, records: Sequence[Any], metrics: ServiceMetrics
) -> tuple[Scores | None, str | None, float]:
    start = time.perf_counter()
    try:
        scores = shadow.score(shadow.validator.validate(list(records), batch=True))
        return scores, None, (time.perf_counter() - start) * 1000
    except InvalidRecords as problem:
        metrics.shadow_errors.labels("invalid_record").inc()
        error = "invalid for the shadow's schema: " + "; ".join(
            f"[{p.record}].{p.field}: {p.message}" for p in problem.problems[:5]
        )
    except NonFiniteOutput as problem:
        metrics.shadow_errors.labels("non_finite_output").inc()
        error = str(problem)
    return None, error, (time.perf_counter() - start) * 1000
