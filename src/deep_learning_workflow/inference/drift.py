"""Training reference statistics and drift of new records against them.

Shared by the serving pipeline (the reference goes into the serving bundle; the drift report compares a scored
batch with it) and the REST service (the same report on its logged requests): :func:`compute_drift` takes any
DataFrame of raw records.

Numeric columns are binned on the training split's quantiles; the first and last bins are open-ended, so values
outside the training range land there, and missing values form a bin of their own. Drift is the population
stability index (PSI) or the Jensen-Shannon distance (base 2, between 0 and 1) between the training and the new
bin shares. Categorical columns compare category shares, with missing values and categories never seen in training
as extra buckets; drift is the L-infinity distance (the largest absolute difference of a share). Text columns are
monitored through their length in characters, like a numeric column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, PositiveInt

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import Parameters

MISSING = "missing"
UNSEEN = "unseen"


class DriftSettings(Parameters):
    """Drift metrics and the thresholds above which a feature counts as drifted (``serving.drift``)."""

    numeric_metric: Literal["psi", "jensen_shannon"] = "psi"
    numeric_threshold: float = Field(
        0.2,
        gt=0,
        description="PSI above 0.2 is the usual 'significant shift'; Jensen-Shannon distance: about 0.1",
    )
    categorical_threshold: float = Field(
        0.1, gt=0, le=1, description="L-infinity distance of category shares"
    )
    min_drifted_features: PositiveInt = Field(
        1, description="Retraining is due from this many drifted features"
    )
    min_rows: PositiveInt = Field(
        100, description="Fewer new records than this never make retraining due"
    )
    epsilon: float = Field(
        1e-4, gt=0, lt=0.01, description="Floor of a share in PSI, so an empty bin stays finite"
    )


def _numeric_values(values: pd.Series, column: str) -> np.ndarray:
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Numeric column '{column}' holds a value that is not a number: {error}"
        ) from None


def _text_lengths(values: pd.Series) -> np.ndarray:
    lengths = values.astype("string").str.len()
    return lengths.to_numpy(dtype="float64", na_value=np.nan)


def _categorical_values(values: pd.Series) -> pd.Series:
    # Missing and "" are the same thing to the model (see model_inputs.to_model_inputs).
    strings = values.astype("string")
    return strings.mask(strings == "")


def _numeric_reference(values: np.ndarray, bins: int) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return {"bin_edges": [], "proportions": [], "missing": 1.0}
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    shares = _bin_shares(values, edges.tolist())
    return {"bin_edges": edges.tolist(), "proportions": shares[:-1], "missing": shares[-1]}


def _bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of values per bin (right-closed, first and last open-ended), then the missing share."""
    if values.size == 0:
        return [0.0] * (max(len(edges) - 1, 0) + 1)
    missing = np.isnan(values)
    counts = np.zeros(max(len(edges) - 1, 0) + 1)
    if len(edges) >= 2:
        index = np.searchsorted(np.asarray(edges[1:-1]), values[~missing], side="left")
        counts[:-1] = np.bincount(index, minlength=len(edges) - 1)
    counts[-1] = missing.sum()
    return (counts / values.size).tolist()


def _categorical_reference(values: pd.Series) -> dict[str, Any]:
    strings = _categorical_values(values)
    shares = strings.value_counts(dropna=True) / max(len(strings), 1)
    categories = sorted(shares.index.tolist())
    return {
        "categories": categories,
        "proportions": [float(shares[category]) for category in categories],
        "missing": float(strings.isna().mean()) if len(strings) else 0.0,
    }


def reference_statistics(train: pd.DataFrame, roles: ColumnRoles, bins: int) -> dict[str, Any]:
    """Training reference statistics of every feature column, for the serving bundle.

    Args:
        train: the training split (before balancing: the population the model will meet).
        roles: resolved column roles.
        bins: number of quantile bins of numeric columns (fewer when quantiles coincide).

    Returns:
        ``{"rows", "numeric", "categorical", "text_length"}`` as described in :mod:`deep_learning_workflow.bundle`.
    """
    return {
        "rows": len(train),
        "numeric": {
            c: _numeric_reference(_numeric_values(train[c], c), bins) for c in roles.numeric or []
        },
        "categorical": {c: _categorical_reference(train[c]) for c in roles.categorical or []},
        "text_length": {c: _numeric_reference(_text_lengths(train[c]), bins) for c in roles.text},
    }


