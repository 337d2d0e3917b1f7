"""The decision threshold picked on many bootstrap resamples of the validation rows at once.

A rule's pick on one validation split is noisy where its criterion is flat (F1 near its best): a few rows move it
far. The median of the picks over resamples of the rows is steadier. The scores are sorted once; a resample is a
row of weights (how often each record is drawn), so its counts of flagged positives and negatives at every
candidate threshold are cumulative sums of weights along that one order, for a chunk of resamples at a time.
Beyond :data:`MAX_ROWS` validation rows the resamples are drawn from a stratified sample of that many rows, so the
cost stops growing with the table; the picks then spread somewhat wider than on every row, which leaves their
median about where it was.
"""

from __future__ import annotations

import numpy as np

from deep_learning_workflow.bootstrap import bootstrap_weight_chunks
from deep_learning_workflow.pipelines.evaluation.schema import ThresholdParameters
from deep_learning_workflow.problem import Costs

# Rows the resamples are drawn from, at most.
MAX_ROWS = 20_000
# Weights per chunk of resamples: each chunk holds several arrays of this size (1 million float64 are 8 MB).
MAX_CELLS = 1_000_000
# Share of resamples below and above the reported spread of the picks.
SPREAD = (0.1, 0.9)


def _stratified_sample(truth: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` rows without replacement, each class at its share of the table."""
    chosen = []
    for members in (np.flatnonzero(truth), np.flatnonzero(~truth)):
        share = max(2, round(size * len(members) / len(truth)))
        chosen.append(rng.choice(members, size=min(share, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def _sorted_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows by descending score, the distinct scores (descending) and the last sorted index of each."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    return order, ordered[ends], ends


def _counts(
    weights: np.ndarray, truth: np.ndarray, order: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Weighted flagged positives, flagged negatives and the weight of each distinct score, per resample."""
    ordered = weights[:, order]
    positive = truth[order]
    flagged_positive = np.cumsum(ordered * positive, axis=1)[:, ends]
    flagged_negative = np.cumsum(ordered * ~positive, axis=1)[:, ends]
    flagged = flagged_positive + flagged_negative
    group = np.diff(flagged, axis=1, prepend=0.0)
    return flagged_positive, flagged_negative, group


def _last(mask: np.ndarray) -> np.ndarray:
    """Index of the last True of each row (the lowest threshold), -1 for none."""
    reversed_first = np.argmax(mask[:, ::-1], axis=1)
    return np.where(mask.any(axis=1), mask.shape[1] - 1 - reversed_first, -1)


def _curve_picks(
    tp: np.ndarray, fp: np.ndarray, present: np.ndarray, rule: ThresholdParameters
) -> np.ndarray:
    """Index of each resample's pick under max_f1, target_recall or target_precision (as the single pick).

    As the precision-recall curve, candidates are the drawn scores down to the first that reaches full recall.
    """
    positives = tp[:, -1:]
    reached_before = np.concatenate([np.zeros_like(tp[:, :1]), tp[:, :-1]], axis=1) >= positives
    valid = present & ~reached_before
    recall = tp / positives
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    if rule.rule == "max_f1":
        f1 = np.where(valid, 2 * tp / (tp + fp + positives), -1.0)
        # Of equal F1, the lowest threshold, as the single pick.
        return _last(f1 == f1.max(axis=1, keepdims=True))
    if rule.rule == "target_recall":
        # The highest threshold that still reaches the target.
        return np.argmax(valid & (recall >= rule.target), axis=1)
    reaching = _last(valid & (precision >= rule.target))
    best = np.where(valid, precision, -1.0)
    fallback = _last(best == best.max(axis=1, keepdims=True))
    return np.where(reaching >= 0, reaching, fallback)


def _cost_picks(
    tp: np.ndarray, fp: np.ndarray, present: np.ndarray, costs: Costs, flag_none: bool
) -> np.ndarray:
    """Index of each resample's lowest-cost threshold; with ``flag_none``, index 0 is the threshold 1.0."""
    positives = tp[:, -1:]
    cost = costs.false_positive * fp + costs.false_negative * (positives - tp)
    cost = np.where(present, cost, np.inf)
    if flag_none:
        cost = np.concatenate([costs.false_negative * positives, cost], axis=1)
    lowest = cost.min(axis=1, keepdims=True)
    # Of thresholds that cost the same, the highest: the first in descending order.
    return np.argmax(np.isclose(cost, lowest, rtol=1e-12, atol=1e-12), axis=1)


def bootstrap_picks(
    truth: np.ndarray,
    scores: np.ndarray,
    rule: ThresholdParameters,
    costs: Costs | None,
    seed: int,
) -> np.ndarray:
    """The rule's threshold on each of ``rule.bootstrap`` stratified bootstrap resamples of the rows.

    Args:
        truth: whether each validation record is of the positive class.
        scores: each record's probability of the positive class.
        rule: the threshold rule and its number of resamples.
        costs: the costs of ``min_expected_cost`` (None for the other rules).
        seed: seeds the resamples (``params:seed``).

    Returns:
        One threshold per resample.
    """
    if len(truth) > MAX_ROWS:
        rows = _stratified_sample(truth, MAX_ROWS, np.random.default_rng(seed))
        truth, scores = truth[rows], scores[rows]
    order, distinct, ends = _sorted_groups(scores)
    flag_none = rule.rule == "min_expected_cost" and distinct[0] < 1.0
    candidates = np.append(1.0, distinct) if flag_none else distinct
    picks = []
    for weights in bootstrap_weight_chunks(truth, rule.bootstrap, seed, MAX_CELLS):
        tp, fp, group = _counts(weights, truth, order, ends)
        present = group > 0
        if rule.rule == "min_expected_cost":
            index = _cost_picks(tp, fp, present, costs, flag_none)
        else:
            index = _curve_picks(tp, fp, present, rule)
        picks.append(candidates[index])
    return np.concatenate(picks)


def summarise_picks(picks: np.ndarray, single: float) -> dict:
    """The bagged threshold (median of the picks) and how far the picks spread."""
    low, high = np.quantile(picks, SPREAD)
    return {
        "threshold": float(np.median(picks)),
        "spread": {
            "resamples": len(picks),
            "low": float(low),
            "high": float(high),
            "quantiles": list(SPREAD),
            "single_pick": single,
        },
    }
