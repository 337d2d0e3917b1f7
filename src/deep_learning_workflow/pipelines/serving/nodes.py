"""Nodes of the serving pipeline: export the serving bundle, score a batch of new records, report drift."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from pydantic import Field, PositiveInt

from deep_learning_workflow.bundle import (
    FORMAT_VERSION,
    MODEL_FILE,
    ServingBundle,
)
from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
from deep_learning_workflow.fingerprints import model_fingerprint
from deep_learning_workflow.inference.drift import (
    DriftSettings,
    compute_drift,
    reference_statistics,
)
from deep_learning_workflow.metrics import positive_index
from deep_learning_workflow.models.names import input_columns
from deep_learning_workflow.parameters import Parameters, parse, register

from .scoring_settings import ScoringSettings


@register("serving")
class ServingParams(Parameters):
    """The serving bundle, batch scoring and the drift report (``params:serving``)."""

    force_export: bool = Field(
        False,
        description="Export the model even though the release gate failed (the bundle records it)",
    )
    reference_bins: int = Field(
        10, ge=2, le=100, description="Quantile bins of the numeric drift reference"
    )
    batch_size: PositiveInt = Field(1024, description="Rows per forward pass in batch scoring")
    drift: DriftSettings = DriftSettings()
    scoring: ScoringSettings = ScoringSettings()


def _params(serving: ServingParams | Mapping[str, Any]) -> ServingParams:
    return (
        serving if isinstance(serving, ServingParams) else parse(ServingParams, serving, "serving")
    )


def _roles(columns: ColumnRoles | Mapping[str, Any]) -> ColumnRoles:
    return columns if isinstance(columns, ColumnRoles) else parse(ColumnRoles, columns, "columns")


def _gate_verdict(release_gate: Mapping[str, Any], model: Any) -> tuple[bool, bool]:
    """The gate's verdict, and whether the gate judged this very model (not an earlier or later one)."""
    verdict = release_gate.get("passed")
    if not isinstance(verdict, bool):
        raise ValueError(
            f"Dataset 'release_gate' has no boolean 'passed' verdict (keys: {sorted(release_gate)}); "
            "run the evaluation pipeline first."
        )
    return verdict, release_gate.get("model_fingerprint") == model_fingerprint(model)


def _threshold(decision_threshold: Mapping[str, Any], positive_class: str) -> float:
    value = decision_threshold.get("threshold")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Dataset 'decision_threshold' must hold a 'threshold' between 0 and 1, got {value!r}; "
            "run the evaluation pipeline first."
        )
    chosen_for = decision_threshold.get("positive_class", positive_class)
    if chosen_for != positive_class:
        raise ValueError(
            f"Dataset 'decision_threshold' was chosen for the positive class '{chosen_for}', but params:columns "
            f"makes '{positive_class}' positive; run the evaluation pipeline again."
        )
    return float(value)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def input_schema(train: pd.DataFrame, roles: ColumnRoles) -> dict[str, dict[str, Any]]:
    """What the training split says a valid record looks like, column by column.

    Args:
        train: the training split.
        roles: resolved column roles.

    Returns:
        Column name -> ``{"role", "dtype", "input_dtype", "nullable"}`` plus ``min``/``max`` for numeric and
        ``categories`` for categorical columns; the key column (if any) first, then the features in model order.
    """
    schema: dict[str, dict[str, Any]] = {}
    if roles.key:
        schema[roles.key] = {
            "role": "key",
            "dtype": str(train[roles.key].dtype),
            "input_dtype": "string",
            "nullable": bool(train[roles.key].isna().any()),
        }
    for column in roles.numeric or []:
        values = pd.to_numeric(train[column], errors="raise").to_numpy(
            dtype="float64", na_value=np.nan
        )
        present = values[~np.isnan(values)]
        schema[column] = {
            "role": "numeric",
            "dtype": str(train[column].dtype),
            "input_dtype": "float32",
            "nullable": bool(np.isnan(values).any()),
            "min": _finite_or_none(present.min()) if present.size else None,
            "max": _finite_or_none(present.max()) if present.size else None,
        }
    for column in roles.categorical or []:
        values = train[column]
        strings = values.dropna().astype(str)
        schema[column] = {
            "role": "categorical",
            "dtype": str(values.dtype),
            "input_dtype": "string",
            "nullable": bool(values.isna().any() or (strings == "").any()),
            "categories": sorted(set(strings) - {""}),
        }
    for column in roles.text:
        values = train[column]
        schema[column] = {
            "role": "text",
            "dtype": str(values.dtype),
            "input_dtype": "string",
            "nullable": bool(values.isna().any()),
        }
    return schema


