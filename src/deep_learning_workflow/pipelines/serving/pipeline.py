"""The serving pipeline: ``kedro run --pipelines serving``.

Re-score fresh data with the bundle already exported (without exporting it again):
``kedro run --pipelines serving --tags scoring``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .batch_scoring import score_scoring_batch
from .nodes import (
    export_serving_bundle,
    plot_drift_distributions,
    plot_drift_scores,
    report_drift,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Export the bundle, validate and score ``scoring_batch`` in chunks, and report its drift from the training
    data (on a seeded sample of bounded size)."""
    return pipeline(
        [
            node(
                export_serving_bundle,
                inputs=[
                    "model",
                    "train",
                    "decision_threshold",
                    "release_gate",
                    "params:columns",
                    "params:serving",
                    "model_registration",
                ],
                outputs="serving_bundle",
                name="export_serving_bundle",
                tags=["export"],
            ),
            node(
                score_scoring_batch,
                inputs=["scoring_batch", "serving_bundle", "params:serving", "dask_cluster"],
                outputs=["batch_predictions", "validated_scoring_batch"],
                name="score_batch",
                tags=["scoring"],
            ),
            node(
                report_drift,
                inputs=["validated_scoring_batch", "serving_bundle", "params:serving"],
                outputs="drift_report",
                name="report_drift",
                tags=["scoring", "drift"],
            ),
            node(
                plot_drift_scores,
                inputs="drift_report",
                outputs="drift_scores_plot",
                name="plot_drift_scores",
                tags=["scoring", "drift"],
            ),
            node(
                plot_drift_distributions,
                inputs="drift_report",
                outputs="drift_distributions_plot",
                name="plot_drift_distributions",
                tags=["scoring", "drift"],
            ),
        ]
    )
