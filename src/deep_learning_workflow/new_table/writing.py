"""Writing ``conf/<env>/`` for a new table: every key the run needs, each with why it has its value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deep_learning_workflow.columns import target_labels
from deep_learning_workflow.environments import TABLE_SPECIFIC_PARAMETERS

from .inference import TableProfile

# New records the serving pipeline scores: rows held back from training, this share of the table at most ...
HOLD_OUT_SHARE = 0.05
HOLD_OUT_MAX = 500
# ... and only from tables this large; a smaller table keeps every row for training.
HOLD_OUT_MIN_TABLE = 200
SCORING_ROWS_SMALL_TABLE = 20
FLOW_ITEMS = 8
# Rows the logistic regression that picks the starter scenarios is fitted on, at most.
CHOOSER_ROWS = 20000
ATOMIC = "deep_learning_workflow.datasets.atomic"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9)
    return text.removesuffix("\n...\n").strip()


def entry(key: str, value: Any, comment: str, indent: int = 0) -> str:
    """One YAML key with its value and a one-line comment (a long list goes below the key, one item a line)."""
    pad = " " * indent
    if isinstance(value, list) and len(value) > FLOW_ITEMS:
        items = "".join(f"{pad}  - {_flow(item)}\n" for item in value)
        return f"{pad}{_flow(key)}:  # {comment}\n{items}"
    return f"{pad}{_flow(key)}: {_flow(value)}  # {comment}\n"


def block(key: str, comment: str, indent: int = 0) -> str:
    """A YAML map key whose entries follow, with a one-line comment."""
    return f"{' ' * indent}{key}:  # {comment}\n"


def _python(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def split_scoring_rows(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """The training table and the new records to score (target dropped later), and whether those are held back.

    A table of at least :data:`HOLD_OUT_MIN_TABLE` rows gives :data:`HOLD_OUT_SHARE` of its rows (at most
    :data:`HOLD_OUT_MAX`), drawn with ``seed``, to the scoring batch and trains on the rest; a smaller one trains on
    every row and scores its first rows again.
    """
    if len(frame) < HOLD_OUT_MIN_TABLE:
        return frame, frame.head(SCORING_ROWS_SMALL_TABLE), False
    held = frame.sample(n=min(HOLD_OUT_MAX, int(len(frame) * HOLD_OUT_SHARE)), random_state=seed)
    return frame.drop(index=held.index), held.sort_index(), True


def typical_record(frame: pd.DataFrame, profile: TableProfile) -> dict[str, Any]:
    """A made-up ordinary record: the median of each numeric column, the most frequent value of the others."""
    record = {}
    for column in profile.features:
        values = frame[column].dropna()
        if values.empty:
            record[column] = None
        elif column in profile.numeric:
            record[column] = _python(values.median())
        else:
            record[column] = _python(values.mode().iloc[0])
    return record


def clearest_rows(
    frame: pd.DataFrame, profile: TableProfile, modelling: Any, seed: int
) -> dict[str, dict[str, Any]]:
    """Per class, the real row a logistic regression fitted on the table finds most clearly of that class.

    Args:
        frame: the training table.
        profile: the inferred roles.
        modelling: ``params:modelling`` (the baseline's settings).
        seed: random state.

    Returns:
        Class label to the row's feature values.
    """
    from deep_learning_workflow.columns import ColumnRoles
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    roles = ColumnRoles(
        key=profile.key,
        target=profile.target,
        positive_class=profile.positive_class,
        numeric=profile.numeric,
        categorical=profile.categorical,
        text=profile.text,
    )
    if len(frame) > CHOOSER_ROWS:
        frame = frame.sample(n=CHOOSER_ROWS, random_state=seed)
    labels = target_labels(frame[profile.target])
    known = frame[labels.notna()]
    labels = labels[labels.notna()].astype(str)
    model = build_baseline("logistic_regression", roles, modelling, seed)
    model.fit(known[profile.features], labels)
    probabilities = pd.DataFrame(
        model.predict_proba(known[profile.features]), columns=model.classes_, index=known.index
    )
    rows = {}
    for label in profile.classes:
        index = probabilities.loc[labels == label, label].idxmax()
        rows[label] = {column: _python(known.at[index, column]) for column in profile.features}
    return rows


def scenarios_text(
    source: str, defaults: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]]
) -> str:
    """The release-scenarios starter: one real record per class with its class as the expected decision."""
    header = (
        f"# STARTER written by `kedro dlw new-table` from real rows of {source}: edit it before relying on it.\n"
        "# Release scenarios are records a domain expert signs with the decision the model must take; a failed one\n"
        "# makes the release gate reject the model. Each scenario below is the row of its class that a logistic\n"
        "# regression found clearest; replace them with cases you know, and add `steps` + `expect` checks of a\n"
        "# direction (format: data/01_raw/release_scenarios.yml). `defaults` is a typical record (medians, most\n"
        "# frequent values) that each scenario's `record` overrides.\n"
    )
    body = {
        "defaults": dict(defaults),
        "scenarios": [
            {
                "name": f"clearest_{label}_row_is_{label}",
                "record": dict(record),
                "expect_label": label,
            }
            for label, record in rows.items()
        ],
    }
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)


def check_table_specific_keys_written(texts: Mapping[str, str]) -> None:
    """Fail loudly if the writer forgot a key the run would otherwise take from the Telco demo."""
    written = {}
    for text in texts.values():
        loaded = yaml.safe_load(text) or {}
        for key, value in loaded.items():
            written[key] = value
    for dotted in TABLE_SPECIFIC_PARAMETERS:
        node: Any = written
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise RuntimeError(f"new-table did not write params:{dotted}")
            node = node[part]


def write_files(files: Mapping[Path, str | bytes]) -> None:
    """Write every file, each through a temporary name renamed into place."""
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        if isinstance(content, bytes):
            partial.write_bytes(content)
        else:
            partial.write_text(content, encoding="utf-8")
        partial.replace(path)
