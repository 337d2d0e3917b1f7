"""Preprocessing learned on the training split: the typed inputs of model building and the fitted state.

:func:`fit_preprocessing` learns every value the model's preprocessing layers hold (imputation, clipping and
scaling values, vocabularies, inverse document frequencies) from the training rows only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles
from deep_learning_workflow.model_inputs import to_model_inputs
from deep_learning_workflow.parameters import parse

from .names import keras_names
from .schema import ModellingParams


def as_params(params: ModellingParams | Mapping[str, Any]) -> ModellingParams:
    """The typed modelling parameters from their config dictionary (or unchanged when already typed)."""
    return (
        params
        if isinstance(params, ModellingParams)
        else parse(ModellingParams, params, "modelling")
    )


def as_roles(roles: ColumnRoles | Mapping[str, Any]) -> ColumnRoles:
    """The typed column roles from their config dictionary (or unchanged when already typed)."""
    return roles if isinstance(roles, ColumnRoles) else parse(ColumnRoles, roles, "columns")


def check_roles_for_modelling(
    frame: pd.DataFrame, roles: ColumnRoles, params: ModellingParams, dataset: str
) -> ColumnRoles:
    """Resolve the column roles on a table and check the modelling parameters that name columns.

    Raises:
        ValueError: naming the parameter key when a role or a per-column setting names a missing or wrong column,
            or when there are no feature columns.
    """
    resolved = resolve_roles(frame, roles, dataset)
    if not resolved.features:
        raise ValueError(
            f"params:columns leaves no feature column in '{dataset}'; list numeric, categorical or text columns."
        )
    if resolved.target in resolved.features or (resolved.key and resolved.key in resolved.features):
        raise ValueError(
            "params:columns lists the key or the target among the feature columns; remove it from the feature lists."
        )
    overlap = {
        c for c in resolved.numeric or [] if c in (resolved.categorical or []) or c in resolved.text
    }
    overlap |= {c for c in resolved.categorical or [] if c in resolved.text}
    if overlap:
        raise ValueError(
            f"params:columns gives the columns {sorted(overlap)} more than one role; keep one."
        )
    if params.uses("plr") and not resolved.numeric:
        raise ValueError(
            f"params:modelling.architecture '{params.architecture}' embeds the numeric columns "
            f"(params:modelling.plr), but '{dataset}' has none in params:columns.numeric; choose architecture mlp"
            + (" or tabm.numeric_embedding: none" if params.architecture == "tabm" else "")
            + ", or list numeric columns."
        )
    keras_names(resolved.features)
    unknown = sorted(set(params.numeric.scaling_by_column) - set(resolved.numeric or []))
    if unknown:
        raise ValueError(
            f"params:modelling.numeric.scaling_by_column names {unknown}, which are not numeric feature columns "
            f"{resolved.numeric}."
        )
    return resolved


def fit_preprocessing(
    train: pd.DataFrame, roles: ColumnRoles, params: ModellingParams
) -> dict[str, Any]:
    """Learn every preprocessing value from the training rows.

    Args:
        train: the real training rows (never validation or test rows, never synthetic rows).
        roles: resolved column roles.
        params: modelling parameters.

    Returns:
        JSON-serialisable state: ``numeric[col]`` with ``fill_value``, ``indicator``, ``clip`` ([lower, upper] or
        None), ``scaling``, ``mean``, ``variance`` (the Normalization layer's values, of the imputed, clipped
        column), and for ``scaling: quantile`` ``knots`` and ``scores`` (:func:`quantile_normal_knots`); ``categorical[col]`` with ``vocabulary``; ``text[col]`` with ``vocabulary``.

    Raises:
        ValueError: when a numeric column has no value in train.
    """
    if train.empty:
        raise ValueError("The training split is empty; preprocessing cannot be fitted.")
    inputs = to_model_inputs(train, roles)
    settings = params.numeric
    numeric: dict[str, Any] = {}
    for column in roles.numeric or []:
        values = inputs[column].astype("float64")
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError(
                f"Numeric column '{column}' has no value in the training split; drop it from params:columns."
            )
        fill = float(np.median(present) if settings.imputation == "median" else np.mean(present))
        filled = np.where(np.isnan(values), fill, values)
        clip = None
        if settings.clip_quantiles is not None:
            clip = [float(q) for q in np.quantile(present, settings.clip_quantiles)]
            filled = np.clip(filled, *clip)
        scaling = settings.scaling_by_column.get(column, settings.scaling)
        if scaling == "standard":
            mean, variance = float(filled.mean()), float(filled.var())
        elif scaling == "minmax":
            mean, variance = float(filled.min()), float((filled.max() - filled.min()) ** 2)
        else:
            mean, variance = 0.0, 1.0
        indicator = settings.missing_indicator == "always" or (
            settings.missing_indicator == "auto" and bool(np.isnan(values).any())
        )
        numeric[column] = {
            "fill_value": fill,
            "indicator": indicator,
            "clip": clip,
            "scaling": scaling,
            "mean": mean,
            # A constant column would be divided by ~0; scaling it by 1 keeps it finite (and uninformative).
            "variance": variance if variance > 0 else 1.0,
        }
        if scaling == "quantile":
            numeric[column].update(quantile_normal_knots(filled, settings.quantiles))
    categorical = {}
    for column in roles.categorical or []:
        counts = pd.Series(inputs[column]).value_counts()
        counts = counts[counts >= params.categorical.min_frequency]
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if params.categorical.max_categories is not None:
            ordered = ordered[: params.categorical.max_categories]
        categorical[column] = {"vocabulary": [str(value) for value, _ in ordered]}
    text = {column: _text_state(inputs[column], params) for column in roles.text}
    return {"numeric": numeric, "categorical": categorical, "text": text}


def quantile_normal_knots(values: np.ndarray, quantiles: int) -> dict[str, list[float]]:
    """The knots and normal scores of ``QuantileNormal`` for one training column (imputed and clipped).

    The knots are the distinct training values at ``quantiles`` evenly spaced quantiles; each knot's score is
    the standard-normal quantile of its mid rank among the training values, ``(below + 0.5 * equal) / n``, kept
    within ``[0.5 / n, 1 - 0.5 / n]`` so the end scores stay finite.
    """
    from scipy.special import ndtri

    ordered = np.sort(np.asarray(values, dtype="float64"))
    # Observed values as knots (no interpolated ones): a column of few distinct values keeps exactly those.
    knots = np.unique(np.quantile(ordered, np.linspace(0.0, 1.0, quantiles), method="inverted_cdf"))
    below = np.searchsorted(ordered, knots, side="left")
    up_to = np.searchsorted(ordered, knots, side="right")
    n = ordered.size
    ranks = np.clip((below + up_to) / (2.0 * n), 0.5 / n, 1.0 - 0.5 / n)
    # A single-valued column has one knot, scored 0 (the centre).
    scores = ndtri(ranks) if knots.size > 1 else np.zeros(1)
    return {"knots": [float(k) for k in knots], "scores": [float(z) for z in scores]}


def text_vectorization(params: ModellingParams, **kwargs: Any) -> Any:
    """The TextVectorization layer of ``params:modelling.text`` (unadapted unless given a vocabulary)."""
    import keras

    settings = params.text
    if settings.encoder == "ngrams":
        return keras.layers.TextVectorization(
            max_tokens=settings.max_tokens,
            standardize="lower_and_strip_punctuation",
            split="whitespace",
            ngrams=settings.ngrams,
            output_mode=settings.output_mode,
            **kwargs,
        )
    return keras.layers.TextVectorization(
        max_tokens=settings.max_tokens,
        standardize="lower_and_strip_punctuation",
        split="whitespace",
        output_mode="int",
        **kwargs,
    )


def _text_state(values: np.ndarray, params: ModellingParams) -> dict[str, Any]:
    layer = text_vectorization(params)
    layer.adapt(np.asarray(values, dtype=object).astype(str))
    vocabulary = [str(token) for token in layer.get_vocabulary()]
    if params.text.encoder == "embedding":
        # The first two entries are the padding token "" and "[UNK]", which the layer adds itself.
        return {"vocabulary": vocabulary[2:]}
    # Without padding: the first entry is "[UNK]", which the layer adds itself.
    state: dict[str, Any] = {"vocabulary": vocabulary[1:]}
    if params.text.output_mode == "tf_idf":
        # The layer's saving API is its one public way to the learned weights (the first one is the OOV token's).
        store: dict[str, Any] = {}
        layer.save_own_variables(store)
        state["idf_weights"] = [float(w) for w in np.asarray(store["idf_weights"])[1:]]
    return state
