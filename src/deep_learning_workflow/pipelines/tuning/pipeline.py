"""The tuning pipeline: Optuna study -> best parameters -> the modelling and evaluation pipelines under ``tuned``.

Several workers share one study: start ``kedro run --pipelines tuning --tags tuning_study`` on each (same
``tuning_storage`` credentials, a PostgreSQL URL across machines), then ``kedro run --pipelines tuning`` once to
judge the best trials over seeds and train and evaluate the tuned model (the study is already full, so it runs no
new trial).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .data import gather_tuning_data
from .nodes import (
    merge_best_params,
    record_tuning_selection,
    retrain_top_trials,
    run_study,
    select_best_params,
    summarise_trials,
)
from .plots import (
    plot_intermediate_values,
    plot_optimisation_history,
    plot_parallel_coordinates,
    plot_parameter_importances,
    plot_pareto_front,
)

NAMESPACE = "tuned"
TUNED_MODELLING_PARAMS = "tuned_modelling_params"
MODELLING_PARAMS = "params:modelling"
TUNING_DATA = "tuning_data"


def create_search_pipeline() -> Pipeline:
    """The study, its report and plots, the judgement over seeds and the best parameters (validation only)."""
    data = [TUNING_DATA, "params:modelling", "params:problem"]
    return Pipeline(
        [
            node(
                gather_tuning_data,
                inputs=["train", "train_balanced", "val", "params:columns"],
                outputs=TUNING_DATA,
                name="gather_tuning_data",
                tags="tuning_study",
            ),
            node(
                run_study,
                inputs=["tuning_storage", *data, "params:tuning", "params:seed"],
                outputs="tuning_study",
                name="run_study",
                tags="tuning_study",
            ),
            node(
                summarise_trials,
                inputs="tuning_study",
                outputs="tuning_trials",
                name="summarise_trials",
            ),
            node(
                plot_optimisation_history,
                inputs="tuning_study",
                outputs="tuning_optimisation_history_plot",
                name="plot_optimisation_history",
            ),
            node(
                plot_parameter_importances,
                inputs=["tuning_study", "params:seed"],
                outputs="tuning_parameter_importances_plot",
                name="plot_parameter_importances",
            ),
            node(
                plot_parallel_coordinates,
                inputs="tuning_study",
                outputs="tuning_parallel_coordinates_plot",
                name="plot_parallel_coordinates",
            ),
            node(
                plot_intermediate_values,
                inputs="tuning_study",
                outputs="tuning_intermediate_values_plot",
                name="plot_intermediate_values",
            ),
            node(
                retrain_top_trials,
                inputs=["tuning_study", *data, "params:tuning", "params:seed"],
                outputs="tuning_candidates",
                name="retrain_top_trials",
            ),
            node(
                select_best_params,
                inputs=["tuning_candidates", "params:problem", "params:tuning"],
                outputs="best_params",
                name="select_best_params",
            ),
            node(
                plot_pareto_front,
                inputs=["tuning_study", "best_params", "params:tuning"],
                outputs="tuning_pareto_front_plot",
                name="plot_pareto_front",
            ),
            node(
                merge_best_params,
                inputs=["best_params", "params:modelling"],
                outputs=TUNED_MODELLING_PARAMS,
                name="merge_best_params",
            ),
        ],
        tags="tuning",
    )


def _parameters(pipe: Pipeline) -> set[str]:
    return {name for name in pipe.inputs() if name.startswith("params:")}


def _feed_parameter(pipe: Pipeline, parameter: str, dataset: str) -> Pipeline:
    """``pipe`` with the nodes that take ``parameter`` taking ``dataset`` (a node output) instead.

    Kedro's modular pipelines map a parameter only onto another parameter, and the tuned modelling parameters are
    computed by a node; so the parameter input is replaced node by node (with ``Node._copy``, as Kedro's own
    namespacing does).
    """

    def swap(inputs):
        if isinstance(inputs, str):
            return dataset if inputs == parameter else inputs
        if isinstance(inputs, list):
            return [swap(name) for name in inputs]
        if isinstance(inputs, dict):
            return {key: swap(name) for key, name in inputs.items()}
        return inputs

    return Pipeline(
        [n._copy(inputs=swap(n._inputs)) if parameter in n.inputs else n for n in pipe.nodes]
    )


def create_tuned_pipeline() -> Pipeline:
    """The modelling and evaluation pipelines reused under the ``tuned`` namespace, fed the tuned parameters.

    Their outputs become ``tuned.<name>`` (declared in catalog_tuning.yml); their inputs from earlier pipelines
    (``train``, ``val``, ``test``, ...) and their parameters stay shared, except ``params:modelling``, which is
    replaced by ``tuned_modelling_params``. Evaluation is reused up to the release gate: the test split stays with
    the one final evaluation of the default run, so a tuned model is judged on it only once its parameters are
    adopted in parameters_modelling.yml.
    """
    from deep_learning_workflow.pipelines.evaluation.pipeline import (
        create_validation_pipeline as create_evaluation,
    )
    from deep_learning_workflow.pipelines.modelling import create_pipeline as create_modelling

    modelling = create_modelling()
    evaluation = create_evaluation()
    tuned_modelling = pipeline(
        modelling,
        namespace=NAMESPACE,
        inputs={name for name in modelling.inputs() if not name.startswith("params:")},
        parameters=_parameters(modelling),
    )
    tuned_evaluation = pipeline(
        evaluation,
        namespace=NAMESPACE,
        inputs={
            name
            for name in evaluation.inputs()
            if not name.startswith("params:") and name not in modelling.all_outputs()
        },
        parameters=_parameters(evaluation),
    )
    return _feed_parameter(
        _record_selection(tuned_modelling) + tuned_evaluation,
        MODELLING_PARAMS,
        TUNED_MODELLING_PARAMS,
    )


def _record_selection(tuned_modelling: Pipeline) -> Pipeline:
    """The tuned modelling nodes, with the tuned model's metadata recording that it was selected on validation
    (:func:`record_tuning_selection`) before the evaluation and the release gate read it."""
    metadata = f"{NAMESPACE}.model_metadata"
    untagged = f"{NAMESPACE}.model_metadata_before_selection"
    nodes = [
        n._copy(outputs=untagged) if n.outputs == [metadata] else n for n in tuned_modelling.nodes
    ]
    nodes.append(
        node(
            record_tuning_selection,
            inputs=[untagged, "best_params"],
            outputs=metadata,
            name="record_tuning_selection",
            namespace=NAMESPACE,
        )
    )
    return Pipeline(nodes)


def create_pipeline(**kwargs) -> Pipeline:
    """Search, then the tuned model through the modelling and evaluation nodes."""
    return create_search_pipeline() + create_tuned_pipeline()
