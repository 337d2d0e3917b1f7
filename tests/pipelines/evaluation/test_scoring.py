"""The scoring helpers the evaluation adds to deep_learning_workflow.metrics agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from deep_learning_workflow.bootstrap import (
    bootstrap_scores,
    bootstrap_weight_chunks,
    stratified_bootstrap_weights,
    weighted_scores,
)
from deep_learning_workflow.metrics import (
    DECISION_METRICS,
    GREATER_IS_BETTER,
    classification_summary,
    predict_labels,
    score,
)


def _sample(classes: list[str], rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shares = np.linspace(2, 1, len(classes))
    labels = rng.choice(classes, size=rows, p=shares / shares.sum())
    logits = rng.normal(size=(rows, len(classes))) + (labels[:, None] == np.asarray(classes)) * 1.2
    logits = np.round(logits, 1)  # ties, as a real model's rounded scores have
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


THRESHOLD_FREE = ("pr_auc", "roc_auc", "log_loss", "brier")


@pytest.mark.parametrize("classes", [["No", "Yes"], ["a", "b", "c"]])
def test_weighted_scores_equal_score_on_each_bootstrap_resample(classes):
    labels, probabilities = _sample(classes, 240, seed=len(classes))
    positive = classes[-1]
    weights = stratified_bootstrap_weights(labels, resamples=4, seed=0)
    names = [*GREATER_IS_BETTER, *DECISION_METRICS]
    fast = weighted_scores(names, labels, probabilities, classes, positive, weights, threshold=0.4)
    for copy in range(len(weights)):
        rows = np.repeat(np.arange(len(labels)), weights[copy])
        for name in THRESHOLD_FREE:
            expected = score(name, labels[rows], probabilities[rows], classes, positive)
            assert fast[name][copy] == pytest.approx(expected, abs=1e-10), name
        threshold = 0.4 if len(classes) == 2 else None
        decided = predict_labels(probabilities[rows], classes, positive, threshold)
        assert fast["accuracy"][copy] == pytest.approx(accuracy_score(labels[rows], decided))
        assert fast["f1_macro"][copy] == pytest.approx(
            f1_score(labels[rows], decided, labels=classes, average="macro", zero_division=0)
        )
        if len(classes) == 2:
            expected = precision_recall_fscore_support(
                labels[rows], decided, labels=[positive], zero_division=0
            )
        else:
            expected = precision_recall_fscore_support(
                labels[rows], decided, labels=classes, average="macro", zero_division=0
            )
        for name, value in zip(DECISION_METRICS, expected[:3], strict=True):
            assert fast[name][copy] == pytest.approx(float(np.mean(value)), abs=1e-10), name


def test_accuracy_at_a_threshold_differs_from_argmax_on_a_rare_positive():
    """On a 5%-positive table the most probable class is nearly always the majority; a low threshold decides
    differently, and the score follows the decision."""
    rng = np.random.default_rng(5)
    labels = np.where(rng.random(2000) < 0.05, "Yes", "No")
    positive = np.clip(0.03 + 0.3 * (labels == "Yes") + rng.normal(0, 0.05, 2000), 0, 1)
    probabilities = np.column_stack([1 - positive, positive])
    ones = np.ones((1, 2000))
    at_threshold = weighted_scores(
        ["accuracy"], labels, probabilities, ["No", "Yes"], "Yes", ones, 0.1
    )
    at_argmax = weighted_scores(["accuracy"], labels, probabilities, ["No", "Yes"], "Yes", ones)
    decided = np.where(positive >= 0.1, "Yes", "No")
    assert at_threshold["accuracy"][0] == pytest.approx(accuracy_score(labels, decided))
    assert at_argmax["accuracy"][0] == pytest.approx(np.mean(labels == "No"))
    assert at_threshold["accuracy"][0] != pytest.approx(at_argmax["accuracy"][0])


def test_bootstrap_chunks_cover_every_resample_and_keep_class_counts():
    labels = np.array(["No"] * 300 + ["Yes"] * 100)
    chunks = list(bootstrap_weight_chunks(labels, resamples=25, seed=3, max_cells=4000))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    weights = np.concatenate(chunks)
    assert (weights[:, :300].sum(axis=1) == 300).all()
    assert (weights[:, 300:].sum(axis=1) == 100).all()
    # Chunked resamples are valid resamples: every row drawn between 0 and n times, mean once.
    assert weights.mean() == pytest.approx(1.0)


def test_paired_bootstrap_scores_every_candidate_on_the_same_resamples():
    labels, probabilities = _sample(["No", "Yes"], 300, seed=8)
    candidates = {"a": (probabilities, 0.5), "b": (probabilities, 0.5)}
    resampled = bootstrap_scores(
        ["pr_auc", "accuracy"], labels, candidates, ["No", "Yes"], "Yes", resamples=50, seed=1
    )
    # The same probabilities on the same resamples: the difference is exactly zero on every resample.
    assert np.array_equal(resampled["a"]["pr_auc"], resampled["b"]["pr_auc"])
    assert resampled["a"]["pr_auc"].std() > 0
    weights = stratified_bootstrap_weights(labels, resamples=50, seed=1)
    expected = weighted_scores(["pr_auc"], labels, probabilities, ["No", "Yes"], "Yes", weights)
    assert resampled["a"]["pr_auc"] == pytest.approx(expected["pr_auc"])


def test_unit_weights_give_the_plain_scores():
    labels, probabilities = _sample(["No", "Yes"], 150, seed=3)
    fast = weighted_scores(
        list(GREATER_IS_BETTER), labels, probabilities, ["No", "Yes"], "Yes", np.ones((1, 150))
    )
    for name in GREATER_IS_BETTER:
        # Without a threshold the decision is the most probable class, as in score().
        assert fast[name][0] == pytest.approx(
            score(name, labels, probabilities, ["No", "Yes"], "Yes"), abs=1e-10
        )


def test_stratified_bootstrap_keeps_class_counts_and_is_seeded():
    labels = np.array(["No"] * 30 + ["Yes"] * 10)
    weights = stratified_bootstrap_weights(labels, resamples=50, seed=1)
    assert weights.shape == (50, 40)
    assert (weights[:, :30].sum(axis=1) == 30).all() and (weights[:, 30:].sum(axis=1) == 10).all()
    assert np.array_equal(weights, stratified_bootstrap_weights(labels, resamples=50, seed=1))
    assert not np.array_equal(weights, stratified_bootstrap_weights(labels, resamples=50, seed=2))


def test_predict_labels_applies_the_threshold_to_the_positive_class():
    probabilities = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    assert predict_labels(probabilities, ["No", "Yes"], "Yes", 0.35).tolist() == [
        "No",
        "Yes",
        "Yes",
    ]
    assert predict_labels(probabilities, ["No", "Yes"], "Yes", None).tolist() == ["No", "No", "Yes"]
    assert predict_labels(probabilities, ["No", "Yes"], "No", 0.7).tolist() == ["No", "Yes", "Yes"]


def test_classification_summary_matches_sklearn():
    labels = np.array(["a", "b", "c", "a", "b", "a"])
    decided = np.array(["a", "c", "c", "b", "b", "a"])
    summary = classification_summary(labels, decided, ["a", "b", "c"])
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, decided, labels=["a", "b", "c"], zero_division=0
    )
    assert [summary["precision"][c] for c in "abc"] == pytest.approx(precision.tolist())
    assert [summary["recall"][c] for c in "abc"] == pytest.approx(recall.tolist())
    assert [summary["f1"][c] for c in "abc"] == pytest.approx(f1.tolist())
    assert summary["f1"]["macro"] == pytest.approx(f1.mean())
    assert summary["support"] == {"a": 3, "b": 2, "c": 1}
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["confusion_matrix"]["counts"] == confusion_matrix(labels, decided).tolist()


def test_weighted_scores_reject_unknown_metrics_and_bad_shapes():
    labels, probabilities = _sample(["No", "Yes"], 20, seed=4)
    with pytest.raises(ValueError, match="Unknown metrics"):
        weighted_scores(["auc"], labels, probabilities, ["No", "Yes"], "Yes", np.ones((1, 20)))
    with pytest.raises(ValueError, match="columns"):
        weighted_scores(["brier"], labels, probabilities, ["No", "Yes"], "Yes", np.ones((1, 19)))
