"""Stateless cleaning of the acquired table (the EDA report of the clean table is in ``eda.py``).

Every cleaning step looks at one row at a time and takes its rules from parameters; nothing is fitted on all rows,
so cleaning before the split cannot leak validation or test rows into training (DESIGN.md). Statistics that need
all rows (imputation values, scaling, vocabularies) belong to the model's preprocessing, adapted on the training
split only. Every dropped row is counted by reason in the cleaning report.

The clean table keeps the acquired columns. Numeric columns are numbers (NaN when missing); the key, the target and
the categorical and text columns are text (``str`` dtype, NaN when missing), so an integer-coded category such as
``senior_citizen`` holds "0" and "1", and a class label compares equal to ``params:columns.positive_class``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles
from deep_learning_workflow.parameters import parse

from .schema import DataProcessingParameters, DomainRule, TextCleaning

__all__ = [
    "CLEAN",
    "SOURCE",
    "DataProcessingParameters",
    "DomainRule",
    "TextCleaning",
    "as_text",
    "check_conflicting_keys",
    "clean_acquired_table",
    "coerce_types",
    "normalise_text",
    "rule_violations",
]

SOURCE = "acquired_table"
CLEAN = "clean_table"
_HTML_TAG = re.compile(r"<[^>]*>")
_WHITESPACE = re.compile(r"\s+")


def as_text(values: pd.Series) -> pd.Series:
    """Values as the ``str`` dtype; whole numbers lose a trailing ``.0`` (1.0 -> "1"), missing stays NaN."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("str")
    if pd.api.types.is_numeric_dtype(values):
        present = values.dropna()
        if present.empty or np.all(np.mod(present.to_numpy(dtype="float64"), 1) == 0):
            return values.astype("Int64").astype("str")
    return values.astype("str")


def _blank_to_missing(values: pd.Series) -> pd.Series:
    return values.mask(values.str.len() == 0)


