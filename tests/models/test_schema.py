"""The families' parameters are checked before any node runs, with messages that list the choices."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.hooks import ValidateParametersHook
from deep_learning_workflow.models.preprocessing import as_params, check_roles_for_modelling
from deep_learning_workflow.models.schema import ModellingParams, without_unused_sections
from deep_learning_workflow.parameters import validate_parameters


def _never_run(modelling):
    raise AssertionError("a node ran despite invalid parameters")


@pytest.mark.parametrize(
    ("modelling", "expected"),
    [
        ({"architecture": "resnet"}, r"modelling\.architecture: .*'mlp', 'plr_mlp' or 'tabm'"),
        (
            {"architecture": "mlp", "plr": {"frequencies": 8}},
            r"'plr' sets keys of the plr_mlp or tabm architecture, but architecture is 'mlp' "
            r"\(choices: \['mlp', 'plr_mlp', 'tabm'\]\)",
        ),
        (
            {"architecture": "plr_mlp", "tabm": {"members": 4}},
            r"'tabm' sets keys of the tabm architecture, but architecture is 'plr_mlp'",
        ),
        (
            {"architecture": "tabm", "plr": {"sigma": 1.0}},
            r"plr_mlp, or tabm with tabm.numeric_embedding: plr",
        ),
        ({"architecture": "tabm", "tabm": {"members": 1}}, r"modelling\.tabm\.members"),
        ({"architecture": "plr_mlp", "plr": {"dimension": 4}}, r"modelling\.plr\.dimension"),
        ({"text": {"encoder": "bert"}}, r"modelling\.text\.encoder: .*'embedding' or 'ngrams'"),
    ],
)
def test_the_hook_stops_bad_family_parameters_before_any_node(modelling, expected):
    pipeline = Pipeline([node(_never_run, "params:modelling", "out")])
    catalog = DataCatalog({"params:modelling": MemoryDataset(modelling)})
    with pytest.raises(ValueError, match=expected):
        ValidateParametersHook().before_pipeline_run({}, pipeline, catalog)


def test_family_blocks_at_their_defaults_are_accepted_for_any_family():
    # A saved model's metadata repeats every block at its defaults.
    dumped = as_params({"architecture": "plr_mlp"}).model_dump(mode="json")
    validate_parameters({"modelling": {**dumped, "architecture": "mlp"}})
    typed = as_params(
        {"architecture": "tabm", "tabm": {"numeric_embedding": "plr"}, "plr": {"lite": True}}
    )
    assert typed.uses("plr") and typed.uses("tabm")
    assert not ModellingParams().uses("plr")


def test_unused_family_blocks_are_dropped_from_a_merged_dictionary():
    merged = {"architecture": "mlp", "plr": {"frequencies": 8}, "tabm": {"members": 4}, "units": 64}
    assert without_unused_sections(merged) == {"architecture": "mlp", "units": 64}
    with_plr = {**merged, "architecture": "tabm", "tabm": {"numeric_embedding": "plr"}}
    assert set(without_unused_sections(with_plr)) == {"architecture", "plr", "tabm", "units"}


@pytest.mark.parametrize(
    ("settings", "hint"),
    [
        ({"architecture": "plr_mlp"}, "choose architecture mlp, or list"),
        (
            {"architecture": "tabm", "tabm": {"numeric_embedding": "plr"}},
            "choose architecture mlp or tabm.numeric_embedding: none, or list",
        ),
    ],
)
def test_a_family_that_embeds_numeric_columns_needs_some(settings, hint):
    frame = pd.DataFrame({"id": ["1", "2"], "label": ["a", "b"], "review": ["good", "bad"]})
    roles = ColumnRoles(key="id", target="label", positive_class="a", text=["review"])
    with pytest.raises(ValueError, match=rf"'train' has none in params:columns.numeric; {hint}"):
        check_roles_for_modelling(frame, roles, as_params(settings), "train")


def test_tuning_checks_a_family_key_with_its_family_and_draws_it_only_for_that_family():
    import optuna

    from deep_learning_workflow.parameters import parse
    from deep_learning_workflow.pipelines.tuning.schema import TuningParams
    from deep_learning_workflow.pipelines.tuning.search_space import check_search_space, suggest

    tuning = parse(
        TuningParams,
        {
            "search_space": {
                "plr.frequencies": {"type": "int", "low": 4, "high": 8},
                "architecture": {"type": "categorical", "choices": ["mlp", "plr_mlp", "tabm"]},
                "tabm.members": {"type": "int", "low": 2, "high": 4},
            }
        },
        "tuning",
    )
    check_search_space({"architecture": "mlp"}, tuning)
    bad = parse(
        TuningParams,
        {"search_space": {"tabm.members": {"type": "int", "low": 1, "high": 4}}},
        "tuning",
    )
    with pytest.raises(ValueError, match=r"search_space\.tabm\.members allows 1"):
        check_search_space({"architecture": "mlp"}, bad)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        values = suggest(trial, tuning, {"architecture": "mlp"})
        family = values["architecture"]
        seen.add(family)
        assert ("plr.frequencies" in values) == (family == "plr_mlp")
        assert ("tabm.members" in values) == (family == "tabm")
        study.tell(trial, 0.5)
    assert seen == {"mlp", "plr_mlp", "tabm"}