def population_stability_index(expected: np.ndarray, actual: np.ndarray, epsilon: float) -> float:
    """PSI = sum((actual - expected) * ln(actual / expected)), shares floored at ``epsilon``."""
    expected = np.maximum(np.asarray(expected, dtype="float64"), epsilon)
    actual = np.maximum(np.asarray(actual, dtype="float64"), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def jensen_shannon_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    """Square root of the Jensen-Shannon divergence in bits: 0 for equal shares, 1 for disjoint ones."""
    expected = np.asarray(expected, dtype="float64")
    actual = np.asarray(actual, dtype="float64")
    expected = expected / expected.sum()
    actual = actual / actual.sum()
    middle = (expected + actual) / 2

    def divergence(shares: np.ndarray) -> float:
        used = shares > 0
        return float(np.sum(shares[used] * np.log2(shares[used] / middle[used])))

    return float(np.sqrt(max((divergence(expected) + divergence(actual)) / 2, 0.0)))


def linf_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    """The largest absolute difference between two vectors of shares."""
    return float(
        np.max(np.abs(np.asarray(actual, dtype="float64") - np.asarray(expected, dtype="float64")))
    )


def _bin_labels(edges: list[float]) -> list[str]:
    if len(edges) < 2:
        return ["all values"] if edges else []
    inner = edges[1:-1]
    if not inner:
        return ["all values"]
    labels = [f"<= {inner[0]:.4g}"]
    labels += [f"({low:.4g}, {high:.4g}]" for low, high in zip(inner[:-1], inner[1:], strict=True)]
    return [*labels, f"> {inner[-1]:.4g}"]


def _numeric_drift(
    values: np.ndarray, reference: Mapping[str, Any], settings: DriftSettings
) -> dict[str, Any]:
    edges = list(reference["bin_edges"])
    expected = [*reference["proportions"], reference["missing"]]
    observed = _bin_shares(values, edges)
    if settings.numeric_metric == "psi":
        value = population_stability_index(
            np.asarray(expected), np.asarray(observed), settings.epsilon
        )
    else:
        value = jensen_shannon_distance(np.asarray(expected), np.asarray(observed))
    present = values[~np.isnan(values)]
    outside = (
        float(((present < edges[0]) | (present > edges[-1])).sum() / max(values.size, 1))
        if edges
        else 0.0
    )
    return {
        "kind": "numeric",
        "metric": settings.numeric_metric,
        "value": value,
        "threshold": settings.numeric_threshold,
        "drifted": value > settings.numeric_threshold,
        "labels": [*_bin_labels(edges), MISSING],
        "reference": expected,
        "observed": observed,
        "missing_share": observed[-1],
        "out_of_range_share": outside,
    }


def _categorical_drift(
    values: pd.Series, reference: Mapping[str, Any], settings: DriftSettings
) -> dict[str, Any]:
    strings = _categorical_values(values)
    rows = max(len(strings), 1)
    categories = list(reference["categories"])
    counts = strings.value_counts(dropna=True)
    observed = [float(counts.get(category, 0)) / rows for category in categories]
    unseen = float(counts[~counts.index.isin(categories)].sum()) / rows
    observed += [float(strings.isna().sum()) / rows, unseen]
    expected = [*reference["proportions"], reference["missing"], 0.0]
    value = linf_distance(np.asarray(expected), np.asarray(observed))
    return {
        "kind": "categorical",
        "metric": "linf",
        "value": value,
        "threshold": settings.categorical_threshold,
        "drifted": value > settings.categorical_threshold,
        "labels": [*categories, MISSING, UNSEEN],
        "reference": expected,
        "observed": observed,
        "missing_share": observed[-2],
        "unseen_share": unseen,
        "unseen_categories": sorted(counts[~counts.index.isin(categories)].index.tolist()),
    }


def compute_drift(
    records: pd.DataFrame, reference: Mapping[str, Any], settings: DriftSettings
) -> dict[str, Any]:
    """Drift of raw records (a scored batch, or the service's logged requests) against the training reference.

    Args:
        records: raw records, one column per feature; other columns are ignored.
        reference: the ``reference`` block of a serving bundle (see :func:`reference_statistics`).
        settings: metrics and thresholds.

    Returns:
        ``{"rows", "reference_rows", "settings", "features": {column: {...}}, "drifted_features",
        "enough_rows", "retraining_due"}``; each feature entry has ``kind``, ``metric``, ``value``,
        ``threshold``, ``drifted`` and the bucket ``labels`` with the ``reference`` and ``observed`` shares.
        ``drifted_features`` is sorted from the largest excess over its threshold down.

    Raises:
        ValueError: naming the reference columns the records lack, or a numeric column holding text.
    """
    groups = {
        kind: dict(reference.get(kind, {})) for kind in ("numeric", "categorical", "text_length")
    }
    expected_columns = [column for group in groups.values() for column in group]
    missing = [column for column in expected_columns if column not in records.columns]
    if missing:
        raise ValueError(
            f"The records lack the feature columns {missing} of the training reference; "
            f"they have {list(records.columns)}."
        )
    features: dict[str, dict[str, Any]] = {}
    for column, stats in groups["numeric"].items():
        features[column] = _numeric_drift(_numeric_values(records[column], column), stats, settings)
    for column, stats in groups["categorical"].items():
        features[column] = _categorical_drift(records[column], stats, settings)
    for column, stats in groups["text_length"].items():
        features[column] = _numeric_drift(_text_lengths(records[column]), stats, settings) | {
            "kind": "text_length"
        }
    drifted = sorted(
        (column for column, entry in features.items() if entry["drifted"]),
        key=lambda column: features[column]["value"] / features[column]["threshold"],
        reverse=True,
    )
    enough_rows = len(records) >= settings.min_rows
    return {
        "rows": len(records),
        "reference_rows": reference.get("rows"),
        "settings": settings.model_dump(),
        "features": features,
        "drifted_features": drifted,
        "enough_rows": enough_rows,
        "retraining_due": bool(enough_rows and len(drifted) >= settings.min_drifted_features),
    }
