"""The text of each file of ``conf/<env>/`` written by ``kedro dlw new-table``, every key with its reason."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .inference import TableProfile
from .writing import ATOMIC, block, entry

HEADER = "# Written by `kedro dlw new-table` from {source}; edit any value, then `kedro dlw check --env {env}`.\n"
# Rarer positives than this get a note on the threshold rule.
RARE_POSITIVE_SHARE = 0.1


@dataclass(frozen=True)
class Paths:
    """Where the environment's files are, relative to the project (as the catalog writes them)."""

    env: str
    source: str
    table: str
    scoring_batch: str
    scenarios: str
    held_back: bool
    delimiter: str | None
    scoring_rows: int


def globals_text(paths: Paths) -> str:
    return HEADER.format(**vars(paths)) + entry(
        "data_root",
        f"data/{paths.env}",
        "every output of this environment goes under this folder, never under another environment's",
    )


def _dataset(name: str, kind: str, filepath: str, comment: str, layer: str = "raw") -> str:
    comment = "\n".join(f"# {line}" for line in textwrap.wrap(comment, 115))
    return (
        f"{comment}\n{name}:\n  type: {ATOMIC}.{kind}\n  filepath: {filepath}\n"
        f"  metadata:\n    kedro-viz:\n      layer: {layer}\n"
    )


def catalog_text(paths: Paths) -> str:
    scoring = (
        f"{paths.scoring_rows} rows of {paths.source} held back from training, without the target"
        if paths.held_back
        else f"the first {paths.scoring_rows} rows of {paths.source} without the target (the table is too small to "
        "hold rows back: they are also trained on)"
    )
    return "\n".join(
        [
            HEADER.format(**vars(paths)).rstrip("\n"),
            _dataset(
                "raw_customers",
                "ParquetDataset",
                paths.table,
                f"The table: {paths.source} as read, minus the rows of scoring_batch; written again by new-table. "
                f"To train on the file itself, point filepath at it (a CSV: {ATOMIC}.CSVDataset"
                + (
                    f" with load_args: {{sep: {paths.delimiter!r}}}"
                    if paths.delimiter not in (None, ",")
                    else ""
                )
                + ").",
            ),
            _dataset(
                "scoring_batch",
                "ParquetDataset",
                paths.scoring_batch,
                f"New records the serving pipeline scores: {scoring}. Point it at your fresh records.",
                layer="model_input",
            ),
            _dataset(
                "release_scenarios",
                "YAMLDataset",
                paths.scenarios,
                "Records the model must decide right before release: a STARTER from real rows, edit it.",
                layer="model_input",
            ),
        ]
    )


def _share(profile: TableProfile, label: str) -> float:
    return profile.class_counts[label] / sum(profile.class_counts.values())


def parameters_text(paths: Paths, profile: TableProfile) -> str:
    if profile.key is None:
        key_reason = (
            "no column has a distinct value on every row: rows are told apart by their position"
        )
    else:
        key_reason = "every value is distinct and present; null if the rows have no key"
    if profile.binary:
        positive_reason = (
            f"the rarer class ({_share(profile, profile.positive_class):.1%} of rows): its probability is "
            "thresholded, PR-AUC and F1 are about it"
        )
    else:
        positive_reason = f"{len(profile.classes)} classes: the decision is the most probable class"
    metric_reason = (
        "PR-AUC of the positive class: informative when it is rare"
        if profile.binary
        else "PR-AUC averaged over the classes (macro), each class counting the same"
    )
    return "".join(
        [
            HEADER.format(**vars(paths)),
            block(
                "columns",
                "roles of the table's columns; a column in no list never reaches the model",
            ),
            entry("key", profile.key, key_reason, 2),
            entry("target", profile.target, f"classes {profile.classes}", 2),
            entry("positive_class", profile.positive_class, positive_reason, 2),
            entry("numeric", profile.numeric, "number columns (0/1 flags are categorical)", 2),
            entry(
                "categorical",
                profile.categorical,
                "short strings and 0/1 flags: one-hot encoded inside the model",
                2,
            ),
            entry("text", profile.text, "strings of several words, mostly distinct: tokenised", 2),
            *(f"  # no role: {column!r}: {reason}\n" for column, reason in profile.ignored.items()),
            block("problem", "what the model is for; agree it with the people who will use it"),
            entry(
                "statement",
                f"Predict {profile.target} of a record of {paths.source}.",
                "say who acts on the prediction and how",
                2,
            ),
            entry("primary_metric", profile.primary_metric, metric_reason, 2),
            entry(
                "success",
                None,
                "no agreed value yet; e.g. {metric: pr_auc, minimum: 0.5} makes the gate require it",
                2,
            ),
            entry(
                "costs",
                None,
                "binary targets: {false_positive: 1, false_negative: 5, unit: EUR} lets the threshold minimise cost",
                2,
            ),
        ]
    )


