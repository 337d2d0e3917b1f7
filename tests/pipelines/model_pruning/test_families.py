"""Pruning works on every family: the dense kernels of plr_mlp and tabm reach the sparsity and stay pruned."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.model_pruning.pruning import (
    fine_tune,
    prune,
    pruned_count,
    rebuild_model,
)
from deep_learning_workflow.pipelines.model_pruning.schema import PruningParams

from .conftest import MODELLING, PRUNING, ROLES

FAMILIES = {
    "plr_mlp": (
        {"architecture": "plr_mlp", "plr": {"frequencies": 4, "embedding_dim": 4}},
        ["hidden_1", "hidden_2", "probabilities"],
    ),
    "tabm": (
        {"architecture": "tabm", "tabm": {"members": 4}},
        ["hidden_1", "hidden_2", "member_probabilities"],
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_is_pruned_fine_tuned_and_saved(family, splits, tmp_path):
    import keras

    from deep_learning_workflow.columns import ColumnRoles
    from deep_learning_workflow.datasets import KerasModelDataset
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params

    settings, pruned_layers = FAMILIES[family]
    modelling = {**MODELLING, **settings}
    result = train_model(splits["train"], splits["val"], ROLES, modelling, seed=7)
    metadata = {
        "classes": result.classes,
        "positive_class": "Yes",
        "target": "churn",
        "key": "customer_id",
        "roles": {"numeric": ROLES["numeric"], "categorical": ROLES["categorical"], "text": []},
        "params": as_params(modelling).model_dump(mode="json"),
    }
    rebuilt = rebuild_model(result.model, metadata, splits["train"])
    masks = prune(rebuilt.parts, 0.6)
    assert [layer.name for layer in masks.layers] == pruned_layers

    def kernels():
        return {
            layer.name: np.asarray(keras.ops.convert_to_numpy(layer.kernel))
            for layer in masks.layers
        }

    pruned = kernels()
    fine_tune(
        rebuilt,
        masks,
        splits["train_balanced"],
        splits["val"],
        parse(PruningParams, PRUNING, "pruning"),
        "pr_auc",
        42,
    )
    for name, kernel in kernels().items():
        assert np.array_equal(kernel == 0, pruned[name] == 0), name
        assert (kernel == 0).sum() == pruned_count(kernel.size, 0.6), name
    # The periodic embeddings are embeddings: left whole.
    if family == "plr_mlp":
        plr = np.asarray(rebuilt.parts.model.get_layer("plr_numeric").get_weights()[1])
        assert np.count_nonzero(plr) == plr.size

    dataset = KerasModelDataset(filepath=str(tmp_path / "pruned.keras"))
    dataset.save(rebuilt.parts.model)
    loaded = dataset.load()
    roles = ColumnRoles(**ROLES)
    np.testing.assert_allclose(
        predict_probabilities(loaded, splits["val"], roles),
        predict_probabilities(rebuilt.parts.model, splits["val"], roles),
        atol=1e-6,
    )
