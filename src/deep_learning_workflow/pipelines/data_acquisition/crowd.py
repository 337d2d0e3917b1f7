"""The crowd labels source: several annotators' votes per item -> one label per item and their agreement."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse

from .common import ANNOTATIONS_DATASET, KEY, settings_of
from .schema import CrowdSource


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories matrix of label counts.

    With a varying number of annotators per item, the observed agreement is the mean of the per-item agreements
    of the items with at least two labels (the usual generalisation); with equal numbers it is Fleiss' formula.

    Returns:
        Kappa, or NaN when it is undefined (no item with two labels, or every label the same category).
    """
    counts = np.asarray(counts, dtype=float)
    per_item = counts.sum(axis=1)
    rated = per_item >= 2
    if not rated.any():
        return float("nan")
    counts, per_item = counts[rated], per_item[rated]
    observed = ((counts**2).sum(axis=1) - per_item) / (per_item * (per_item - 1))
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares**2).sum())
    if expected >= 1.0:
        return float("nan")
    return float((observed.mean() - expected) / (1.0 - expected))


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def _checked_votes(annotations: pd.DataFrame, needed: list[str]) -> pd.DataFrame:
    """The (item, annotator, label) rows with a label, after checking the columns and one vote per pair.

    Raises:
        ValueError: when a column is missing or an annotator labelled the same item twice.
    """
    missing = [column for column in needed if column not in annotations]
    if missing:
        raise ValueError(
            f"Dataset '{ANNOTATIONS_DATASET}' has no column {missing}; it has {list(annotations.columns)}. "
            f"Fix {KEY}.sources.crowd (item_column, annotator_column, label_column)."
        )
    votes = annotations[needed].dropna()
    repeated = votes.duplicated(needed[:2])
    if repeated.any():
        example = votes.loc[repeated, needed[:2]].iloc[0].tolist()
        raise ValueError(
            f"Dataset '{ANNOTATIONS_DATASET}': {int(repeated.sum())} repeated (item, annotator) pairs, e.g. "
            f"{example}; keep one label per annotator and item."
        )
    return votes


def aggregate_annotations(
    annotations: pd.DataFrame, parameters: dict[str, Any], columns: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Aggregate several annotators' labels per item into one label and measure their agreement.

    The label of an item is the majority vote; ties go to the label that is more frequent over all annotations,
    then to the first in alphabetical order. Agreement of an item is the share of its pairs of annotators that
    agree (Fleiss' per-item agreement). Items with agreement below ``min_agreement`` or with fewer than
    ``min_annotators`` labels are flagged and get no label.

    Args:
        annotations: ``raw_annotations``: one row per (item, annotator) with the label.
        parameters: ``params:data_acquisition`` (``sources.crowd``).
        columns: ``params:columns``: the item column defaults to the key, labels fill the target.

    Returns:
        The labels of the unflagged items (columns: key, target) and the annotation report; an empty table and
        ``{"enabled": false}`` when the source is disabled.

    Raises:
        ValueError: when a column is missing or an annotator labelled the same item twice.
    """
    crowd = settings_of(parameters).sources.crowd
    roles = parse(ColumnRoles, columns, "columns")
    if not crowd.enabled:
        return pd.DataFrame(), {"enabled": False}
    item = crowd.item_column or roles.key
    if item is None:
        raise ValueError(
            f"{KEY}.sources.crowd.item_column is needed when params:columns.key is null."
        )
    votes = _checked_votes(annotations, [item, crowd.annotator_column, crowd.label_column])
    overall = votes[crowd.label_column].value_counts()
    order = sorted(overall.index, key=lambda label: (-overall[label], str(label)))
    # Columns in this order, so idxmax breaks ties by overall frequency, then alphabetically.
    counts = pd.crosstab(votes[item], votes[crowd.label_column]).reindex(
        columns=order, fill_value=0
    )
    per_item = counts.sum(axis=1)
    pairs = per_item * (per_item - 1)
    agreement = ((counts**2).sum(axis=1) - per_item) / pairs.where(pairs > 0)
    flagged = (
        (per_item < crowd.min_annotators) | agreement.isna() | (agreement < crowd.min_agreement)
    )
    majority = counts.idxmax(axis=1)
    labels = pd.DataFrame(
        {item: counts.index[~flagged.to_numpy()], roles.target: majority[~flagged].to_numpy()}
    ).rename(columns={item: roles.key or item})
    return labels, _annotation_report(votes, counts, agreement, flagged, crowd)


def _annotation_report(
    votes: pd.DataFrame,
    counts: pd.DataFrame,
    agreement: pd.Series,
    flagged: pd.Series,
    crowd: CrowdSource,
) -> dict[str, Any]:
    """Counts of annotations, items and annotators, the labels' counts, Fleiss' kappa and the flagged items."""
    per_item = counts.sum(axis=1)
    return {
        "enabled": True,
        "dataset": ANNOTATIONS_DATASET,
        "annotations": len(votes),
        "items": len(counts),
        "annotators": int(votes[crowd.annotator_column].nunique()),
        "annotators_per_item": {
            "min": int(per_item.min()),
            "mean": round(float(per_item.mean()), 3),
            "max": int(per_item.max()),
        },
        "label_counts": {str(label): int(counts[label].sum()) for label in counts.columns},
        "fleiss_kappa": _json_number(fleiss_kappa(counts.to_numpy())),
        "mean_item_agreement": _json_number(float(agreement.mean())),
        "min_agreement": crowd.min_agreement,
        "min_annotators": crowd.min_annotators,
        "labelled_items": int((~flagged).sum()),
        "flagged_items": int(flagged.sum()),
        "flagged_keys": [str(key) for key in counts.index[flagged.to_numpy()]],
    }
