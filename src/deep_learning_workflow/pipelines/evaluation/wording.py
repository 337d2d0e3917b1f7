"""What the report calls each metric, and the release gate's verdict in plain words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

METRIC_NAMES = {
    "pr_auc": "PR-AUC (average precision)",
    "roc_auc": "ROC-AUC",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "accuracy": "Accuracy (at the decision rule)",
    "f1_macro": "Macro F1 (at the decision rule)",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "expected_cost": "Expected cost per record",
}
METRIC_MEANINGS = {
    "pr_auc": "how well the model ranks the positive class above the rest, weighted towards the top of the list "
    "(1 is perfect; a random ranking scores the positive share)",
    "roc_auc": "the chance that a random positive record is ranked above a random negative one (0.5 is chance)",
    "log_loss": "how confident and right the probabilities are (lower is better)",
    "brier": "the mean squared error of the probabilities (lower is better)",
    "accuracy": "the share of records decided right at the decision rule",
    "f1_macro": "the mean over classes of the balance between precision and recall, at the decision rule",
}


def _failed_check_words(check: Mapping[str, Any]) -> str:
    """A failed gate check in plain words, e.g. "it does not beat gradient boosting on validation PR-AUC (0.635 vs
    0.649)"; a check this function does not know is quoted with its detail."""
    name, detail = str(check["check"]), str(check.get("detail", ""))
    lead = re.match(
        r"(\w+) model ([-\d.]+), (\w+) ([-\d.]+) .*?lead ([-+\d.]+), (\d+%) interval \[([-+\d.]+), ([-+\d.]+)\]; "
        r"rule (\w+)",
        detail,
    )
    if lead is not None:
        metric, model, baseline, reference, gain, level, low, high, rule = lead.groups()
        metric_name = METRIC_NAMES.get(metric, metric).split(" (")[0]
        wanted = {"superior": "better than", "non_inferior": "at least level with"}.get(
            rule, "level with"
        )
        return (
            f"it is not shown to be {wanted} {baseline.replace('_', ' ')} on validation {metric_name} "
            f"({float(model):.3f} vs {float(reference):.3f}; lead {float(gain):+.3f}, {level} interval "
            f"[{float(low):+.3f}, {float(high):+.3f}])"
        )
    numbers = re.match(r"(\w+) ([-\d.]+) must be ([<>]=) ([-\d.]+)", detail)
    if numbers is None:
        return f"the check '{name}' failed ({detail})" if detail else f"the check '{name}' failed"
    metric, value, _, limit = numbers.groups()
    metric_name = METRIC_NAMES.get(metric, metric).split(" (")[0]
    figures = f"({float(value):.3f} vs {float(limit):.3f})"
    if name.startswith("beats baseline "):
        baseline = name.removeprefix("beats baseline ").replace("_", " ")
        return f"it does not beat {baseline} on validation {metric_name} {figures}"
    if name.startswith("success "):
        return f"it misses the {metric_name} agreed as success {figures}"
    if name.startswith("floor "):
        return f"its validation {metric_name} is below the floor {figures}"
    if name.startswith("ceiling "):
        return f"its validation {metric_name} is above the ceiling {figures}"
    if name == "previous release":
        return f"it falls below the model released before on validation {metric_name} {figures}"
    return f"the check '{name}' failed {figures}"


def verdict_sentence(release_gate: Mapping[str, Any]) -> str:
    """The release gate's verdict in plain words, naming what failed with its figures.

    e.g. "The model was rejected: it does not beat gradient boosting on validation PR-AUC (0.635 vs 0.649)."
    """
    checks = release_gate.get("checks") or []
    if release_gate["passed"]:
        return f"The model was released: it passed all {len(checks)} checks of the release gate."
    failed = [check for check in checks if not check.get("passed")]
    reasons = [_failed_check_words(check) for check in failed] or [
        f"the check '{name}' failed" for name in release_gate.get("failed_checks", [])
    ]
    return "The model was rejected: " + "; ".join(reasons) + "."