def export_serving_bundle(
    model: Any,
    train: pd.DataFrame,
    decision_threshold: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    columns: Mapping[str, Any],
    serving: Mapping[str, Any],
    model_registration: Mapping[str, Any] | None = None,
) -> ServingBundle:
    """Assemble the serving bundle of the gated model (saved by ``ServingBundleDataset``, atomically).

    Args:
        model: the trained Keras model (raw records in, class probabilities out).
        train: the training split before balancing; the input schema and drift reference come from it.
        decision_threshold: the evaluation's ``{"threshold", "positive_class", ...}``.
        release_gate: the evaluation's release gate (``passed`` and the ``model_fingerprint`` it judged).
        columns: ``params:columns``.
        serving: ``params:serving``.
        model_registration: the MLflow model registry's record of the released model (name, version, alias), or
            None when no model was registered; recorded in the bundle when it names this model.

    Returns:
        The bundle: metadata (see :mod:`deep_learning_workflow.bundle`) and the model; ``RunRecordHook`` stamps
        the export time and package versions as it is saved.

    Raises:
        ValueError: when the release gate failed or judged another model and ``serving.force_export`` is false, or
            the model's inputs or outputs do not match the training split's columns and classes.
    """
    params = _params(serving)
    passed, judged = _gate_verdict(release_gate, model)
    if not params.force_export:
        _check_release_allowed(passed, judged)
    roles = resolve_roles(train, _roles(columns), "train")
    classes = target_classes(train[roles.target])
    _check_model_matches(model, roles, classes)
    binary = len(classes) == 2
    positive_class = classes[positive_index(classes, roles.positive_class)] if binary else None
    fingerprint = model_fingerprint(model)
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_version": fingerprint[:12],
        "model_sha256": fingerprint,
        "model_file": MODEL_FILE,
        "classes": classes,
        "positive_class": positive_class,
        "decision_threshold": _threshold(decision_threshold, positive_class) if binary else None,
        "key": roles.key,
        "target": roles.target,
        "features": roles.features,
        "schema": input_schema(train, roles),
        "reference": reference_statistics(train, roles, params.reference_bins),
        "release_gate": {
            "passed": passed,
            "judged_this_model": judged,
            "forced": not (passed and judged),
        },
        "registry": _registry_entry(model_registration, fingerprint),
    }
    return ServingBundle(metadata, model=model)


def _check_release_allowed(passed: bool, judged: bool) -> None:
    """Raise unless the release gate passed and judged this very model."""
    if not judged:
        raise ValueError(
            "The release gate (data/08_reporting/release_gate.json) judged another model than the one being "
            "exported: run the evaluation pipeline on this model first, or set serving.force_export: true."
        )
    if not passed:
        raise ValueError(
            "The release gate failed, so the model is not exported for serving (see data/08_reporting/"
            "release_gate.json). Improve the model, or set serving.force_export: true to export it anyway."
        )


