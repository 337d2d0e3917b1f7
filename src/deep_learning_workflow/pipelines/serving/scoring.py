"""Validation and scoring of new records with the serving bundle's model: the steps every chunk of batch scoring
goes through (``chunked.py``), and what a small batch is scored with in one go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.bundle import ServingBundle
from deep_learning_workflow.metrics import predict_labels
from deep_learning_workflow.model_inputs import predict_probabilities

from .nodes import _params


def _as_text(values: pd.Series) -> pd.Series:
    """Category codes as text the way the clean table holds them: 1 and 1.0 become "1", missing stays missing."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return values.astype("str").mask(values.isna())
    present = values.dropna().to_numpy(dtype="float64")
    if np.all(np.mod(present, 1) == 0):
        return values.astype("Int64").astype("str").mask(values.isna())
    return values.astype("str").mask(values.isna())


def validate_scoring_batch(
    scoring_batch: pd.DataFrame, serving_bundle: ServingBundle
) -> pd.DataFrame:
    """Check new records against the bundle's input schema and keep the columns the model needs.

    Unseen categories, missing values and numbers outside the training range are allowed here (the model maps
    them to its out-of-vocabulary bucket, imputes or clips them); the drift report counts them.

    Args:
        scoring_batch: raw records to score; extra columns (such as the target) are dropped.
        serving_bundle: the exported bundle.

    Returns:
        The key column (when the bundle has one) and the feature columns; numeric columns as float64, categorical
        and text columns as text (integer codes such as 0/1 read from a CSV become "0"/"1", as in the clean table).

    Raises:
        ValueError: naming the missing columns, or a numeric column holding text, or when there are no records.
    """
    key = serving_bundle.metadata["key"]
    needed = ([key] if key else []) + serving_bundle.features
    missing = [column for column in needed if column not in scoring_batch.columns]
    if missing:
        raise ValueError(
            f"Dataset 'scoring_batch' lacks the columns {missing} that the model (version "
            f"{serving_bundle.model_version}) needs; it has {list(scoring_batch.columns)}."
        )
    if scoring_batch.empty:
        raise ValueError("Dataset 'scoring_batch' has no records to score.")
    batch = scoring_batch.loc[:, needed].copy()
    for column in serving_bundle.roles.numeric or []:
        converted = pd.to_numeric(batch[column], errors="coerce")
        bad = batch[column].notna() & converted.isna()
        if bad.any():
            examples = batch.loc[bad, column].astype(str).unique()[:3].tolist()
            raise ValueError(
                f"Numeric column '{column}' of 'scoring_batch' holds values that are not numbers, e.g. {examples}."
            )
        batch[column] = converted.astype("float64")
    for column in [*(serving_bundle.roles.categorical or []), *serving_bundle.roles.text]:
        batch[column] = _as_text(batch[column])
    return batch


def score_batch(
    validated_batch: pd.DataFrame, serving_bundle: ServingBundle, serving: Mapping[str, Any]
) -> pd.DataFrame:
    """Score validated records with the bundle's model.

    Args:
        validated_batch: output of :func:`validate_scoring_batch`.
        serving_bundle: the exported bundle.
        serving: ``params:serving``.

    Returns:
        One row per record: the key (or ``row``, the record's position), ``probability_<class>`` per class,
        ``probability`` (binary: of the positive class; otherwise of the predicted label), ``label`` (binary: the
        positive class when its probability reaches the decision threshold; otherwise the most probable class)
        and ``model_version``.

    Raises:
        ValueError: when the model returns a probability that is not finite.
    """
    params = _params(serving)
    probabilities = predict_probabilities(
        serving_bundle.model, validated_batch, serving_bundle.roles, batch_size=params.batch_size
    )
    return predictions_frame(validated_batch, probabilities, serving_bundle)


def predictions_frame(
    validated_batch: pd.DataFrame,
    probabilities: np.ndarray,
    serving_bundle: ServingBundle,
    first_row: int = 0,
) -> pd.DataFrame:
    """The rows of :func:`score_batch` from the model's class probabilities of validated records.

    Args:
        validated_batch: output of :func:`validate_scoring_batch`.
        probabilities: (rows, classes) in the order of the bundle's classes.
        serving_bundle: the exported bundle.
        first_row: the position of the batch's first record in the whole input (the ``row`` of a keyless table).

    Raises:
        ValueError: when the probabilities have the wrong shape or are not finite.
    """
    classes = serving_bundle.classes
    if probabilities.shape != (len(validated_batch), len(classes)):
        raise ValueError(
            f"The model returned probabilities of shape {probabilities.shape} for {len(validated_batch)} rows and classes {classes}."
        )
    broken = ~np.isfinite(probabilities).all(axis=1)
    if broken.any():
        raise ValueError(
            f"The model returned non-finite probabilities for {int(broken.sum())} of {len(broken)} records "
            f"(first at position {first_row + int(np.argmax(broken))}); the model (version "
            f"{serving_bundle.model_version}) is broken."
        )
    key = serving_bundle.metadata["key"]
    predictions = pd.DataFrame(
        {key: validated_batch[key].to_numpy()}
        if key
        else {"row": np.arange(first_row, first_row + len(validated_batch))}
    )
    for index, label in enumerate(classes):
        predictions[f"probability_{label}"] = probabilities[:, index]
    labels = predict_labels(
        probabilities, classes, serving_bundle.positive_class, serving_bundle.decision_threshold
    )
    if len(classes) == 2:
        predictions["probability"] = probabilities[:, classes.index(serving_bundle.positive_class)]
    else:
        predictions["probability"] = probabilities.max(axis=1)
    predictions["label"] = pd.Series(labels, dtype="str")
    predictions["model_version"] = serving_bundle.model_version
    return predictions