def acquisition_text(paths: Paths) -> str:
    return "".join(
        [
            HEADER.format(**vars(paths)),
            block("data_acquisition", "the table alone; no Telco source is joined"),
            block("sources", "other sources joined on columns.key: off", 2),
            block("database", "the Telco billing database", 4),
            entry("enabled", False, "not part of this table", 6),
            block("crowd", "annotator votes", 4),
            entry("enabled", False, "none for this table", 6),
            entry(
                "dtypes",
                None,
                "columns and dtypes as read; params:columns are checked (present, numbers where numeric)",
                2,
            ),
            block("sensitive", "de-identification before anything is written past data/01_raw", 2),
            entry("drop", [], "e.g. names, addresses", 4),
            entry("hash", [], "e.g. a customer number (salt in conf/local/parameters.yml)", 4),
        ]
    )


def processing_text(paths: Paths, profile: TableProfile) -> str:
    rule = {"column": profile.target, "allowed": profile.classes, "action": "drop_row"}
    return "".join(
        [
            HEADER.format(**vars(paths)),
            block("data_processing", "stateless cleaning"),
            block(
                "rules",
                "the target's classes; add bounds of your numeric columns (ge, gt, le, lt)",
                2,
            ),
            f"    - {entry('column', rule['column'], 'a row whose target is another value is dropped').strip()}\n",
            entry("allowed", rule["allowed"], "the classes found in the table", 6),
            entry("action", rule["action"], "counted in the cleaning report", 6),
        ]
    )


def evaluation_text(paths: Paths, profile: TableProfile, base: Mapping[str, Any]) -> str:
    gate = base["evaluation"]["release_gate"]
    if profile.binary and _share(profile, profile.positive_class) < RARE_POSITIVE_SHARE:
        rule_reason = "best F1 of a rare positive class; target_recall (with target) if missing one costs more"
    else:
        rule_reason = (
            "best F1 of the positive class (no costs); multi-class: always the most probable class"
        )
    return "".join(
        [
            HEADER.format(**vars(paths)),
            block("evaluation", "the release gate and the report"),
            block("threshold", "decision threshold of a binary target, chosen on validation", 2),
            entry("rule", "max_f1", rule_reason, 4),
            entry("target", None, "for target_recall / target_precision", 4),
            block("release_gate", "besides beating every baseline on the primary metric", 2),
            block("floors", "minimums; null removes a Telco limit; e.g. roc_auc: 0.7", 4),
            *(entry(name, None, "a Telco limit", 6) for name in gate.get("floors") or {}),
            block("ceilings", "maximums of log_loss / brier; null removes a Telco limit", 4),
            *(entry(name, None, "a Telco limit", 6) for name in gate.get("ceilings") or {}),
            block("report", "data/<env>/08_reporting/model_report.html", 2),
            entry("title", f"{profile.target} model report", "the page's title", 4),
            entry(
                "limitations",
                [
                    f"Validation and test are random samples of {paths.source}: the figures do not show how the "
                    "model ages."
                ],
                "what a reader must know before trusting the figures",
                4,
            ),
        ]
    )


def tuning_text(paths: Paths) -> str:
    return "".join(
        [
            HEADER.format(**vars(paths)),
            block("tuning", "the Optuna study of this table"),
            entry("study_name", paths.env, "one study per question; change it with the data", 2),
        ]
    )


def modelling_text(paths: Paths, profile: TableProfile) -> str | None:
    if not profile.text:
        return None
    length = min(256, max(16, profile.text_words_p90 or 0))
    return "".join(
        [
            HEADER.format(**vars(paths)),
            block("modelling", "the rest is conf/base's"),
            block("text", "the text columns", 2),
            entry(
                "output_sequence_length",
                length,
                "words kept per text: 90% are this long or shorter",
                4,
            ),
        ]
    )
