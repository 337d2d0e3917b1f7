"""params:tuning is checked before any trial: bad ranges, pruners, samplers and keys are named."""

from __future__ import annotations

import pytest

from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.tuning.schema import (
    Choice,
    FloatRange,
    IntRange,
    TuningParams,
)
from deep_learning_workflow.pipelines.tuning.search_space import check_search_space

from .helpers import tuning_params


def test_base_and_test_parameters_are_valid():
    settings = parse(TuningParams, tuning_params(), "tuning")
    assert settings.n_trials == 2 and settings.epochs == 1
    space = settings.search_space
    assert isinstance(space["learning_rate"], FloatRange) and space["learning_rate"].log
    assert isinstance(space["hidden_layers"], IntRange)
    assert isinstance(space["optimizer"], Choice) and "adam" in space["optimizer"].choices
    assert set(space) == {
        "learning_rate",
        "batch_size",
        "hidden_layers",
        "units",
        "dropout",
        "l2",
        "optimizer",
        "architecture",
        "plr.frequencies",
        "plr.sigma",
        "plr.embedding_dim",
        "tabm.members",
        "tabm.numeric_embedding",
    }
    assert set(space["architecture"].choices) == {"mlp", "plr_mlp", "tabm"}


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        ({"type": "float", "low": 0.1, "high": 0.01}, "inverted range"),
        ({"type": "float", "low": 0.01, "high": 0.01}, "empty range"),
        ({"type": "int", "low": 4, "high": 2}, "inverted range"),
        ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "log range needs low > 0"),
        ({"type": "categorical", "choices": []}, "at least 1 item"),
        ({"type": "categorical", "choices": ["adam", "adam"]}, "repeat"),
        ({"type": "uniform", "low": 0, "high": 1}, "does not match any of the expected tags"),
    ],
)
def test_bad_ranges_are_rejected_naming_the_key(dimension, message):
    space = {**tuning_params()["search_space"], "learning_rate": dimension}
    with pytest.raises(ValueError, match="tuning.search_space.learning_rate") as error:
        validate_parameters({"tuning": tuning_params(search_space=space)})
    assert message in str(error.value)


@pytest.mark.parametrize(("block", "key"), [("pruner", "pruner.name"), ("sampler", "sampler.name")])
def test_unknown_pruner_or_sampler_is_rejected_naming_the_key(block, key):
    with pytest.raises(ValueError, match=rf"tuning\.{key}.*'cmaes-ish'"):
        parse(TuningParams, tuning_params(**{block: {"name": "cmaes-ish"}}), "tuning")


def test_empty_search_space_and_unknown_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="tuning.search_space"):
        parse(TuningParams, tuning_params(search_space={}), "tuning")
    space = {"hidden_units": {"type": "int", "low": 1, "high": 3}}
    with pytest.raises(ValueError, match=r"\['hidden_units'\] are not keys of params:modelling"):
        parse(TuningParams, tuning_params(search_space=space), "tuning")
    nested = {"categorical.encoding": {"type": "categorical", "choices": ["one_hot", "embedding"]}}
    assert parse(TuningParams, tuning_params(search_space=nested), "tuning").search_space


def test_search_space_values_must_be_valid_modelling_parameters():
    space = {"units": {"type": "int", "low": 8, "high": 64}}
    settings = parse(TuningParams, tuning_params(search_space=space), "tuning")
    with pytest.raises(ValueError, match=r"params:tuning.search_space.units allows 8"):
        check_search_space({}, settings)
    fine = parse(TuningParams, tuning_params(), "tuning")
    check_search_space({"epochs": 1}, fine)
