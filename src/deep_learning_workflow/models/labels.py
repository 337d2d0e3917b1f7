"""Labels as the network trains on them: one-hot in the order of the training classes, and balanced row weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def encode_labels(target: pd.Series, classes: Sequence[str], dataset: str) -> np.ndarray:
    """One-hot float32 labels in the order of ``classes``.

    Raises:
        ValueError: when the target has a missing value or a class the training split does not have.
    """
    labels = target.astype(str).to_numpy()
    unknown = sorted(set(labels[target.notna().to_numpy()]) - set(classes))
    if target.isna().any() or unknown:
        raise ValueError(
            f"Target column '{target.name}' of '{dataset}' has missing values or classes {unknown} absent from "
            f"the training classes {list(classes)}; clean or re-split the data."
        )
    return (labels[:, None] == np.asarray(classes, dtype=object)[None, :]).astype("float32")


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Weights n / (k * n_class) per row, from one-hot labels (scikit-learn's ``balanced``)."""
    counts = labels.sum(axis=0)
    present = counts > 0
    per_class = np.zeros_like(counts)
    per_class[present] = labels.shape[0] / (present.sum() * counts[present])
    return (labels @ per_class).astype("float32")
