"""The modelling pipeline: preprocessing adapted on train inside one Keras model, baselines, sanity check, seeds."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from .nodes import (
    check_modelling_inputs,
    check_overfit_one_batch,
    check_transfer_sources,
    describe_model,
    diagnose_training,
    fit_baseline_models,
    plot_training_history,
    train_seed_models,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Check inputs and transfer sources, fit baselines, run the sanity check, train over seeds, then describe and
    diagnose the model."""
    return Pipeline(
        [
            node(
                check_modelling_inputs,
                inputs=["train", "train_balanced", "val", "params:columns", "params:modelling"],
                outputs="modelling_roles",
                name="check_modelling_inputs",
            ),
            node(
                fit_baseline_models,
                inputs=["train_balanced", "modelling_roles", "params:modelling", "params:seed"],
                outputs="baseline_models",
                name="fit_baseline_models",
            ),
            node(
                check_overfit_one_batch,
                inputs=["train", "modelling_roles", "params:modelling", "params:seed"],
                outputs="sanity_check_report",
                name="check_overfit_one_batch",
            ),
            node(
                check_transfer_sources,
                inputs=[
                    "train",
                    "modelling_roles",
                    "warm_start_model",
                    "pretrained_word_vectors",
                    "params:modelling",
                ],
                outputs=["transfer_sources", "transfer_report"],
                name="check_transfer_sources",
            ),
            node(
                train_seed_models,
                inputs=[
                    "train_split",
                    "train_balanced_split",
                    "val",
                    "modelling_roles",
                    "params:modelling",
                    "params:problem",
                    "params:seed",
                    "sanity_check_report",
                    "transfer_sources",
                ],
                outputs=["model", "training_history", "seed_report"],
                name="train_seed_models",
            ),
            node(
                describe_model,
                inputs=[
                    "train",
                    "modelling_roles",
                    "seed_report",
                    "params:modelling",
                    "params:seed",
                ],
                outputs="model_metadata",
                name="describe_model",
            ),
            node(
                plot_training_history,
                inputs="training_history",
                outputs="training_history_plot",
                name="plot_training_history",
            ),
            node(
                diagnose_training,
                inputs=["training_history", "params:modelling"],
                outputs="training_diagnosis",
                name="diagnose_training",
            ),
        ]
    )
