"""The model pruning pipeline: prune the trained model, tabulate the trade-off, judge the pruned model.

Run it after a default run has saved the model: ``kedro run --pipelines model_pruning``. The pruned model goes
through the evaluation pipeline's validation part under the ``pruned`` namespace (metrics, threshold, scenarios,
release gate), as the tuned model does under ``tuned``; it never reads the test split.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import prune_model, tabulate_pruning_tradeoff
from .plots import plot_pruning_tradeoff
from .setup import prepare_pruning

NAMESPACE = "pruned"
SETUP = f"{NAMESPACE}.pruning_setup"
PRUNED_MODEL = f"{NAMESPACE}.model"
REPORT = f"{NAMESPACE}.pruning_report"
TRADEOFF = f"{NAMESPACE}.tradeoff"
TRADEOFF_TABLE = f"{NAMESPACE}.tradeoff_table"
TRADEOFF_PLOT = f"{NAMESPACE}.tradeoff_plot"


def create_pruning_pipeline() -> Pipeline:
    """The pruned model at the target sparsity, the trade-off table over sparsities and its plot.

    The nodes sit in the ``pruned`` namespace with the evaluation they feed, so kedro-viz draws the whole step as
    one collapsible group.
    """
    return Pipeline(
        [
            node(
                prepare_pruning,
                inputs=[
                    "model_metadata",
                    "train",
                    "train_balanced",
                    "val",
                    "params:pruning",
                    "params:problem",
                    "params:seed",
                ],
                outputs=SETUP,
                name="prepare_pruning",
                namespace=NAMESPACE,
            ),
            node(
                prune_model,
                inputs=["model", SETUP],
                outputs=[PRUNED_MODEL, REPORT],
                name="prune_model",
                namespace=NAMESPACE,
            ),
            node(
                tabulate_pruning_tradeoff,
                inputs=["model", PRUNED_MODEL, REPORT, SETUP],
                outputs=[TRADEOFF, TRADEOFF_TABLE],
                name="tabulate_pruning_tradeoff",
                namespace=NAMESPACE,
            ),
            node(
                plot_pruning_tradeoff,
                inputs=TRADEOFF,
                outputs=TRADEOFF_PLOT,
                name="plot_pruning_tradeoff",
                namespace=NAMESPACE,
            ),
        ],
        tags="pruning",
    )


def create_pruned_evaluation_pipeline() -> Pipeline:
    """The evaluation pipeline's validation part under the ``pruned`` namespace, judging ``pruned.model``.

    Only the model is the pruned one: the metadata and baselines are the trained model's (pruning changes neither
    the inputs, the classes nor what the model must beat), and the validation split, release scenarios and
    released model's record are shared. Outputs become ``pruned.<name>`` (declared in catalog_model_pruning.yml).
    """
    from deep_learning_workflow.pipelines.evaluation.pipeline import create_validation_pipeline

    evaluation = create_validation_pipeline()
    return pipeline(
        evaluation,
        namespace=NAMESPACE,
        inputs={
            name
            for name in evaluation.inputs()
            if name != "model" and not name.startswith("params:")
        },
        parameters={name for name in evaluation.inputs() if name.startswith("params:")},
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Prune and tabulate, then the pruned model through evaluation up to the release gate."""
    return create_pruning_pipeline() + create_pruned_evaluation_pipeline()
