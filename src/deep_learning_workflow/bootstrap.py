"""Bootstrap resamples of scores, in bounded memory and a few passes over the rows whatever the table's size.

A resample is a row of weights: how often each record is drawn. Every candidate is scored on the same resamples
(a paired bootstrap), so the difference of two candidates' scores gets an interval too. Resamples are drawn in
chunks of at most :data:`MAX_CELLS` weights, so 150,000 rows and 1,000 resamples never hold 150 million weights at
once; each candidate's sort order and decisions are computed once, not once per resample.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from deep_learning_workflow.metrics import DECISION_METRICS, GREATER_IS_BETTER, positive_index

# Weights held in memory at once (resamples per chunk × rows): 4 million float64 weights are 32 MB.
MAX_CELLS = 4_000_000


def _draw(groups: list[np.ndarray], rows: int, count: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.zeros((count, rows), dtype="float64")
    for members in groups:
        size = len(members)
        draws = rng.integers(0, size, size=(count, size))
        flat = (np.arange(count)[:, None] * size + draws).ravel()
        weights[:, members] = np.bincount(flat, minlength=count * size).reshape(count, size)
    return weights


def bootstrap_weight_chunks(
    labels: Sequence[str], resamples: int, seed: int, max_cells: int = MAX_CELLS
) -> Iterator[np.ndarray]:
    """Stratified bootstrap resamples, a chunk at a time: how often each row is drawn, within its class.

    Keeping each class's count fixed keeps every resample scorable (ROC-AUC needs every class) at the data's class
    ratio. The same ``seed`` and ``max_cells`` give the same resamples.

    Yields:
        Arrays of shape (resamples in the chunk, rows); each row sums to the number of rows.
    """
    labels = np.asarray(labels).astype(str)
    if resamples < 1:
        raise ValueError(f"The bootstrap needs at least one resample, got {resamples}.")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    size = max(1, max_cells // max(len(labels), 1))
    for start in range(0, resamples, size):
        yield _draw(groups, len(labels), min(size, resamples - start), rng)


def stratified_bootstrap_weights(labels: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """Every resample of :func:`bootstrap_weight_chunks` at once (for small tables and tests).

    Returns:
        Integer array of shape (resamples, rows); each row sums to the number of rows.
    """
    chunks = bootstrap_weight_chunks(labels, resamples, seed, max_cells=resamples * len(labels))
    return np.concatenate(list(chunks)).astype("int64")


@dataclass
class _Candidate:
    """What every resample of one candidate's scores needs, computed once.

    ``rows`` holds one column per per-row quantity whose weighted sum a score needs (right decisions, true and
    false positives and negatives of each class, log loss, Brier, extra values), so one matrix product with the
    weights gives them all.
    """

    columns: list[int]
    classes: int
    binary: bool
    rows: np.ndarray
    names: dict[str, int]
    probabilities: np.ndarray = field(repr=False)
    onehot: np.ndarray = field(repr=False)
    extra: tuple[str, ...] = ()
    curves: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )

    def curve(self, column: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positive and negative rows in descending score order, and how many of each reach every distinct
        score (highest first)."""
        if column not in self.curves:
            scores = self.probabilities[:, column]
            order = np.argsort(scores, kind="mergesort")[::-1]
            ends = np.r_[np.flatnonzero(np.diff(scores[order])), len(order) - 1]
            positive = self.onehot[order, column]
            reached_positives = np.cumsum(positive)[ends]
            reached_negatives = (ends + 1) - reached_positives
            self.curves[column] = (
                order[positive],
                order[~positive],
                reached_positives,
                reached_negatives,
            )
        return self.curves[column]