def _check_model_matches(model: Any, roles: ColumnRoles, classes: list[str]) -> None:
    """Raise unless the model takes the feature columns and returns one probability per class."""
    # The raw column names the model's inputs are keyed by (its layers may carry safe spellings of them).
    inputs = list(input_columns(model).values())
    if sorted(inputs) != sorted(roles.features):
        raise ValueError(
            f"The model takes the inputs {sorted(inputs)} but params:columns gives the features "
            f"{sorted(roles.features)}; retrain the model or fix params:columns."
        )
    outputs = int(model.outputs[0].shape[-1])
    if outputs != len(classes):
        raise ValueError(
            f"The model returns {outputs} probabilities but the target '{roles.target}' of 'train' has "
            f"{len(classes)} classes {classes}."
        )


def _registry_entry(
    model_registration: Mapping[str, Any] | None, fingerprint: str
) -> dict[str, Any] | None:
    """The registered model's name, version and alias when the registration is of this very model."""
    if not model_registration or model_registration.get("model_fingerprint") != fingerprint:
        return None
    keys = ("registered_model", "version", "alias", "model_uri", "run_id")
    return {key: model_registration.get(key) for key in keys}


def report_drift(
    validated_batch: pd.DataFrame, serving_bundle: ServingBundle, serving: Mapping[str, Any]
) -> dict[str, Any]:
    """Compare the scored batch with the training reference of the bundle.

    Returns:
        The report of :func:`~deep_learning_workflow.inference.drift.compute_drift` with the model version.
    """
    report = compute_drift(validated_batch, serving_bundle.reference, _params(serving).drift)
    return {"model_version": serving_bundle.model_version, "dataset": "scoring_batch", **report}


def plot_drift_scores(drift_report: Mapping[str, Any]) -> go.Figure:
    """Bar chart of each feature's drift as a multiple of its threshold (1 = the threshold)."""
    features = drift_report["features"]
    names = sorted(features, key=lambda name: features[name]["value"] / features[name]["threshold"])
    ratios = [features[name]["value"] / features[name]["threshold"] for name in names]
    figure = go.Figure(
        go.Bar(
            x=ratios,
            y=names,
            orientation="h",
            marker_color=["#d62728" if features[name]["drifted"] else "#1f77b4" for name in names],
            customdata=[
                [features[name]["metric"], features[name]["value"], features[name]["threshold"]]
                for name in names
            ],
            hovertemplate="%{y}: %{customdata[0]} = %{customdata[1]:.4f} (threshold %{customdata[2]})<extra></extra>",
        )
    )
    figure.add_vline(x=1.0, line_dash="dash", line_color="#d62728")
    due = "retraining due" if drift_report["retraining_due"] else "no retraining due"
    figure.update_layout(
        title=f"Drift against the training data: {len(drift_report['drifted_features'])} drifted feature(s), {due}",
        xaxis_title="drift / threshold",
        height=max(320, 28 * len(names) + 120),
        template="plotly_white",
    )
    return figure


def plot_drift_distributions(drift_report: Mapping[str, Any]) -> go.Figure:
    """Training and new shares of every bucket, one panel per feature, drifted features first."""
    features = drift_report["features"]
    names = sorted(features, key=lambda name: (not features[name]["drifted"], name))
    columns = 3
    rows = max(1, -(-len(names) // columns))
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[
            f"{name}{' (drifted)' if features[name]['drifted'] else ''}" for name in names
        ],
    )
    for index, name in enumerate(names):
        entry = features[name]
        for series, color in (("reference", "#7f7f7f"), ("observed", "#1f77b4")):
            figure.add_trace(
                go.Bar(
                    x=entry["labels"],
                    y=entry[series],
                    name="training" if series == "reference" else "new records",
                    marker_color=color,
                    legendgroup=series,
                    showlegend=index == 0,
                ),
                row=index // columns + 1,
                col=index % columns + 1,
            )
    figure.update_layout(
        title="Share of records per bucket: training vs new records",
        barmode="group",
        height=260 * rows + 80,
        template="plotly_white",
    )
    return figure
