"""What a table's environment can be inferred from the table itself: key, column roles, classes, metric."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from deep_learning_workflow.columns import target_labels

# A string column is free text when its values are sentences: at least this many words at the median, and mostly
# distinct values (a category repeats).
TEXT_MIN_MEDIAN_WORDS = 4
TEXT_MIN_DISTINCT_SHARE = 0.3
# A short string column with this share of distinct values names rows (a second id, a name): no role.
ID_LIKE_DISTINCT_SHARE = 0.95
# A string column whose values are this share numbers holds numbers written as text (a "?" or " " for missing).
NUMBERS_AS_TEXT_SHARE = 0.95
KEY_NAME = re.compile(
    r"(^|[_\s-])(id|key|row|index|no|nr|number|code)$|^id[_\s-]|uuid", re.IGNORECASE
)


@dataclass(frozen=True)
class TableProfile:
    """The environment inferred from one table (every field is written to ``conf/<env>/`` with its reason)."""

    key: str | None
    target: str
    classes: list[str]
    class_counts: dict[str, int]
    positive_class: str | None
    numeric: list[str]
    categorical: list[str]
    text: list[str]
    ignored: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    text_words_p90: int | None = None

    @property
    def features(self) -> list[str]:
        """Feature columns, numeric then categorical then text (the order of params:columns)."""
        return [*self.numeric, *self.categorical, *self.text]

    @property
    def primary_metric(self) -> str:
        """PR-AUC: of the positive class for a binary target, the macro average over classes otherwise."""
        return "pr_auc"

    @property
    def binary(self) -> bool:
        """Whether the target has two classes."""
        return len(self.classes) == 2


def is_text(values: pd.Series) -> bool:
    """Whether a column holds free text: several words at the median, mostly distinct values."""
    strings = values.dropna().astype(str)
    if strings.empty:
        return False
    words = strings.str.split().str.len()
    return (
        words.median() >= TEXT_MIN_MEDIAN_WORDS
        and strings.nunique() >= TEXT_MIN_DISTINCT_SHARE * len(strings)
    )


def _is_flag(values: pd.Series) -> bool:
    present = set(values.dropna().unique().tolist())
    return bool(present) and present <= {0, 1}


def _key_candidates(frame: pd.DataFrame, target: str) -> list[str]:
    """Columns that identify rows: no missing value, every value distinct, whole numbers or short strings."""
    found = []
    for column in frame.columns:
        values = frame[column]
        if column == target or values.isna().any() or not values.is_unique:
            continue
        if pd.api.types.is_integer_dtype(values) or (
            pd.api.types.is_string_dtype(values) and not is_text(values)
        ):
            found.append(column)
    return found


def infer_key(frame: pd.DataFrame, target: str) -> str | None:
    """A column whose values name the rows (an id-like name first), or None when there is none."""
    candidates = _key_candidates(frame, target)
    named = [column for column in candidates if KEY_NAME.search(str(column))]
    return (named or candidates or [None])[0]


def _role(values: pd.Series, rows: int) -> tuple[str, str | None]:
    """The role of a feature column and, for a column with no role, why."""
    present = values.dropna()
    if present.empty:
        return "ignored", "every value is missing"
    if present.nunique() == 1:
        return "ignored", "one value only"
    if pd.api.types.is_bool_dtype(values) or _is_flag(values):
        return "flag", None
    if pd.api.types.is_numeric_dtype(values):
        return "numeric", None
    numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    if numbers.notna().mean() >= NUMBERS_AS_TEXT_SHARE:
        odd = present[numbers.isna()].astype(str).unique().tolist()[:3]
        return (
            "ignored",
            f"numbers written as text with {odd}: convert those to numbers, then list it as numeric",
        )
    if is_text(values):
        return "text", None
    if rows >= 50 and present.nunique() >= ID_LIKE_DISTINCT_SHARE * len(present):
        return "ignored", "a different value on almost every row (an id or a name)"
    return "categorical", None


def infer_profile(frame: pd.DataFrame, target: str) -> TableProfile:
    """Infer key, roles, classes and positive class of a table.

    Args:
        frame: the whole table.
        target: the target column.

    Returns:
        The profile the environment is written from.

    Raises:
        ValueError: the target column is missing or has fewer than two classes.
    """
    if target not in frame:
        raise ValueError(
            f"The table has no target column '{target}'; its columns are {list(frame.columns)}."
        )
    labels = target_labels(frame[target])
    counts = labels.value_counts()
    if len(counts) < 2:
        raise ValueError(
            f"The target column '{target}' has {len(counts)} class(es) {counts.index.tolist()}: a classifier "
            "needs at least two."
        )
    classes = sorted(counts.index.tolist())
    key = infer_key(frame, target)
    roles: dict[str, list[str]] = {"numeric": [], "categorical": [], "text": [], "flag": []}
    ignored = {}
    for column in frame.columns:
        if column in (key, target):
            continue
        role, reason = _role(frame[column], len(frame))
        if role == "ignored":
            ignored[column] = reason
        else:
            roles[role].append(column)
    words_p90 = None
    if roles["text"]:
        words = pd.concat(
            [frame[c].dropna().astype(str).str.split().str.len() for c in roles["text"]]
        )
        words_p90 = int(words.quantile(0.9))
    # The minority class; a tie goes to the later class in sorted order.
    positive = (
        min(reversed(classes), key=lambda label: counts[label]) if len(classes) == 2 else None
    )
    return TableProfile(
        key=key,
        target=target,
        classes=classes,
        class_counts={label: int(counts[label]) for label in classes},
        positive_class=positive,
        numeric=roles["numeric"],
        categorical=[*roles["categorical"], *roles["flag"]],
        text=roles["text"],
        ignored=ignored,
        flags=roles["flag"],
        text_words_p90=words_p90,
    )