def _prepare(
    labels: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
    threshold: float | None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> _Candidate:
    labels = np.asarray(labels).astype(str)
    probabilities = np.asarray(probabilities, dtype="float64")
    classes = [str(c) for c in classes]
    if probabilities.shape != (len(labels), len(classes)):
        raise ValueError(
            f"Expected probabilities of shape ({len(labels)}, {len(classes)}), got {probabilities.shape}."
        )
    onehot = labels[:, None] == np.asarray(classes)[None, :]
    truth = onehot.argmax(axis=1)
    binary = len(classes) == 2
    decided = probabilities.argmax(axis=1)
    columns = list(range(len(classes)))
    if binary:
        columns = [positive_index(classes, positive_class)]
        if threshold is not None:
            decided = np.where(
                probabilities[:, columns[0]] >= threshold, columns[0], 1 - columns[0]
            )
    eps = np.finfo("float64").eps
    chosen = np.clip(probabilities[np.arange(len(labels)), truth], max(1e-15, eps), 1 - eps)
    squared = (probabilities - onehot) ** 2
    values = {
        "right": decided == truth,
        "log_loss": -np.log(chosen),
        "brier": squared[:, columns[0]] if binary else squared.sum(axis=1),
    }
    for c in range(len(classes)):
        actual, flagged = truth == c, decided == c
        values |= {
            f"tp{c}": actual & flagged,
            f"fp{c}": ~actual & flagged,
            f"fn{c}": actual & ~flagged,
        }
    values |= dict(extra or {})
    names = {name: position for position, name in enumerate(values)}
    rows = np.column_stack([np.asarray(v, dtype="float64") for v in values.values()])
    return _Candidate(
        columns, len(classes), binary, rows, names, probabilities, onehot, tuple(extra or {})
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _decision_scores(sums: np.ndarray, names: dict[str, int], c: int) -> tuple[np.ndarray, ...]:
    true_positive = sums[:, names[f"tp{c}"]]
    false_positive = sums[:, names[f"fp{c}"]]
    false_negative = sums[:, names[f"fn{c}"]]
    precision = _ratio(true_positive, true_positive + false_positive)
    recall = _ratio(true_positive, true_positive + false_negative)
    f1 = _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative)
    return precision, recall, f1


def _curve_counts(
    candidate: _Candidate, column: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted true and false positives at each distinct score, highest first (as scikit-learn's curves)."""
    positives, negatives, reached_positives, reached_negatives = candidate.curve(column)
    cumulative_positives = np.cumsum(weights[:, positives], axis=1)
    cumulative_negatives = np.cumsum(weights[:, negatives], axis=1)
    zeros = np.zeros((len(weights), 1))
    true_positives = np.hstack([zeros, cumulative_positives])[:, reached_positives]
    false_positives = np.hstack([zeros, cumulative_negatives])[:, reached_negatives]
    return true_positives, false_positives


def _roc_auc(true_positives: np.ndarray, false_positives: np.ndarray) -> np.ndarray:
    zeros = np.zeros((len(true_positives), 1))
    tpr = np.hstack([zeros, true_positives / true_positives[:, -1:]])
    fpr = np.hstack([zeros, false_positives / false_positives[:, -1:]])
    return np.trapezoid(tpr, fpr, axis=1)


def _average_precision(true_positives: np.ndarray, false_positives: np.ndarray) -> np.ndarray:
    precision = _ratio(true_positives, true_positives + false_positives)
    recall = true_positives / true_positives[:, -1:]
    gained = np.diff(np.hstack([np.zeros((len(recall), 1)), recall]), axis=1)
    return np.sum(gained * precision, axis=1)


def _score(
    candidate: _Candidate, names: Sequence[str], weights: np.ndarray
) -> dict[str, np.ndarray]:
    sums = weights @ candidate.rows
    means = sums / weights.sum(axis=1)[:, None]
    index = candidate.names
    results: dict[str, np.ndarray] = {}
    curves = {}
    for name in names:
        if name in ("accuracy", "log_loss", "brier"):
            results[name] = means[:, index["right" if name == "accuracy" else name]]
        elif name == "f1_macro":
            parts = [_decision_scores(sums, index, c)[2] for c in range(candidate.classes)]
            results[name] = np.mean(parts, axis=0)
        elif name in ("roc_auc", "pr_auc"):
            curve = _roc_auc if name == "roc_auc" else _average_precision
            values = []
            for column in candidate.columns:
                if column not in curves:
                    curves[column] = _curve_counts(candidate, column, weights)
                values.append(curve(*curves[column]))
            results[name] = np.mean(values, axis=0)
        else:
            parts = [_decision_scores(sums, index, c) for c in candidate.columns]
            position = DECISION_METRICS.index(name)
            results[name] = np.mean([part[position] for part in parts], axis=0)
    return results | {name: means[:, index[name]] for name in candidate.extra}


def _check_names(names: Sequence[str]) -> None:
    unknown = [
        name for name in names if name not in GREATER_IS_BETTER and name not in DECISION_METRICS
    ]
    if unknown:
        raise ValueError(
            f"Unknown metrics {unknown}; choose from {sorted([*GREATER_IS_BETTER, *DECISION_METRICS])}."
        )


def weighted_scores(
    names: Sequence[str],
    labels: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
    weights: np.ndarray,
    threshold: float | None = None,
) -> dict[str, np.ndarray]:
    """Scores of many weighted copies of the same rows at once, e.g. every bootstrap resample.

    With one row of weights equal to the times each row is drawn, each threshold-free score equals
    :func:`~deep_learning_workflow.metrics.score` on the resampled rows; accuracy, macro F1 and
    :data:`~deep_learning_workflow.metrics.DECISION_METRICS` are those of the decisions at ``threshold`` (binary
    targets; the most probable class otherwise or without a threshold). The test suite checks both.

    Args:
        names: keys of ``GREATER_IS_BETTER`` and ``DECISION_METRICS``.
        labels: true class of each row.
        probabilities: array of shape (rows, classes).
        classes: the class of each probability column.
        positive_class: for binary targets, the class scores are taken on.
        weights: array of shape (copies, rows) of non-negative weights; every class needs weight in every copy.
        threshold: decision threshold of a binary target.

    Returns:
        Metric name to an array of shape (copies,).
    """
    _check_names(names)
    weights = np.atleast_2d(np.asarray(weights, dtype="float64"))
    if weights.shape[1] != len(labels):
        raise ValueError(
            f"Expected weights with {len(labels)} columns (one per row), got shape {weights.shape}."
        )
    candidate = _prepare(labels, probabilities, classes, positive_class, threshold)
    return _score(candidate, names, weights)


def _subsample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A stratified sample of ``size`` rows without replacement, in the table's order."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        share = max(2, round(size * len(members) / len(labels)))
        chosen.append(rng.choice(members, size=min(share, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def describe_bootstrap(rows: int, resamples: int, max_rows: int) -> dict:
    """How :func:`bootstrap_scores` resamples ``rows`` rows: its method, resamples and resample size."""
    if rows <= max_rows:
        return {"method": "stratified percentile bootstrap", "resamples": resamples, "rows": rows}
    return {
        "method": "stratified percentile bootstrap of a stratified sample, rescaled (m-out-of-n)",
        "resamples": resamples,
        "rows": rows,
        "resampled_rows": max_rows,
        "note": (
            f"Each resample draws {max_rows:,} of the {rows:,} rows; the spread of the resampled scores is "
            f"scaled by sqrt({max_rows}/{rows}) around the scores on every row, which holds for scores that "
            "are averages or rank statistics (all of them here) and keeps the cost independent of the rows."
        ),
    }


def bootstrap_scores(
    names: Sequence[str],
    labels: Sequence[str],
    candidates: Mapping[str, tuple[np.ndarray, float | None]],
    classes: Sequence[str],
    positive_class: str | None,
    resamples: int,
    seed: int,
    row_values: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    max_rows: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Every candidate's scores on the same stratified bootstrap resamples (paired); beyond ``max_rows`` rows, the
    m-out-of-n bootstrap of a stratified sample (see :func:`describe_bootstrap`).

    Args:
        names: the metrics to resample (see :func:`weighted_scores`).
        labels: true class of each row.
        candidates: name to (probabilities, decision threshold).
        classes: the class of each probability column.
        positive_class: for binary targets, the class scores are taken on.
        resamples: how many resamples.
        seed: seed of the resamples.
        row_values: per candidate, per-row values (e.g. each decision's cost) whose resampled mean is returned.
        max_rows: the most rows a resample draws from (None: every row).

    Returns:
        Candidate name to metric name to an array of shape (resamples,).
    """
    _check_names(names)
    labels = np.asarray(labels).astype(str)
    extra = row_values or {}

    def prepare(rows: np.ndarray | slice) -> dict[str, _Candidate]:
        return {
            name: _prepare(
                labels[rows],
                np.asarray(probabilities)[rows],
                classes,
                positive_class,
                threshold,
                {key: np.asarray(values)[rows] for key, values in extra.get(name, {}).items()},
            )
            for name, (probabilities, threshold) in candidates.items()
        }

    rows: np.ndarray | slice = slice(None)
    if max_rows is not None and len(labels) > max_rows:
        rows = _subsample(labels, max_rows, np.random.default_rng([seed, len(labels)]))
    prepared = prepare(rows)
    resampled = _resampled_scores(prepared, names, labels[rows], resamples, seed)
    if isinstance(rows, slice):
        return resampled
    everything = prepare(slice(None))
    return _rescaled_to_all_rows(resampled, prepared, everything, names, (len(rows), len(labels)))


def _resampled_scores(
    prepared: Mapping[str, _Candidate],
    names: Sequence[str],
    labels: np.ndarray,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Every candidate's scores on the same resamples, drawn in chunks to bound the memory."""
    parts: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in prepared}
    for weights in bootstrap_weight_chunks(labels, resamples, seed):
        for name, candidate in prepared.items():
            for key, values in _score(candidate, names, weights).items():
                parts[name].setdefault(key, []).append(values)
    return {
        name: {key: np.concatenate(values) for key, values in metrics.items()}
        for name, metrics in parts.items()
    }


def _rescaled_to_all_rows(
    resampled: Mapping[str, Mapping[str, np.ndarray]],
    sample: Mapping[str, _Candidate],
    everything: Mapping[str, _Candidate],
    names: Sequence[str],
    sizes: tuple[int, int],
) -> dict[str, dict[str, np.ndarray]]:
    """m-out-of-n: deviations from the sample's scores, scaled by sqrt(m / n), around the scores of every row.

    ``sizes`` is (m, n): the rows of the sample and of the whole split.
    """
    sampled_rows, rows = sizes
    scale = float(np.sqrt(sampled_rows / rows))
    result = {}
    for name, candidate in sample.items():
        on_all = _score(everything[name], names, np.ones((1, rows)))
        on_sample = _score(candidate, names, np.ones((1, sampled_rows)))
        result[name] = {
            key: on_all[key][0] + scale * (values - on_sample[key][0])
            for key, values in resampled[name].items()
        }
    return result


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of resampled values (percentile bootstrap)."""
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
