"""The typed-parameter registry and the hook that validates parameters before any node runs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
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


# --- Every block has a schema, every key is written out, and the run checks both before its first node. ---


def _environments(project_path) -> list[str]:
    """conf/base and every environment beside it that a run can name (conf/local is each user's own)."""
    conf = project_path / "conf"
    return [
        "base",
        *sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("base", "local")),
    ]


def _parameters(project_path, env: str) -> dict:
    """The parameters a run with ``--env env`` sees: the environment soft-merged over conf/base."""
    import warnings

    from kedro.config import OmegaConfigLoader

    from deep_learning_workflow.settings import CONFIG_LOADER_ARGS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(
            str(project_path / "conf"),
            base_env="base",
            default_run_env=env,
            merge_strategy=CONFIG_LOADER_ARGS["merge_strategy"],
        )
        return dict(loader["parameters"])


@pytest.fixture(scope="module")
def registered_schemas(project_path):
    """Imports every pipeline package, whose modules register their parameter schemas, as ``kedro run`` does."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    assert pipelines["__default__"].nodes  # find_pipelines imports every pipeline package


def test_every_top_level_parameter_block_has_a_schema(project_path, registered_schemas):
    from deep_learning_workflow.parameters import schema_for

    for env in _environments(project_path):
        unchecked = sorted(key for key in _parameters(project_path, env) if schema_for(key) is None)
        assert not unchecked, (
            f"conf/{env}: parameter blocks without a schema: {unchecked}. Register a pydantic model for each "
            "with deep_learning_workflow.parameters.register(key), so a bad value stops the run before any node."
        )


def test_every_environment_writes_out_every_key_with_valid_values(project_path, registered_schemas):
    for env in _environments(project_path):
        validate_parameters(_parameters(project_path, env), complete=True)


@pytest.fixture(scope="module")
def modelling(project_path) -> dict:
    import yaml

    text = (project_path / "conf" / "base" / "parameters_modelling.yml").read_text()
    return yaml.safe_load(text)["modelling"]


def _without(block: dict, dotted: str) -> dict:
    import copy

    block = copy.deepcopy(block)
    *parents, last = dotted.split(".")
    inner = block
    for parent in parents:
        inner = inner[parent]
    del inner[last]
    return block


@pytest.mark.parametrize("key", ["epochs", "early_stopping.patience", "baselines"])
def test_a_left_out_key_stops_a_complete_validation_naming_it(modelling, key):
    from deep_learning_workflow.models.schema import ModellingParams

    partial = _without(modelling, key)
    parse(ModellingParams, partial, "modelling")  # a node's own parse still fills in the default
    with pytest.raises(ValueError, match=rf"modelling\.{re.escape(key)}: missing"):
        validate_parameters({"modelling": partial}, complete=True)


def test_keys_whose_default_is_null_may_be_left_out():
    validate_parameters({"columns": {"key": "id", "target": "label", "text": []}}, complete=True)


def test_the_hook_stops_a_run_whose_configuration_lost_a_key(modelling):
    pipeline = Pipeline([node(_first, "params:modelling", "out")])
    catalog = DataCatalog({"params:modelling": MemoryDataset(_without(modelling, "epochs"))})
    with pytest.raises(ValueError, match=r"modelling\.epochs: missing"):
        ValidateParametersHook().before_pipeline_run({}, pipeline, catalog)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"seed": True}, "seed"),
        ({"modelling": {"epochs": True}}, "modelling.epochs"),  # YAML `epochs: yes`
        (
            {"modelling": {"early_stopping": {"patience": False}}},
            "modelling.early_stopping.patience",
        ),
        ({"splitting": {"test_size": True}}, "splitting.test_size"),
    ],
)
def test_a_boolean_is_not_taken_for_a_number(values, key):
    import deep_learning_workflow.models.schema  # noqa: F401 - registers params:modelling
    import deep_learning_workflow.pipelines.splitting.nodes  # noqa: F401 - registers params:splitting

    with pytest.raises(
        ValueError, match=rf"{re.escape(key)}: Input should be a number, not a boolean"
    ):
        validate_parameters(values)


def test_booleans_stay_valid_where_a_boolean_belongs():
    from deep_learning_workflow.models.schema import ModellingParams

    typed = parse(ModellingParams, {"batch_norm": True, "early_stopping": {"enabled": False}}, "m")
    assert typed.batch_norm is True and typed.early_stopping.enabled is False
    with pytest.raises(ValueError, match=r"m\.epochs: Input should be a number"):
        parse(ModellingParams, {"epochs": True}, "m")


class _Database(MemoryDataset):
    """A dataset whose connection check fails with ``problem`` (or passes when it is None)."""

    def __init__(self, problem: str | None = None) -> None:
        super().__init__(pd.DataFrame({"x": [1]}))
        self.problem = problem
        self.checked = 0

    def check_connection(self) -> None:
        self.checked += 1
        if self.problem:
            raise DatasetError(self.problem)


def test_connections_are_checked_before_the_first_node_and_listed_together():
    from deep_learning_workflow.hooks import CheckConnectionsHook

    good, bad, worse = _Database(), _Database("cannot reach a:***@host"), _Database("refused")
    pipeline = Pipeline(
        [
            node(_first, ["source", "storage", "other", "plain"], "out"),
            node(_first, "out", "unused"),
        ]
    )
    catalog = DataCatalog(
        {"source": bad, "storage": worse, "other": good, "plain": MemoryDataset(1), "out": good}
    )
    with pytest.raises(DatasetError) as raised:
        CheckConnectionsHook().before_pipeline_run({}, pipeline, catalog)
    assert str(raised.value) == "source: cannot reach a:***@host\nstorage: refused"
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert good.checked == 1  # "out" is made by the run, not read from a database

    catalog = DataCatalog(
        {"source": good, "storage": good, "other": good, "plain": MemoryDataset(1)}
    )
    CheckConnectionsHook().before_pipeline_run({}, pipeline, catalog)


def test_the_project_validates_parameters_before_contacting_any_database():
    from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks

    from deep_learning_workflow.settings import HOOKS

    manager = _create_hook_manager()
    _register_hooks(manager, HOOKS)
    database = _Database("unreachable")
    pipeline = Pipeline([node(_first, ["params:seed", "source"], "out")])
    catalog = DataCatalog({"params:seed": MemoryDataset(-1), "source": database})
    with pytest.raises(ValueError, match="seed"):
        manager.hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    assert database.checked == 0

    catalog = DataCatalog({"params:seed": MemoryDataset(1), "source": database})
    with pytest.raises(DatasetError, match="source: unreachable"):
        manager.hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
