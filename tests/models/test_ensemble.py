"""The seed ensemble: the mean of the seed models' probabilities, one shared preprocessing, saved in safe mode."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io.core import Version

from deep_learning_workflow.datasets import KerasModelDataset
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.ensemble import (
    build_ensemble,
    check_shared_preprocessing,
    is_ensemble,
    member_count,
    member_model,
    members,
)
from deep_learning_workflow.models.fitting import train_model
from tests.pipelines.modelling.conftest import ROLES, make_table, modelling_params


@pytest.fixture(scope="module")
def seed_models():
    train, val = make_table(400, seed=1), make_table(150, seed=2)
    results = [
        train_model(train, val, ROLES, modelling_params(epochs=2), seed) for seed in (42, 43, 44)
    ]
    return results, val


@pytest.fixture(scope="module")
def saved_ensemble(seed_models, tmp_path_factory):
    """The ensemble saved and loaded back through the catalog's model dataset (safe_mode on)."""
    results, _ = seed_models
    path = tmp_path_factory.mktemp("ensemble") / "model.keras"
    KerasModelDataset(filepath=str(path), version=Version(None, None)).save(
        build_ensemble(results[0].preprocessor, [r.head for r in results])
    )
    return KerasModelDataset(filepath=str(path), version=Version(None, None)).load()


def test_the_ensemble_returns_the_mean_of_the_seed_models_probabilities(
    seed_models, saved_ensemble
):
    results, val = seed_models
    roles = results[0].roles
    each = np.stack([predict_probabilities(r.model, val, roles) for r in results])
    # The seeds differ, so the mean is not any one of them.
    assert np.abs(each[0] - each[1]).max() > 1e-3
    averaged = predict_probabilities(saved_ensemble, val, roles)
    np.testing.assert_allclose(averaged, each.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-5)


def test_one_preprocessing_feeds_every_head(saved_ensemble, seed_models):
    results, _ = seed_models
    names = [layer.name for layer in saved_ensemble.layers]
    preprocessing = [layer.name for layer in results[0].preprocessor.layers]
    for name in preprocessing:
        assert names.count(name) == 1
    assert not any(name.startswith("member") for name in preprocessing)
    for index in range(1, 4):
        assert f"member{index}_hidden_1" in names and f"member{index}_probabilities" in names
    assert saved_ensemble.output_names == ["probabilities"] or saved_ensemble.layers[-1].name == (
        "probabilities"
    )
    assert member_count(saved_ensemble) == 3 and is_ensemble(saved_ensemble)


def test_members_come_back_as_the_seed_models(seed_models, saved_ensemble):
    results, val = seed_models
    roles = results[0].roles
    heads = members(saved_ensemble)
    assert len(heads) == 3
    for head, result in zip(heads, results, strict=True):
        assert [layer.name for layer in head.layers] == [
            layer.name for layer in result.model.layers
        ]
        np.testing.assert_allclose(
            predict_probabilities(head, val, roles),
            predict_probabilities(result.model, val, roles),
            atol=1e-6,
        )
    with pytest.raises(ValueError, match="no member 4"):
        member_model(saved_ensemble, 3)
    single = results[0].model
    assert member_count(single) == 1 and not is_ensemble(single) and members(single) == [single]


def test_heads_that_do_not_fit_one_preprocessing_are_refused(seed_models):
    results, _ = seed_models
    with pytest.raises(ValueError, match="at least two heads"):
        build_ensemble(results[0].preprocessor, [results[0].head])
    other = train_model(
        make_table(300, seed=3),
        make_table(100, seed=4),
        {**ROLES, "categorical": ["contract"]},
        modelling_params(epochs=1),
        7,
    )
    with pytest.raises(ValueError, match="same configuration"):
        build_ensemble(results[0].preprocessor, [results[0].head, other.head])
    with pytest.raises(ValueError, match="same training rows"):
        check_shared_preprocessing([results[0].preprocessing, other.preprocessing])
    check_shared_preprocessing([r.preprocessing for r in results])


def test_tabm_seeds_average_into_one_model_of_class_probabilities(tmp_path):
    """A TabM head outputs each member's probabilities; the ensemble averages the seed models' averages."""
    train, val = make_table(300, seed=5), make_table(120, seed=6)
    params = modelling_params(epochs=1, architecture="tabm", tabm={"members": 4})
    results = [train_model(train, val, ROLES, params, seed) for seed in (1, 2)]
    path = tmp_path / "tabm.keras"
    KerasModelDataset(filepath=str(path), version=Version(None, None)).save(
        build_ensemble(results[0].preprocessor, [r.head for r in results])
    )
    ensemble = KerasModelDataset(filepath=str(path), version=Version(None, None)).load()
    roles = results[0].roles
    each = np.stack([predict_probabilities(r.model, val, roles) for r in results])
    averaged = predict_probabilities(ensemble, val, roles)
    assert averaged.shape == (len(val), 2)
    np.testing.assert_allclose(averaged, each.mean(axis=0), atol=1e-6)
    for head, result in zip(members(ensemble), results, strict=True):
        np.testing.assert_allclose(
            predict_probabilities(head, val, roles),
            predict_probabilities(result.model, val, roles),
            atol=1e-6,
        )
