"""Whether every split would hold enough rows of every class, checked before anything is written.

A class with a handful of rows in validation or test gives metrics that are noise. Each split must hold at least
``params:splitting.min_rows_per_class`` rows of every class; ``params:splitting.on_small_table`` says whether a
table that falls short stops the run (``stop``) or only warns (``warn``).

Two places check it. :class:`~.hooks.CheckSplitSizesHook` runs before the first node of a run that splits: it counts the
classes of ``clean_table`` when the run reads it, otherwise of the raw main table ``raw_customers`` (its target
labels stripped as cleaning strips them); cleaning only drops rows, so a class short there is short after cleaning
too, and the run stops before acquisition writes anything. ``split_clean_table`` checks the clean table itself
before it moves a row, for the rows cleaning dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import target_labels

from .schema import SplittingParameters

logger = logging.getLogger(__name__)


Allocate = Callable[[int], Mapping[str, int]]


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def allocate_rows(rows: int, params: SplittingParameters) -> dict[str, int]:
    """Rows of one class that go to each split: validation and test are rounded, training takes the rest."""
    val = _round_half_up(rows * params.val_size)
    test = _round_half_up(rows * params.test_size)
    return {"train": rows - val - test, "val": val, "test": test}


def short_splits(
    counts: Mapping[str, int], allocate: Allocate, minimum: int
) -> list[tuple[str, str, int]]:
    """``(class, split, rows)`` for every split that would hold fewer than ``minimum`` rows of a class.

    Args:
        counts: rows per class of the table.
        allocate: rows of one class -> rows each split gets (``allocate_rows`` at the configured sizes).
        minimum: ``params:splitting.min_rows_per_class``.
    """
    return [
        (label, split, int(rows))
        for label, total in counts.items()
        for split, rows in allocate(total).items()
        if rows < minimum
    ]


def rows_needed(allocate: Allocate, minimum: int) -> int:
    """The fewest rows a class needs so that every split gets at least ``minimum`` of them."""
    rows = minimum
    while min(allocate(rows).values()) < minimum:
        rows += 1
    return rows


def check_split_sizes(
    counts: Mapping[str, int], params: SplittingParameters, dataset: str, target: str
) -> list[str]:
    """Stop or warn (``params.on_small_table``) when a split would hold fewer than ``min_rows_per_class`` rows.

    Args:
        counts: rows per class of the table.
        params: ``params:splitting`` (split sizes, ``min_rows_per_class``, ``on_small_table``).
        dataset: the table counted, named in the message.
        target: the target column.

    Returns:
        The problems found, one line per class and split (empty when every split is large enough).

    Raises:
        ValueError: with ``stop``, naming each class, split and count and what to do.
    """
    allocate = partial(allocate_rows, params=params)
    minimum = params.min_rows_per_class
    problems = [
        f"class '{label}' would have {rows} rows in {split} "
        f"(of {counts[label]} rows of that class in '{dataset}')"
        for label, split, rows in short_splits(counts, allocate, minimum)
    ]
    if not problems:
        return []
    needed = rows_needed(allocate, minimum)
    message = (
        f"The table is too small to split: each of train/val/test needs at least {minimum} rows of every class of "
        f"'{target}' (params:splitting.min_rows_per_class), but\n  "
        + "\n  ".join(problems)
        + f"\nAdd rows (each class needs at least {needed} rows at these split sizes), merge rare classes, change the "
        "sizes or lower min_rows_per_class in params:splitting, or set params:splitting.on_small_table: warn to "
        "split anyway (validation and test metrics on so few rows are noise)."
    )
    if params.on_small_table == "stop":
        raise ValueError(message)
    logger.warning(message)
    return problems


def label_counts(target: pd.Series) -> dict[str, int]:
    """Rows per class of a raw target, its labels as cleaning makes them (``target_labels``, then stripped)."""
    labels = target_labels(target).dropna().astype("str").str.strip()
    return {str(k): int(v) for k, v in labels[labels.str.len() > 0].value_counts().items()}
