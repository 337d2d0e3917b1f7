"""``params:pruning``: a sparsity outside [0, 1) is refused before anything is trained, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline

from deep_learning_workflow.hooks import ValidateParametersHook
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.model_pruning import create_pipeline
from deep_learning_workflow.pipelines.model_pruning.schema import PruningParams
from deep_learning_workflow.pipelines.model_pruning.setup import prepare_pruning

from .conftest import PROBLEM, PRUNING

PROJECT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("env", ["base", "test"])
def test_the_configured_parameters_are_valid(env):
    text = (PROJECT / "conf" / env / "parameters_model_pruning.yml").read_text()
    settings = parse(PruningParams, yaml.safe_load(text)["pruning"], "pruning")
    assert 0.0 in settings.sparsities


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"target_sparsity": 1.0}, "pruning.target_sparsity"),
        ({"target_sparsity": -0.1}, "pruning.target_sparsity"),
        ({"sparsities": [0.0, 0.5, 1.2]}, "pruning.sparsities"),
        ({"sparsities": [0.5, 0.5]}, "pruning.sparsities"),
        ({"epochs": 0}, "pruning.epochs"),
        ({"learning_rate": 0}, "pruning.learning_rate"),
    ],
)
def test_bad_values_are_refused_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as error:
        validate_parameters({"pruning": {**PRUNING, **override}})
    if "sparsit" in key and "0.5, 0.5" not in str(override):
        assert "[0, 1)" in str(error.value)


def test_the_hook_refuses_a_bad_sparsity_before_the_first_node():
    catalog = DataCatalog(
        {
            "params:pruning": MemoryDataset({**PRUNING, "target_sparsity": 1.0}),
            "params:problem": MemoryDataset(PROBLEM),
            "params:seed": MemoryDataset(42),
        }
    )
    pipeline: Pipeline = create_pipeline().only_nodes("pruned.prepare_pruning")
    with pytest.raises(ValueError, match=r"pruning\.target_sparsity"):
        ValidateParametersHook().before_pipeline_run({}, pipeline, catalog)


def test_the_node_refuses_a_bad_sparsity_before_touching_the_model():
    # No model, metadata or data: the first node parses the parameters, so nothing is loaded or trained.
    with pytest.raises(ValueError, match=r"pruning\.target_sparsity"):
        prepare_pruning({}, None, None, None, {**PRUNING, "target_sparsity": 1.5}, PROBLEM, 42)
