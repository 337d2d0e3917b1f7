"""Transfer learning works for plr_mlp and tabm: a warm start copies every layer and frozen layers stay fixed."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.fitting import train_model
from deep_learning_workflow.models.transfer import TransferSources

from ..pipelines.modelling.conftest import ROLES, make_table, modelling_params

FAMILIES = {
    "plr_mlp": (
        {"architecture": "plr_mlp", "plr": {"frequencies": 4, "embedding_dim": 4}},
        "plr_numeric",
    ),
    "tabm": ({"architecture": "tabm", "tabm": {"members": 4}}, "hidden_1"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_warm_start_copies_a_family_and_frozen_layers_stay_fixed(family):
    settings, frozen = FAMILIES[family]
    train, val = make_table(300, seed=1), make_table(120, seed=2)
    source = train_model(train, val, ROLES, modelling_params(**settings, epochs=2), seed=1)

    # Warm start, nothing trained: the new model is the source model.
    copied = train_model(
        train,
        val,
        ROLES,
        modelling_params(
            **settings, epochs=1, learning_rate=1e-9, transfer={"warm_start": {"enabled": True}}
        ),
        seed=9,
        transfer_sources=TransferSources(model=source.model),
    )
    roles = ColumnRoles(**ROLES)
    np.testing.assert_allclose(
        predict_probabilities(copied.model, val, roles),
        predict_probabilities(source.model, val, roles),
        atol=1e-4,
    )

    tuned = train_model(
        train,
        val,
        ROLES,
        modelling_params(
            **settings,
            epochs=2,
            transfer={"warm_start": {"enabled": True}, "freeze": [frozen]},
        ),
        seed=9,
        transfer_sources=TransferSources(model=source.model),
    )
    for before, after in zip(
        source.model.get_layer(frozen).get_weights(),
        tuned.model.get_layer(frozen).get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(before, after)
    assert not np.allclose(
        source.model.get_layer("hidden_2").get_weights()[0],
        tuned.model.get_layer("hidden_2").get_weights()[0],
    )
