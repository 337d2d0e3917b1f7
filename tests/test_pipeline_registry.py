"""The registry groups each pipeline's nodes under its name and leaves every dataset and parameter name as it is."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline, node, pipeline

from deep_learning_workflow.pipeline_registry import OPT_IN_PIPELINES, group_nodes


def identity(value):
    return value


def first(value, _settings):
    return value


@pytest.fixture(scope="module")
def built(project_path) -> tuple[dict[str, Pipeline], dict[str, Pipeline]]:
    """The pipelines as their ``create_pipeline`` builds them, and as the registry registers them."""
    from kedro.framework.project import find_pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    from deep_learning_workflow.pipeline_registry import register_pipelines

    return find_pipelines(raise_errors=True), register_pipelines()


def _top_namespace(step) -> str | None:
    return step.namespace.split(".")[0] if step.namespace else None


def test_group_nodes_prefixes_node_names_only():
    own = Pipeline(
        [
            node(identity, "table", "clean", name="clean_table"),
            node(first, ["clean", "params:cleaning"], "report", name="report"),
        ]
    )
    reused = pipeline(
        Pipeline([node(identity, "report", "copy", name="copy_report")]),
        namespace="tuned",
        inputs={"report"},
    )
    grouped = group_nodes("data_processing", own + reused)
    assert {n.name for n in grouped.nodes} == {
        "data_processing.clean_table",
        "data_processing.report",
        "tuned.copy_report",
    }
    assert grouped.datasets() == (own + reused).datasets()
    assert grouped.inputs() == {"table", "params:cleaning"}


def test_group_nodes_leaves_a_pipeline_already_in_a_namespace_as_it_is():
    pruned = pipeline(Pipeline([node(identity, "model", "sparse", name="prune")]), namespace="p")
    assert group_nodes("model_pruning", pruned) is pruned


def test_registered_pipelines_keep_every_dataset_and_parameter_name(built):
    created, registered = built
    for name, pipe in created.items():
        if name == "__default__":
            continue
        assert registered[name].datasets() == pipe.datasets(), name
        assert registered[name].inputs() == pipe.inputs(), name
        assert registered[name].outputs() == pipe.outputs(), name
        assert sorted(n.short_name for n in registered[name].nodes) == sorted(
            n.short_name for n in pipe.nodes
        )


def test_every_node_of_a_pipeline_sits_in_its_group(built):
    created, registered = built
    for name, pipe in created.items():
        if name == "__default__":
            continue
        namespaces = {(n.short_name, tuple(n.outputs)): n.namespace for n in pipe.nodes}
        for step in registered[name].nodes:
            before = namespaces[(step.short_name, tuple(step.outputs))]
            # Nodes that tuning and pruning reuse under `tuned` and `pruned` keep that namespace.
            assert step.namespace == (before or name), (name, step.name)


def test_the_default_view_folds_into_one_group_per_default_pipeline(built):
    _, registered = built
    default_pipelines = set(registered) - {"__default__", *OPT_IN_PIPELINES}
    assert {_top_namespace(n) for n in registered["__default__"].nodes} == default_pipelines
    assert {"data_acquisition", "data_processing", "splitting", "modelling", "evaluation"} <= (
        default_pipelines
    )


@pytest.mark.slow
def test_kedro_run_selects_a_group_and_a_node_by_their_namespaced_names(project_copy):
    from tests.conftest import run_kedro

    acquired = project_copy / "data" / "02_intermediate" / "acquired_table.parquet"
    clean = project_copy / "data" / "03_primary" / "clean_table.parquet"

    result = run_kedro(project_copy, "run", "--env", "test", "--namespaces", "data_acquisition")
    assert result.returncode == 0, result.stderr[-3000:]
    assert acquired.is_file() and not clean.exists()

    result = run_kedro(
        project_copy, "run", "--env", "test", "--nodes", "data_processing.clean_acquired_table"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert clean.is_file()
    assert not (project_copy / "data" / "08_reporting" / "eda_summary.json").exists()

    # The name without its pipeline is refused, and Kedro names the node it may mean.
    result = run_kedro(project_copy, "run", "--env", "test", "--nodes", "clean_acquired_table")
    assert result.returncode != 0
    assert "data_processing.clean_acquired_table" in result.stdout + result.stderr
