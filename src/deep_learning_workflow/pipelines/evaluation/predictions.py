"""The candidates' class probabilities on a split: the model's and every baseline's, checked the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_labels
from deep_learning_workflow.fingerprints import frame_fingerprint
from deep_learning_workflow.metrics import positive_index
from deep_learning_workflow.model_inputs import predict_probabilities

CANDIDATE = "model"


def describe_split(frame: pd.DataFrame, labels: np.ndarray, classes: list[str], split: str) -> dict:
    counts = {label: int(np.sum(labels == label)) for label in classes}
    return {
        "split": split,
        "rows": len(frame),
        "class_counts": counts,
        "fingerprint": frame_fingerprint(frame),
    }


def split_labels(
    frame: pd.DataFrame, roles: ColumnRoles, classes: list[str], split: str
) -> np.ndarray:
    if frame.empty:
        raise ValueError(f"Dataset '{split}' has no rows to evaluate on.")
    target = frame[roles.target]
    if target.isna().any():
        raise ValueError(
            f"Dataset '{split}' has {int(target.isna().sum())} rows without a '{roles.target}' label."
        )
    labels = target_labels(target).to_numpy()
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(
            f"Dataset '{split}' has target classes {unknown} that the model does not know (its classes: {classes})."
        )
    missing = [label for label in classes if label not in set(labels)]
    if missing:
        raise ValueError(
            f"Dataset '{split}' has no row of the classes {missing}: ROC-AUC and PR-AUC are undefined. "
            "Use a larger split (params:splitting) or a stratified split."
        )
    return labels


def checked_probabilities(
    probabilities: np.ndarray, rows: int, classes: list[str], candidate: str
) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.shape != (rows, len(classes)):
        raise ValueError(
            f"Candidate '{candidate}' returned probabilities of shape {probabilities.shape}; expected "
            f"({rows}, {len(classes)}) for the classes {classes}."
        )
    if not np.all(np.isfinite(probabilities)):
        raise ValueError(
            f"Candidate '{candidate}' returned probabilities that are NaN or infinite."
        )
    totals = probabilities.sum(axis=1, keepdims=True)
    if np.any(probabilities < 0) or np.any(np.abs(totals - 1) > 1e-3):
        raise ValueError(
            f"Candidate '{candidate}' returned rows that are not class probabilities "
            "(negative, or not summing to 1)."
        )
    # A float32 softmax sums to 1 only within ~1e-7; scikit-learn's log loss checks the sum more tightly.
    return probabilities / totals


def baseline_probabilities(
    baseline: Any, features: pd.DataFrame, classes: list[str], name: str
) -> np.ndarray:
    """A fitted scikit-learn pipeline's probabilities, columns reordered to the model's class order."""
    known = [str(label) for label in getattr(baseline, "classes_", [])]
    if not known:
        raise ValueError(
            f"Baseline '{name}' in baseline_models is not a fitted classifier with classes_."
        )
    extra = sorted(set(known) - set(classes))
    if extra:
        raise ValueError(
            f"Baseline '{name}' predicts classes {extra} that the model does not have ({classes})."
        )
    raw = np.asarray(baseline.predict_proba(features), dtype="float64")
    probabilities = np.zeros((len(features), len(classes)))
    for position, label in enumerate(known):
        probabilities[:, classes.index(label)] = raw[:, position]
    return checked_probabilities(probabilities, len(features), classes, name)


def predict_all(
    model: Any,
    baseline_models: Mapping[str, Any],
    frame: pd.DataFrame,
    roles: ColumnRoles,
    classes: list[str],
) -> dict[str, np.ndarray]:
    if CANDIDATE in baseline_models:
        raise ValueError(
            f"baseline_models must not have a baseline named '{CANDIDATE}': that name is the model's."
        )
    probabilities = {
        CANDIDATE: checked_probabilities(
            predict_probabilities(model, frame, roles), len(frame), classes, CANDIDATE
        )
    }
    features = frame[roles.features]
    for name in sorted(baseline_models):
        probabilities[name] = baseline_probabilities(baseline_models[name], features, classes, name)
    return probabilities


def setup_of(evaluation_setup: Mapping[str, Any]) -> tuple[ColumnRoles, list[str], str | None]:
    return (
        ColumnRoles(**evaluation_setup["roles"]),
        list(evaluation_setup["classes"]),
        evaluation_setup["positive_class"],
    )


def resolve_setup(
    val: pd.DataFrame, model_metadata: Mapping[str, Any], configured: ColumnRoles
) -> dict:
    """The model's feature columns (its metadata's roles over the configured ones), classes and positive class."""
    recorded = model_metadata.get("roles") or {}
    trained = {
        role: list(recorded[role])
        for role in ("numeric", "categorical", "text")
        if role in recorded
    }
    roles = resolve_roles(val, configured.model_copy(update=trained), "val")
    classes = model_metadata.get("classes")
    if not classes:
        raise ValueError(
            "model_metadata has no 'classes' (the order of the model's probability columns)."
        )
    classes = [str(label) for label in classes]
    positive_class = model_metadata.get("positive_class") or roles.positive_class
    if len(classes) == 2:
        positive_class = classes[positive_index(classes, positive_class)]
    elif positive_class is not None and positive_class not in classes:
        raise ValueError(
            f"positive_class '{positive_class}' is not one of the model's classes {classes}."
        )
    return {"roles": roles.model_dump(), "classes": classes, "positive_class": positive_class}
