"""Stratified train/validation/test split of the clean table and the split report (balancing: ``balancing.py``).

The split is stratified by the target: each class is shuffled with ``params:seed`` and cut at the configured
sizes, so every split keeps the table's class ratio and the same seed on the same rows gives the same keys,
whatever order the rows come in (rows are ordered by key before shuffling).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
from deep_learning_workflow.parameters import parse

from .class_sizes import allocate_rows, check_split_sizes
from .schema import Balancing, SplittingParameters

SOURCE = "clean_table"
SPLITS = ("train", "val", "test")


def minimum_class_rows(params: SplittingParameters) -> int:
    """The fewest rows a class needs so that each split gets at least one."""
    rows = 3
    while min(allocate_rows(rows, params).values()) < 1:
        rows += 1
    return rows


def class_counts(target: pd.Series, classes: list[str] | None = None) -> dict[str, int]:
    labels = target.astype("str")
    return {label: int((labels == label).sum()) for label in classes or target_classes(target)}


def _describe(frame: pd.DataFrame, target: str, classes: list[str]) -> dict[str, Any]:
    counts = class_counts(frame[target], classes)
    rows = len(frame)
    return {
        "rows": rows,
        "class_counts": counts,
        "class_ratio": {label: (n / rows if rows else None) for label, n in counts.items()},
    }


def check_balancing(roles: ColumnRoles, balancing: Balancing, train_counts: dict[str, int]) -> None:
    """Check that the balancing method can run on a training split with these roles and class counts.

    Args:
        roles: resolved column roles.
        balancing: ``params:splitting.balancing``.
        train_counts: rows per class in the training split.

    Raises:
        ValueError: naming the parameter or columns in the way and what to do instead.
    """
    method = balancing.method
    if method == "none":
        return
    where = "params:splitting.balancing"
    strategy = balancing.sampling_strategy
    if isinstance(strategy, float):
        if len(train_counts) != 2:
            raise ValueError(
                f"{where}.sampling_strategy = {strategy}: a ratio works for binary targets only and "
                f"'{roles.target}' has {len(train_counts)} classes. Use 'auto' or another named strategy."
            )
        current = min(train_counts.values()) / max(train_counts.values())
        if strategy < current:
            raise ValueError(
                f"{where}.sampling_strategy = {strategy} is below the training split's minority/majority ratio "
                f"({current:.3f}): {method} cannot reach it. Use a ratio of at least {current:.3f} or 'auto'."
            )
    if method in ("smote", "smote_nc"):
        if roles.text:
            raise ValueError(
                f"{where}.method = {method} cannot synthesise the text columns {roles.text}. "
                "Use random_oversampling, or class weights with method none."
            )
        categorical = roles.categorical or []
        if method == "smote" and categorical:
            shown = categorical[:5] + (["..."] if len(categorical) > 5 else [])
            raise ValueError(
                f"{where}.method = smote interpolates numbers only, but the table has categorical columns {shown}. "
                "Use smote_nc, which handles mixed numeric and categorical columns."
            )
        if method == "smote_nc" and not categorical:
            raise ValueError(
                f"{where}.method = smote_nc needs categorical columns and the table has none; use smote."
            )
        if not roles.numeric:
            raise ValueError(
                f"{where}.method = {method} needs numeric columns and the table has none; "
                "use random_oversampling."
            )
        fewest = min(train_counts, key=train_counts.get)
        if train_counts[fewest] <= balancing.k_neighbors:
            raise ValueError(
                f"{where}.k_neighbors = {balancing.k_neighbors} needs more than {balancing.k_neighbors} training "
                f"rows in every class, but class '{fewest}' has {train_counts[fewest]}. Lower k_neighbors or use "
                "random_oversampling."
            )


def _check_table(frame: pd.DataFrame, roles: ColumnRoles, params: SplittingParameters) -> list[str]:
    """Everything that would stop the split or the balancing, checked before any row is moved."""
    if frame.empty:
        raise ValueError(
            f"Dataset '{SOURCE}' is empty: there is nothing to split. Check the cleaning report "
            "(data/08_reporting/cleaning_report.json) for the rows data_processing dropped."
        )
    target = roles.target
    if frame[target].isna().any():
        raise ValueError(
            f"Dataset '{SOURCE}' has {int(frame[target].isna().sum())} rows without a target in '{target}'; "
            "data_processing drops them, so run it before splitting."
        )
    classes = target_classes(frame[target])
    if len(classes) < 2:
        raise ValueError(
            f"Target column '{target}' of '{SOURCE}' has one class only ({classes}): there is nothing to learn. "
            "Check params:columns.target and the data sources."
        )
    key = roles.key
    if key is not None:
        keys = frame[key]
        repeated = keys[keys.duplicated() & keys.notna()].unique().tolist()
        if repeated:
            raise ValueError(
                f"Key column '{key}' of '{SOURCE}' repeats {repeated[:10]}; one key must be in one split. "
                "data_processing keeps one row per key, so run it before splitting."
            )
        prefix = params.balancing.synthetic_key_prefix
        if pd.api.types.is_string_dtype(keys) and keys.astype("str").str.startswith(prefix).any():
            raise ValueError(
                f"Keys in column '{key}' of '{SOURCE}' start with '{prefix}', which marks rows added by balancing. "
                "Change params:splitting.balancing.synthetic_key_prefix."
            )
    counts = class_counts(frame[target], classes)
    needed = minimum_class_rows(params)
    too_few = {label: n for label, n in counts.items() if n < needed}
    if too_few:
        raise ValueError(
            f"Cannot stratify '{SOURCE}' by '{target}' at train/val/test = {params.train_size}/{params.val_size}/"
            f"{params.test_size}: each class needs at least {needed} rows and {too_few} have fewer. "
            "Add rows, merge rare classes, or change the sizes in params:splitting."
        )
    train_counts = {label: allocate_rows(n, params)["train"] for label, n in counts.items()}
    check_balancing(roles, params.balancing, train_counts)
    return classes


def split_clean_table(
    clean_table: pd.DataFrame, columns: dict[str, Any], splitting: dict[str, Any], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split the clean table into stratified training, validation and test splits.

    Args:
        clean_table: the clean table (one row per key, no missing target).
        columns: ``params:columns``.
        splitting: ``params:splitting``.
        seed: ``params:seed``.

    Returns:
        train, val, test (rows in the clean table's order, index reset) and a summary of their sizes and class
        ratios for the split report.

    Raises:
        ValueError: on an empty table, a target with one class, a class too small to stratify, repeated keys, or
            balancing settings that cannot work on this table; all raised before any row is moved.
    """
    params = parse(SplittingParameters, splitting, "splitting")
    roles = resolve_roles(clean_table, parse(ColumnRoles, columns, "columns"), SOURCE)
    classes = _check_table(clean_table, roles, params)
    counts = class_counts(clean_table[roles.target], classes)
    check_split_sizes(counts, params, SOURCE, roles.target)

    # Ordering by key first makes the split depend on which rows there are, not on the order they arrive in.
    order = np.arange(len(clean_table))
    if roles.key is not None:
        order = np.argsort(clean_table[roles.key].astype("str").to_numpy(), kind="stable")
    labels = clean_table[roles.target].astype("str").to_numpy()
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(clean_table), dtype=object)
    for label in classes:
        members = order[labels[order] == label]
        members = members[rng.permutation(len(members))]
        counts = allocate_rows(len(members), params)
        cuts = np.cumsum([counts["train"], counts["val"]])
        for name, part in zip(SPLITS, np.split(members, cuts), strict=True):
            assignment[part] = name

    splits = {name: clean_table.loc[assignment == name].reset_index(drop=True) for name in SPLITS}
    summary = {
        "seed": seed,
        "target": roles.target,
        "classes": classes,
        "sizes_requested": params.sizes,
        "clean_table": _describe(clean_table, roles.target, classes),
        **{name: _describe(frame, roles.target, classes) for name, frame in splits.items()},
    }
    return splits["train"], splits["val"], splits["test"], summary


