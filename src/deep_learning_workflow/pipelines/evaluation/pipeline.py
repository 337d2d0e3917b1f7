"""The evaluation pipeline.

Validation decides (metrics, threshold, release gate); the test split is read once, by ``evaluate_test_split``,
which takes the gate's verdict and the threshold as inputs so that it runs after every choice is made.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from .gains import plot_cumulative_gains
from .importance import compute_permutation_importance, plot_permutation_importance
from .nodes import (
    choose_decision_threshold,
    collect_tracking_records,
    evaluate_test_split,
    evaluate_validation,
    predict_validation,
    resolve_evaluation_setup,
)
from .plots import (
    plot_calibration_curves,
    plot_confusion_matrix,
    plot_precision_recall_curves,
    plot_roc_curves,
)
from .release import (
    compare_with_baselines,
    evaluate_release_gate,
    record_release,
    run_release_scenarios,
)
from .report import render_model_report

TEST_EVALUATION_NODE = "evaluate_test_split"


def create_validation_pipeline() -> Pipeline:
    """Everything decided or drawn on the validation split: metrics, threshold, scenarios, release gate, the
    release record and the plots.

    Tuning reuses this part under a namespace; it never reads the test split.
    """
    return Pipeline(
        [
            node(
                resolve_evaluation_setup,
                inputs=["val", "model_metadata", "params:columns"],
                outputs="evaluation_setup",
                name="resolve_evaluation_setup",
            ),
            node(
                predict_validation,
                inputs=["model", "baseline_models", "val", "evaluation_setup"],
                outputs="validation_predictions",
                name="predict_validation",
            ),
            node(
                choose_decision_threshold,
                inputs=[
                    "validation_predictions",
                    "params:evaluation",
                    "params:problem",
                    "params:seed",
                ],
                outputs="decision_threshold",
                name="choose_decision_threshold",
            ),
            node(
                evaluate_validation,
                inputs=[
                    "validation_predictions",
                    "decision_threshold",
                    "params:evaluation",
                    "params:seed",
                ],
                outputs=["validation_metrics", "baseline_metrics"],
                name="evaluate_validation",
            ),
            node(
                run_release_scenarios,
                inputs=["model", "release_scenarios", "decision_threshold", "evaluation_setup"],
                outputs="scenario_results",
                name="run_release_scenarios",
            ),
            node(
                compare_with_baselines,
                inputs=[
                    "validation_predictions",
                    "decision_threshold",
                    "baseline_metrics",
                    "params:evaluation",
                    "params:problem",
                    "params:seed",
                ],
                outputs="baseline_comparisons",
                name="compare_with_baselines",
            ),
            node(
                evaluate_release_gate,
                inputs=[
                    "validation_metrics",
                    "baseline_comparisons",
                    "decision_threshold",
                    "scenario_results",
                    "previous_release",
                    "seed_report",
                    "params:evaluation",
                    "params:problem",
                ],
                outputs="release_gate",
                name="evaluate_release_gate",
            ),
            node(
                record_release,
                inputs=[
                    "release_gate",
                    "validation_metrics",
                    "decision_threshold",
                    "previous_release",
                ],
                outputs="release_record",
                name="record_release",
            ),
            node(
                plot_confusion_matrix,
                inputs="validation_metrics",
                outputs="confusion_matrix_plot",
                name="plot_confusion_matrix",
                tags="reporting",
            ),
            node(
                plot_roc_curves,
                inputs="validation_predictions",
                outputs="roc_curve_plot",
                name="plot_roc_curves",
                tags="reporting",
            ),
            node(
                plot_precision_recall_curves,
                inputs=["validation_predictions", "decision_threshold"],
                outputs="precision_recall_plot",
                name="plot_precision_recall_curves",
                tags="reporting",
            ),
            node(
                plot_calibration_curves,
                inputs=["validation_predictions", "params:evaluation"],
                outputs="calibration_plot",
                name="plot_calibration_curves",
                tags="reporting",
            ),
        ],
        tags="validation",
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The validation part, then the one read of the test split, the report and the tracking records."""
    return create_validation_pipeline() + Pipeline(
        [
            node(
                evaluate_test_split,
                inputs=[
                    "model",
                    "baseline_models",
                    "test",
                    "evaluation_setup",
                    "decision_threshold",
                    "baseline_metrics",
                    "release_gate",
                    "params:evaluation",
                    "params:seed",
                ],
                outputs="test_metrics",
                name=TEST_EVALUATION_NODE,
                tags="test_split",
            ),
            node(
                plot_cumulative_gains,
                inputs="validation_predictions",
                outputs="cumulative_gains_plot",
                name="plot_cumulative_gains",
                tags="reporting",
            ),
            node(
                compute_permutation_importance,
                inputs=["model", "val", "evaluation_setup", "params:problem", "params:seed"],
                outputs="permutation_importance",
                name="compute_permutation_importance",
                tags="reporting",
            ),
            node(
                plot_permutation_importance,
                inputs="permutation_importance",
                outputs="permutation_importance_plot",
                name="plot_permutation_importance",
                tags="reporting",
            ),
            node(
                render_model_report,
                inputs=[
                    "params:problem",
                    "params:evaluation",
                    "split_report",
                    "validation_metrics",
                    "baseline_metrics",
                    "decision_threshold",
                    "release_gate",
                    "test_metrics",
                    "confusion_matrix_plot",
                    "roc_curve_plot",
                    "precision_recall_plot",
                    "calibration_plot",
                    "cumulative_gains_plot",
                    "permutation_importance_plot",
                ],
                outputs="model_report",
                name="render_model_report",
                tags="reporting",
            ),
            node(
                collect_tracking_records,
                inputs=[
                    "validation_metrics",
                    "baseline_metrics",
                    "decision_threshold",
                    "release_gate",
                    "test_metrics",
                    "model_metadata",
                ],
                outputs=["evaluation_tracking_metrics", "evaluation_tracking_tags"],
                name="collect_tracking_records",
                tags="tracking",
            ),
        ]
    )