def _coerce_numeric(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A numeric column as numbers, and the mask of values that were given but are not numbers."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("int64"), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        return values, pd.Series(False, index=values.index)
    text = _blank_to_missing(values.astype("str").str.strip())
    numbers = pd.to_numeric(text, errors="coerce")
    return numbers, text.notna() & numbers.isna()


def normalise_text(values: pd.Series, settings: TextCleaning) -> pd.Series:
    """Normalise one text column: HTML tags and entities, whitespace, case; an empty text becomes missing.

    Args:
        values: the column.
        settings: which normalisations to apply.

    Returns:
        The normalised column (``str`` dtype).
    """
    text = as_text(values)
    if settings.strip_html:
        text = text.str.replace(_HTML_TAG, " ", regex=True).map(html.unescape, na_action="ignore")
    if settings.collapse_whitespace:
        text = text.str.replace(_WHITESPACE, " ", regex=True)
    text = text.str.strip()
    if settings.lowercase:
        text = text.str.lower()
    return _blank_to_missing(text).astype("str")


def coerce_types(
    frame: pd.DataFrame, roles: ColumnRoles, params: DataProcessingParameters
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Give each column the type of its role.

    Numeric columns become numbers (a blank is missing), the key, the target and categorical columns become text
    (stripped when ``strip_categories``; a blank is missing), text columns are normalised. Columns without a role
    are left as they are.

    Args:
        frame: the table.
        roles: resolved column roles.
        params: cleaning parameters.

    Returns:
        The typed table, and for each numeric column the mask of values that were given but are not numbers (they
        are missing in the typed table).
    """
    typed = frame.copy()
    invalid: dict[str, pd.Series] = {}
    for column in roles.numeric or []:
        typed[column], invalid[column] = _coerce_numeric(frame[column])
    label_columns = [
        c for c in (roles.key, roles.target, *(roles.categorical or [])) if c is not None
    ]
    for column in dict.fromkeys(label_columns):
        text = as_text(frame[column])
        if params.strip_categories:
            text = text.str.strip()
        typed[column] = _blank_to_missing(text).astype("str")
    for column in roles.text:
        typed[column] = normalise_text(frame[column], params.text)
    return typed, invalid


def check_conflicting_keys(frame: pd.DataFrame, key: str | None, dataset: str = SOURCE) -> None:
    """Raise when one key is on several rows that differ (exact duplicates must be dropped first).

    Raises:
        ValueError: naming the conflicting keys.
    """
    if key is None:
        return
    keys = frame[key].dropna()
    repeated = keys[keys.duplicated(keep=False)].unique().tolist()
    if repeated:
        shown = ", ".join(repr(k) for k in sorted(repeated)[:10])
        more = f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""
        raise ValueError(
            f"Dataset '{dataset}' has {len(repeated)} key(s) in column '{key}' on rows that differ: {shown}{more}. "
            "Keep one row per key at the source or in data_acquisition; cleaning cannot tell which row is right."
        )


def _check_rules(frame: pd.DataFrame, roles: ColumnRoles, rules: Iterable[DomainRule]) -> None:
    numeric = set(roles.numeric or [])
    problems = []
    for index, rule in enumerate(rules):
        where = f"data_processing.rules[{index}] ({rule.label})"
        if rule.column not in frame.columns:
            problems.append(f"{where}: dataset '{SOURCE}' has no column '{rule.column}'")
        elif rule.allowed is None and rule.column not in numeric:
            problems.append(
                f"{where}: bounds need a numeric column; '{rule.column}' is not in columns.numeric"
            )
        elif rule.allowed is not None and rule.column in numeric:
            problems.append(
                f"{where}: '{rule.column}' is numeric; use ge/gt/le/lt bounds instead of allowed"
            )
    if problems:
        raise ValueError(
            "Invalid cleaning rules; fix them in conf/<env>/parameters_data_processing.yml:\n  - "
            + "\n  - ".join(problems)
        )


def rule_violations(frame: pd.DataFrame, rule: DomainRule) -> pd.Series:
    """Mask of the rows whose value in ``rule.column`` breaks the rule (missing values never do)."""
    values = frame[rule.column]
    if rule.allowed is not None:
        broken = ~as_text(values).isin(rule.allowed)
    else:
        broken = pd.Series(False, index=frame.index)
        for bound, fails in (
            (rule.ge, values.lt),
            (rule.gt, values.le),
            (rule.le, values.gt),
            (rule.lt, values.ge),
        ):
            if bound is not None:
                broken |= fails(bound)
    return broken & values.notna()


def clean_acquired_table(
    acquired_table: pd.DataFrame, columns: dict[str, Any], data_processing: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Clean the acquired table row by row and count every dropped row by reason.

    Steps, in order: type each column by its role (invalid numbers: ``invalid_numbers``), drop exact duplicate
    rows, stop on a key that is on several differing rows, apply the domain rules in the order given, drop rows
    without a key and rows without a target.

    Args:
        acquired_table: the validated table from data_acquisition.
        columns: ``params:columns``.
        data_processing: ``params:data_processing``.

    Returns:
        The clean table (index reset) and the cleaning report.

    Raises:
        ValueError: on an empty table, a role or rule naming a missing column, invalid numbers when
            ``invalid_numbers`` is ``error``, conflicting duplicate keys, or when no row is left.
    """
    params = parse(DataProcessingParameters, data_processing, "data_processing")
    roles = resolve_roles(acquired_table, parse(ColumnRoles, columns, "columns"), SOURCE)
    if acquired_table.empty:
        raise ValueError(
            f"Dataset '{SOURCE}' is empty: there is nothing to clean. Check the sources data_acquisition reads."
        )
    _check_rules(acquired_table, roles, params.rules)

    # Rows dropped and values set missing, by reason, in the order of the steps.
    dropped: dict[str, int] = {}
    set_missing: dict[str, dict[str, int]] = {}
    frame, invalid = coerce_types(acquired_table, roles, params)
    frame = _handle_invalid_numbers(
        acquired_table, frame, invalid, params.invalid_numbers, dropped, set_missing
    )
    duplicates = frame.duplicated(keep="first")
    dropped["exact_duplicate"] = int(duplicates.sum())
    frame = frame.loc[~duplicates]
    check_conflicting_keys(frame, roles.key)
    frame = _apply_rules(frame, params.rules, dropped, set_missing)
    frame = _drop_unlabelled(frame, roles, dropped)

    report = {
        "dataset": SOURCE,
        "rows_in": len(acquired_table),
        "rows_out": len(frame),
        "rows_dropped_total": sum(dropped.values()),
        "rows_dropped": dropped,
        "values_set_missing": set_missing,
        "rules": [
            rule.model_dump(exclude_none=True) | {"label": rule.label} for rule in params.rules
        ],
        "column_roles": roles.model_dump(),
    }
    if frame.empty:
        raise ValueError(
            f"Cleaning dropped every row of '{SOURCE}' ({len(acquired_table)} rows; by reason: {dropped}). "
            "Check the rules in conf/<env>/parameters_data_processing.yml and the target column."
        )
    return frame, report


def _handle_invalid_numbers(
    source: pd.DataFrame,
    frame: pd.DataFrame,
    invalid: dict[str, pd.Series],
    policy: str,
    dropped: dict[str, int],
    set_missing: dict[str, dict[str, int]],
) -> pd.DataFrame:
    """Raise on values that are not numbers (``error``), drop their rows (``drop_row``) or leave them missing."""
    invalid_counts = {column: int(mask.sum()) for column, mask in invalid.items() if mask.any()}
    if invalid_counts and policy == "error":
        examples = {
            c: source.loc[invalid[c], c].astype(str).unique()[:3].tolist() for c in invalid_counts
        }
        raise ValueError(
            f"Dataset '{SOURCE}' has values that are not numbers in numeric columns {invalid_counts} "
            f"(e.g. {examples}). Fix the source, or set data_processing.invalid_numbers to set_missing or drop_row."
        )
    if policy != "drop_row":
        set_missing["invalid_number"] = invalid_counts
        return frame
    invalid_rows = pd.Series(False, index=frame.index)
    for mask in invalid.values():
        invalid_rows |= mask
    dropped["invalid_number"] = int(invalid_rows.sum())
    return frame.loc[~invalid_rows]


def _apply_rules(
    frame: pd.DataFrame,
    rules: Iterable[DomainRule],
    dropped: dict[str, int],
    set_missing: dict[str, dict[str, int]],
) -> pd.DataFrame:
    """The domain rules in the order given: each drops the rows breaking it or sets their value missing."""
    for rule in rules:
        broken = rule_violations(frame, rule)
        if rule.action == "drop_row":
            dropped[f"rule: {rule.label}"] = int(broken.sum())
            frame = frame.loc[~broken]
        else:
            set_missing[f"rule: {rule.label}"] = {rule.column: int(broken.sum())}
            frame = frame.assign(**{rule.column: frame[rule.column].mask(broken)})
    return frame


def _drop_unlabelled(
    frame: pd.DataFrame, roles: ColumnRoles, dropped: dict[str, int]
) -> pd.DataFrame:
    """Drop rows without a key, then rows without a target; the index is reset."""
    if roles.key is not None:
        no_key = frame[roles.key].isna()
        dropped["missing_key"] = int(no_key.sum())
        frame = frame.loc[~no_key]
    no_target = frame[roles.target].isna()
    dropped["missing_target"] = int(no_target.sum())
    return frame.loc[~no_target].reset_index(drop=True)
