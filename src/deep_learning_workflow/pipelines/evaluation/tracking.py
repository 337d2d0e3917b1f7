"""The run's MLflow records: metrics in kedro-mlflow's format and tags naming the model's and the data's versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# MLflow keeps tag values up to 8,000 characters; metadata lists are cut well below that.
TAG_LENGTH = 5000


def tracking_metrics(
    validation_metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    test_metrics: Mapping[str, Any],
) -> dict:
    """Validation and test scores, the threshold and the gate's outcome as ``{name: {"value": v, "step": 0}}``.

    The test scores' intervals are tags (:func:`interval_tags`): as metrics, each bound would be a chart of its own.
    """

    def metric(value: float) -> dict:
        return {"value": float(value), "step": 0}

    metrics = {f"val.{name}": metric(value) for name, value in validation_metrics["scores"].items()}
    for name, baseline in baseline_metrics.items():
        metrics |= {
            f"val.baseline.{name}.{key}": metric(value) for key, value in baseline["scores"].items()
        }
    metrics |= {
        f"test.{name}": metric(values["value"])
        for name, values in test_metrics["model"]["metrics"].items()
    }
    if decision_threshold.get("threshold") is not None:
        metrics["decision_threshold"] = metric(decision_threshold["threshold"])
    if validation_metrics["at_threshold"].get("expected_cost") is not None:
        metrics["val.expected_cost"] = metric(validation_metrics["at_threshold"]["expected_cost"])
    metrics["release_gate.passed"] = metric(release_gate["passed"])
    metrics["release_gate.failed_checks"] = metric(len(release_gate["failed_checks"]))
    return metrics


def interval_tags(test_metrics: Mapping[str, Any]) -> dict[str, str]:
    """The bootstrap interval of each test score as a tag, ``test.<metric>.interval``: ``"[low, high] 95%"``.

    MLflow draws every metric as a chart over steps; an interval's bounds read as one pair beside the point
    score, which stays a metric (``test.<metric>``). The full intervals are also in the ``test_metrics`` artifact.
    """
    confidence = test_metrics["bootstrap"]["confidence"]
    return {
        f"test.{name}.interval": f"[{values['low']:.4f}, {values['high']:.4f}] {confidence:.0%}"
        for name, values in test_metrics["model"]["metrics"].items()
    }


def tracking_tags(
    validation_metrics: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    test_metrics: Mapping[str, Any],
    model_metadata: Mapping[str, Any],
) -> dict:
    """Tags naming the model (fingerprint, metadata), the data (fingerprints and sizes of val and test) and the
    test scores' intervals."""
    tags = interval_tags(test_metrics) | {
        "model.fingerprint": release_gate["model_fingerprint"],
        "data.val.fingerprint": validation_metrics["data"]["fingerprint"],
        "data.val.rows": str(validation_metrics["data"]["rows"]),
        "data.test.fingerprint": test_metrics["data"]["fingerprint"],
        "data.test.rows": str(test_metrics["data"]["rows"]),
        "release_gate.verdict": release_gate["verdict"],
        "primary_metric": release_gate["primary_metric"],
    }
    # The model's identity and lineage; its training parameters are logged as the run's parameters already.
    for key, value in model_metadata.items():
        entries = {key: value} if isinstance(value, str | int | float | bool | list) else {}
        if key == "versions" and isinstance(value, Mapping):
            entries = {f"versions.{library}": version for library, version in value.items()}
        for name, item in entries.items():
            shown = item if isinstance(item, str) else json.dumps(item, default=str)
            tags[f"model.{name}"] = shown[:TAG_LENGTH]
    return tags
