"""The rows early stopping watches: a stratified, seeded holdout of the fitted rows, so validation stays unseen.

Early stopping that watches the validation split picks the epoch with the best validation score and restores it:
the validation figures the release gate then compares with the baselines' are selected on validation, so they are
optimistic. With ``params:modelling.early_stopping.holdout`` above 0 a share of the fitted rows (stratified by the
target, drawn with the model's seed) is set aside to choose the epoch, and the weights are fitted on the rest.
Validation is then scored once, by a model that never saw it, like each baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_ROWS_PER_CLASS = 2
"""A class needs this many fitted rows to lend one to the holdout and keep one for fitting."""


def split_holdout(
    frame: pd.DataFrame, target: str, share: float, seed: int, dataset: str = "train"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into the rows to fit on and a holdout of about ``share`` of them, stratified by ``target``.

    Every class keeps at least one row on each side, so the holdout's metrics are defined for every class.

    Args:
        frame: the rows the weights would be fitted on.
        target: the target column.
        share: the holdout's share of the rows, in (0, 1).
        seed: the model's seed; the same seed gives the same rows.
        dataset: the dataset name of ``frame`` in error messages.

    Returns:
        ``(fit, holdout)``, both in the order of ``frame``.

    Raises:
        ValueError: when ``share`` is outside (0, 1) or a class has fewer than two rows.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(
            f"params:modelling.early_stopping.holdout must be in (0, 1) to split '{dataset}', got {share}."
        )
    labels = frame[target].astype(str).to_numpy()
    classes, counts = np.unique(labels, return_counts=True)
    short = [str(c) for c, n in zip(classes, counts, strict=True) if n < MIN_ROWS_PER_CLASS]
    if short:
        raise ValueError(
            f"Dataset '{dataset}' has fewer than {MIN_ROWS_PER_CLASS} rows of the classes {short} in "
            f"'{target}': the early-stopping holdout cannot hold one of each. Set "
            "params:modelling.early_stopping.holdout to 0 (stop on validation) or add rows."
        )
    rng = np.random.default_rng(seed)
    held = np.zeros(len(frame), dtype=bool)
    for label, count in zip(classes, counts, strict=True):
        rows = np.flatnonzero(labels == label)
        taken = int(np.clip(round(share * count), 1, count - 1))
        held[rng.choice(rows, size=taken, replace=False)] = True
    return frame.iloc[~held], frame.iloc[held]
