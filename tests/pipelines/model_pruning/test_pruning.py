"""Magnitude pruning: exact per-layer sparsity, pruned weights held at zero by the fine-tuning, a loadable model."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.model_pruning.pruning import (
    fine_tune,
    magnitude_mask,
    prune,
    pruned_count,
    rebuild_model,
)
from deep_learning_workflow.pipelines.model_pruning.schema import PruningParams

from .conftest import PRUNING, ROLES


def _kernels(model) -> dict[str, np.ndarray]:
    import keras

    return {
        layer.name: np.asarray(keras.ops.convert_to_numpy(layer.kernel))
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    }


def test_magnitude_mask_zeroes_exactly_the_smallest_weights():
    kernel = np.array([[0.5, -0.1, 0.0], [2.0, -3.0, 0.2]], dtype="float32")
    keep = magnitude_mask(kernel, 0.5)
    assert keep.sum() == 3
    np.testing.assert_array_equal(keep, [[True, False, False], [True, True, False]])
    # Ties are broken by position, so the count is exact even when every weight is equal.
    assert (~magnitude_mask(np.ones((7, 3)), 0.4)).sum() == pruned_count(21, 0.4) == 8
    assert magnitude_mask(kernel, 0.0).all()


def test_pruned_kernels_reach_the_sparsity_exactly_and_stay_zero_through_fine_tuning(
    trained, splits
):
    model, metadata = trained
    rebuilt = rebuild_model(model, metadata, splits["train"])
    sparsity = 0.6
    masks = prune(rebuilt.parts, sparsity)
    assert [layer.name for layer in masks.layers] == ["hidden_1", "hidden_2", "probabilities"]

    pruned = _kernels(rebuilt.parts.model)
    for name, kernel in pruned.items():
        assert kernel.size - np.count_nonzero(kernel) == pruned_count(kernel.size, sparsity), name
    # The trained model itself is left untouched.
    assert all(np.count_nonzero(k) == k.size for k in _kernels(model).values())

    settings = parse(PruningParams, PRUNING, "pruning")
    tuning = fine_tune(
        rebuilt, masks, splits["train_balanced"], splits["val"], settings, "pr_auc", 42
    )
    assert tuning["epochs_run"] >= 1 and "val_pr_auc" in tuning["history"]

    tuned = _kernels(rebuilt.parts.model)
    for name, kernel in tuned.items():
        zeros = kernel == 0
        assert np.array_equal(zeros, pruned[name] == 0), f"{name}: a pruned weight came back"
        assert zeros.sum() == pruned_count(kernel.size, sparsity)
    # The kept weights were trained.
    assert any(not np.allclose(tuned[n], pruned[n]) for n in tuned)


def test_embeddings_are_not_pruned(trained, splits):
    import keras

    from deep_learning_workflow.models.builder import build_model_parts
    from deep_learning_workflow.models.preprocessing import as_params, fit_preprocessing

    _, metadata = trained
    params = as_params({**metadata["params"], "categorical": {"encoding": "embedding"}})
    rebuilt = rebuild_model(*trained, splits["train"])
    parts = build_model_parts(
        fit_preprocessing(splits["train"], rebuilt.roles, params), rebuilt.roles, params, 2
    )
    masks = prune(parts, 0.9)
    assert [layer.name for layer in masks.layers] == ["hidden_1", "hidden_2", "probabilities"]
    embeddings = [layer for layer in parts.head.layers if isinstance(layer, keras.layers.Embedding)]
    assert embeddings
    for layer in embeddings:
        assert np.count_nonzero(keras.ops.convert_to_numpy(layer.embeddings)) == int(
            np.prod(layer.embeddings.shape)
        )


def test_rebuilding_refuses_a_model_that_does_not_match_its_metadata(trained, splits):
    model, metadata = trained
    wider = {**metadata, "params": {**metadata["params"], "units": 64}}
    with pytest.raises(ValueError, match="does not match its metadata"):
        rebuild_model(model, wider, splits["train"])
    shifted = splits["train"].assign(tenure=splits["train"]["tenure"] * 3)
    with pytest.raises(ValueError, match="does not reproduce"):
        rebuild_model(model, metadata, shifted)


def test_the_saved_pruned_model_loads_with_safe_mode_and_predicts(trained, splits, tmp_path):
    from deep_learning_workflow.columns import ColumnRoles
    from deep_learning_workflow.datasets import KerasModelDataset
    from deep_learning_workflow.model_inputs import predict_probabilities

    model, metadata = trained
    rebuilt = rebuild_model(model, metadata, splits["train"])
    prune(rebuilt.parts, 0.75)
    dataset = KerasModelDataset(filepath=str(tmp_path / "pruned.keras"))
    dataset.save(rebuilt.parts.model)
    loaded = dataset.load()  # safe_mode=True is the dataset's default

    for name, kernel in _kernels(loaded).items():
        assert kernel.size - np.count_nonzero(kernel) == pruned_count(kernel.size, 0.75), name
    roles = ColumnRoles(**ROLES)
    probabilities = predict_probabilities(loaded, splits["val"], roles)
    assert probabilities.shape == (len(splits["val"]), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        probabilities, predict_probabilities(rebuilt.parts.model, splits["val"], roles), atol=1e-6
    )
