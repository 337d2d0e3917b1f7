"""The typed-parameter registry and the hook that validates parameters before any node runs."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes, target_labels
from deep_learning_workflow.hooks import ValidateParametersHook
from deep_learning_workflow.parameters import parse, validate_parameters

COLUMNS = {"key": "id", "target": "label", "numeric": ["age"], "categorical": ["city"], "text": []}


def test_parse_returns_typed_object():
    roles = parse(ColumnRoles, COLUMNS, "columns")
    assert roles.numeric == ["age"]
    assert roles.features == ["age", "city"]


def test_parse_names_every_bad_key():
    with pytest.raises(ValueError) as error:
        parse(ColumnRoles, {"target": 3, "numeric": "age", "colour": "red"}, "columns")
    message = str(error.value)
    for key in ("columns.target", "columns.numeric", "columns.colour"):
        assert key in message


def test_validate_parameters_lists_problems_of_all_blocks():
    with pytest.raises(ValueError) as error:
        validate_parameters(
            {
                "seed": -1,
                "columns": {"key": "id"},
                "problem": {"statement": "x", "primary_metric": "auc"},
            }
        )
    message = str(error.value)
    assert "seed" in message and "columns.target" in message and "problem.primary_metric" in message


def test_validate_parameters_finds_schema_of_namespaced_block():
    with pytest.raises(ValueError, match=r"tuned\.columns\.target"):
        validate_parameters({"tuned.columns": {"key": "id"}})


def test_validate_parameters_skips_blocks_without_schema():
    validate_parameters({"some_user_block": {"anything": 1}})


def _first(*values):
    return values[0]


def test_hook_stops_run_before_first_node():
    pipeline = Pipeline([node(_first, "params:seed", "out")])
    catalog = DataCatalog({"params:seed": MemoryDataset(-5)})
    with pytest.raises(ValueError, match="seed"):
        ValidateParametersHook().before_pipeline_run({}, pipeline, catalog)


def test_hook_accepts_valid_parameters():
    pipeline = Pipeline([node(_first, ["params:seed", "params:columns"], "out")])
    catalog = DataCatalog(
        {"params:seed": MemoryDataset(7), "params:columns": MemoryDataset(COLUMNS)}
    )
    ValidateParametersHook().before_pipeline_run({}, pipeline, catalog)


def test_resolve_roles_infers_numeric_and_categorical():
    frame = pd.DataFrame(
        {"id": [1, 2], "label": ["a", "b"], "age": [3.0, 4.0], "city": ["x", "y"], "n": [1, 2]}
    )
    roles = resolve_roles(frame, ColumnRoles(key="id", target="label"), "tiny")
    assert roles.numeric == ["age", "n"]
    assert roles.categorical == ["city"]


def test_resolve_roles_names_missing_column_and_dataset():
    frame = pd.DataFrame({"id": [1], "label": ["a"]})
    with pytest.raises(ValueError, match=r"Dataset 'tiny'.*columns.numeric names 'age'"):
        resolve_roles(frame, ColumnRoles(key="id", target="label", numeric=["age"]), "tiny")


def test_target_classes_are_sorted_strings():
    assert target_classes(pd.Series([1, 0, 1, None])) == ["0", "1"]
    assert target_classes(pd.Series(["No", "Yes", "No"])) == ["No", "Yes"]


def test_target_labels_read_integral_floats_as_integers():
    assert target_labels(pd.Series([1.0, 0.0, None])).tolist() == ["1", "0", None]
