"""Balancing of the training split only; validation and test keep the real class ratio.

Rows of the training split are never changed: random undersampling removes some, the other methods add rows after
them. An added row (a random-oversampling copy or a SMOTE / SMOTE-NC synthetic row) gets the key
``<synthetic_key_prefix>000001``, ``...000002`` and so on (text keys; the split refuses a table whose keys already use
the prefix, so they cannot collide) or a missing key when the key column is not text; columns without a role are
missing on added rows. SMOTE needs complete rows: its neighbours are found on a copy of the training split whose
missing values are filled with the training split's median (numeric) and most frequent value (categorical), so
synthetic rows carry no missing values while real rows keep theirs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles
from deep_learning_workflow.parameters import parse

from .nodes import check_balancing, class_counts
from .schema import Balancing, SplittingParameters


def training_fill_values(train: pd.DataFrame, roles: ColumnRoles) -> dict[str, Any]:
    """Values that fill the training split's gaps for SMOTE: median of numeric, most frequent of categorical columns.

    Computed from the training split only. Ties between equally frequent categories go to the first in sort order.

    Raises:
        ValueError: naming a feature column without any value in the training split.
    """
    values: dict[str, Any] = {}
    empty = [c for c in roles.features if train[c].notna().sum() == 0]
    if empty:
        raise ValueError(
            f"Columns {empty} have no value in the training split, so SMOTE cannot fill or synthesise them. "
            "Drop them from params:columns or use params:splitting.balancing.method random_oversampling."
        )
    for column in roles.numeric or []:
        values[column] = float(train[column].median())
    for column in roles.categorical or []:
        counts = train[column].astype("str").value_counts(dropna=True)
        values[column] = sorted(counts[counts == counts.max()].index)[0]
    return values


def _added_keys(train: pd.DataFrame, key: str | None, prefix: str, count: int) -> pd.Series | None:
    if key is None:
        return None
    if not pd.api.types.is_string_dtype(train[key]):
        return pd.Series([np.nan] * count, dtype="float64")
    width = max(6, len(str(count)))
    return pd.Series([f"{prefix}{i:0{width}d}" for i in range(1, count + 1)], dtype="str")


def _with_added_rows(
    train: pd.DataFrame, added: pd.DataFrame, key: str | None, prefix: str
) -> pd.DataFrame:
    """The training split followed by the added rows, which get new keys and the training split's dtypes."""
    if added.empty:
        return train.reset_index(drop=True)
    added = added.reset_index(drop=True)
    keys = _added_keys(train, key, prefix, len(added))
    if keys is not None:
        added[key] = keys
    for column, dtype in train.dtypes.items():
        if column not in added:
            added[column] = pd.Series(np.nan, index=added.index)
        if pd.api.types.is_string_dtype(dtype):
            added[column] = added[column].astype("str")
        elif pd.api.types.is_integer_dtype(dtype) and added[column].notna().all():
            added[column] = np.round(added[column].astype("float64")).astype(dtype)
    return pd.concat([train, added[train.columns]], ignore_index=True)


def balance_training_split(
    train: pd.DataFrame, columns: dict[str, Any], splitting: dict[str, Any], seed: int
) -> pd.DataFrame:
    """Resample the training split with the method in ``params:splitting.balancing``.

    Args:
        train: the training split; it is the only split this node sees.
        columns: ``params:columns``.
        splitting: ``params:splitting``.
        seed: ``params:seed``.

    Returns:
        The training rows (some removed by random undersampling) followed by the rows the method added, each with
        a new key (see the module docstring).

    Raises:
        ValueError: when the method cannot run on this split (see :func:`check_balancing`).
    """
    balancing = parse(SplittingParameters, splitting, "splitting").balancing
    roles = resolve_roles(train, parse(ColumnRoles, columns, "columns"), "train")
    if train.empty:
        raise ValueError("The training split is empty: there is nothing to balance.")
    counts = class_counts(train[roles.target])
    check_balancing(roles, balancing, counts)
    if balancing.method == "none" or len(counts) < 2:
        return train.reset_index(drop=True)
    y = train[roles.target].astype("str").to_numpy(dtype=object)
    if balancing.method in ("random_undersampling", "random_oversampling"):
        return _resample_rows(train, y, roles, balancing, seed)
    return _with_synthetic_rows(train, y, roles, balancing, seed)


def _resample_rows(
    train: pd.DataFrame, y: np.ndarray, roles: ColumnRoles, balancing: Balancing, seed: int
) -> pd.DataFrame:
    """Random undersampling (a subset of the rows, in their order) or oversampling (copies after the rows)."""
    # imbalanced-learn pulls in scikit-learn's neighbours; import it only when balancing runs.
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    undersample = balancing.method == "random_undersampling"
    sampler_type = RandomUnderSampler if undersample else RandomOverSampler
    sampler = sampler_type(sampling_strategy=balancing.sampling_strategy, random_state=seed)
    sampler.fit_resample(np.arange(len(train)).reshape(-1, 1), y)
    chosen = np.asarray(sampler.sample_indices_)
    if undersample:
        return train.iloc[np.sort(chosen)].reset_index(drop=True)
    copies = train.iloc[chosen[len(train) :]]
    return _with_added_rows(train, copies, roles.key, balancing.synthetic_key_prefix)


def _with_synthetic_rows(
    train: pd.DataFrame, y: np.ndarray, roles: ColumnRoles, balancing: Balancing, seed: int
) -> pd.DataFrame:
    """SMOTE or SMOTE-NC rows after the training rows; neighbours are found on the gap-filled features."""
    from imblearn.over_sampling import SMOTE, SMOTENC

    features = [*(roles.numeric or []), *(roles.categorical or [])]
    filled = train[features].fillna(training_fill_values(train, roles))
    for column in roles.numeric or []:
        filled[column] = filled[column].astype("float64")
    settings = {
        "sampling_strategy": balancing.sampling_strategy,
        "k_neighbors": balancing.k_neighbors,
        "random_state": seed,
    }
    if balancing.method == "smote":
        sampler = SMOTE(**settings)
    else:
        positions = list(range(len(roles.numeric or []), len(features)))
        sampler = SMOTENC(categorical_features=positions, **settings)
    resampled, labels = sampler.fit_resample(filled, y)
    # imbalanced-learn returns the input rows first, then the synthetic ones.
    synthetic = pd.DataFrame(resampled).iloc[len(train) :].copy()
    synthetic.columns = features
    synthetic[roles.target] = np.asarray(labels)[len(train) :]
    return _with_added_rows(train, synthetic, roles.key, balancing.synthetic_key_prefix)