def report_split(
    split_summary: dict[str, Any],
    train_balanced: pd.DataFrame,
    columns: dict[str, Any],
    splitting: dict[str, Any],
) -> dict[str, Any]:
    """The split report: sizes and class ratios per split, and the training split before and after balancing.

    Args:
        split_summary: the summary :func:`split_clean_table` returns.
        train_balanced: the balanced training split.
        columns: ``params:columns``.
        splitting: ``params:splitting``.

    Returns:
        A JSON-safe dictionary.
    """
    params = parse(SplittingParameters, splitting, "splitting")
    roles = parse(ColumnRoles, columns, "columns")
    classes = split_summary["classes"]
    after = _describe(train_balanced, split_summary["target"], classes)
    before = split_summary["train"]
    added = 0
    if roles.key is not None and roles.key in train_balanced:
        keys = train_balanced[roles.key]
        prefix = params.balancing.synthetic_key_prefix
        added = int((keys.isna() | keys.astype("str").str.startswith(prefix)).sum())
    return {
        "seed": split_summary["seed"],
        "target": split_summary["target"],
        "classes": classes,
        "sizes_requested": split_summary["sizes_requested"],
        "splits": {
            "clean_table": split_summary["clean_table"],
            **{name: split_summary[name] for name in SPLITS},
            "train_balanced": after,
        },
        "balancing": {
            **params.balancing.model_dump(),
            "rows_before": before["rows"],
            "rows_after": after["rows"],
            "rows_added": added,
            "rows_removed": before["rows"] + added - after["rows"],
            "class_ratio_before": before["class_ratio"],
            "class_ratio_after": after["class_ratio"],
        },
    }
