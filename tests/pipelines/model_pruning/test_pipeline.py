"""Wiring: the pruning nodes and the evaluation's validation part under ``pruned``, registered as
``model_pruning`` (not in the default run), its outputs declared in the catalog, the test split never read."""

from __future__ import annotations

import warnings

from kedro.config import OmegaConfigLoader

from deep_learning_workflow.pipelines.evaluation.pipeline import create_validation_pipeline
from deep_learning_workflow.pipelines.model_pruning import create_pipeline
from deep_learning_workflow.pipelines.model_pruning.pipeline import NAMESPACE, PRUNED_MODEL


def test_everything_sits_in_the_pruned_namespace_and_evaluation_judges_the_pruned_model():
    pipeline = create_pipeline()
    assert {node.namespace for node in pipeline.nodes} == {NAMESPACE}
    names = {node.name for node in pipeline.nodes}
    validation = {f"{NAMESPACE}.{node.name}" for node in create_validation_pipeline().nodes}
    assert validation <= names
    assert names - validation == {
        "pruned.prepare_pruning",
        "pruned.prune_model",
        "pruned.tabulate_pruning_tradeoff",
        "pruned.plot_pruning_tradeoff",
    }
    by_name = {node.name: node for node in pipeline.nodes}
    assert PRUNED_MODEL in by_name["pruned.predict_validation"].inputs
    assert PRUNED_MODEL in by_name["pruned.run_release_scenarios"].inputs
    assert "model" in by_name["pruned.prune_model"].inputs
    # The trained model's metadata, baselines and the released model's record are the shared ones.
    assert {"model_metadata", "baseline_models", "previous_release", "val"} <= pipeline.inputs()
    assert "pruned.release_gate" in pipeline.all_outputs()


def test_the_pipeline_never_reads_the_test_split():
    pipeline = create_pipeline()
    readers = [
        node.name
        for node in pipeline.nodes
        if any(name == "test" or name.endswith(".test") for name in node.inputs)
    ]
    assert readers == []
    assert "test" not in pipeline.inputs()


def test_it_is_registered_but_not_part_of_the_default_run(project_path):
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    assert "model_pruning" in pipelines
    default = {node.name for node in pipelines["__default__"].nodes}
    assert not {node.name for node in pipelines["model_pruning"].nodes} & default


def test_persisted_outputs_are_declared_with_a_layer(project_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(
            str(project_path / "conf"), base_env="base", default_run_env="base"
        )
        catalog = dict(loader["catalog"])
    for name in (
        PRUNED_MODEL,
        "pruned.pruning_report",
        "pruned.tradeoff",
        "pruned.tradeoff_table",
        "pruned.tradeoff_plot",
        "pruned.release_gate",
        "pruned.validation_metrics",
        "pruned.decision_threshold",
        "pruned.release_record",
    ):
        assert name in catalog, name
        assert catalog[name]["metadata"]["kedro-viz"]["layer"], name
    assert catalog[PRUNED_MODEL]["versioned"] is True
    assert catalog[PRUNED_MODEL]["filepath"].startswith("data/06_models/")
    assert catalog["pruned.tradeoff_table"]["dataset"]["filepath"].startswith("data/08_reporting/")
