"""The test split is read once: by the final evaluation node, after the threshold and the release gate."""

from __future__ import annotations

from collections.abc import Mapping

from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline, node

from deep_learning_workflow.pipelines.evaluation import create_pipeline
from deep_learning_workflow.pipelines.evaluation.pipeline import TEST_EVALUATION_NODE

TEST_SPLIT = "test"


def _reads_test_split(dataset: str) -> bool:
    # A namespaced copy of a pipeline may read the split under a prefixed name, e.g. "tuned.test".
    return dataset == TEST_SPLIT or dataset.endswith(f".{TEST_SPLIT}")


def _readers(registered: Mapping[str, Pipeline]) -> dict[str, set[str]]:
    """Each node that takes the test split, with the pipelines it is in."""
    readers: dict[str, set[str]] = {}
    for name in registered:
        for step in registered[name].nodes:
            if any(_reads_test_split(dataset) for dataset in step.inputs):
                readers.setdefault(step.name, set()).add(name)
    return readers


def test_the_guard_catches_a_second_reader():
    peek = Pipeline([node(len, "test", "test_rows", name="count_test_rows")])
    namespaced = Pipeline([node(len, "tuned.test", "rows", name="tuned.count_rows")])
    readers = _readers({"evaluation": create_pipeline(), "tuning": peek + namespaced})
    assert set(readers) == {TEST_EVALUATION_NODE, "count_test_rows", "tuned.count_rows"}


def test_only_the_final_evaluation_node_reads_the_test_split(project_path):
    bootstrap_project(project_path)
    readers = _readers(pipelines)
    # The registry puts each pipeline's nodes in a namespace named after it.
    final_name = f"evaluation.{TEST_EVALUATION_NODE}"
    assert set(readers) == {final_name}, readers
    assert "evaluation" in readers[final_name]

    for name in ("modelling", "tuning"):
        if name in pipelines:
            takers = [
                n.name for n in pipelines[name].nodes if any(map(_reads_test_split, n.inputs))
            ]
            assert takers == [], f"pipeline '{name}' reads the test split in {takers}"

    final = next(n for n in pipelines["evaluation"].nodes if n.name == final_name)
    # Its inputs make it run after model selection: the gate's verdict and the chosen threshold.
    assert {"release_gate", "decision_threshold"} <= set(final.inputs)
    assert TEST_SPLIT in final.inputs
