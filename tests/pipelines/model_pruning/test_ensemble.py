"""Pruning a seed ensemble: every seed model pruned and fine-tuned, the result an ensemble again, served fast."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.metrics import score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.ensemble import build_ensemble, member_count, members
from deep_learning_workflow.pipelines.model_pruning.measure import describe_variant
from deep_learning_workflow.pipelines.model_pruning.nodes import prune_model
from deep_learning_workflow.pipelines.model_pruning.pruning import metadata_roles

from .conftest import MODELLING, ROLES, pruning_setup


@pytest.fixture(scope="module")
def ensemble_and_metadata(splits, training_result, trained):
    from deep_learning_workflow.models.fitting import train_model

    # Seed 7 is the shared training (the ensemble copies its head's layers); seed 8 is trained here.
    results = [
        training_result,
        train_model(
            splits["train"],
            splits["val"],
            ROLES,
            MODELLING,
            seed=8,
            fit_on=splits["train_balanced"],
        ),
    ]
    _, metadata = trained
    ensemble = build_ensemble(results[0].preprocessor, [r.head for r in results])
    return ensemble, {**metadata, "validation_selection_bias": False}


def test_pruning_an_ensemble_prunes_each_seed_model_and_keeps_the_average(
    ensemble_and_metadata, splits
):
    model, metadata = ensemble_and_metadata
    pruned, report = prune_model(model, pruning_setup(metadata, splits))
    assert member_count(pruned) == 2 and report["ensemble_members"] == 2
    assert sorted(row["layer"] for row in report["layers"]) == sorted(
        f"member{m}_{name}" for m in (1, 2) for name in ("hidden_1", "hidden_2", "probabilities")
    )
    for row in report["layers"]:
        assert row["zeros"] == round(row["weights"] * 0.5)
    assert len(report["fine_tuning"]["members"]) == 2
    assert report["validation_selection_bias"] is False
    assert report["sparsity_chosen_on_validation"] is False
    # Still the mean of its (pruned, fine-tuned) seed models, and scored as the report says.
    roles = metadata_roles(metadata)
    val = splits["val"]
    probabilities = predict_probabilities(pruned, val, roles)
    each = [predict_probabilities(member, val, roles) for member in members(pruned)]
    np.testing.assert_allclose(probabilities, np.mean(each, axis=0), atol=1e-6)
    assert score("pr_auc", val["churn"], probabilities, metadata["classes"], "Yes") == (
        pytest.approx(report["validation"]["fine_tuned"], abs=1e-6)
    )
    # The trained ensemble is left as it was: pruning works on rebuilt copies.
    kernel = np.asarray(model.get_layer("member1_hidden_1").kernel)
    assert np.count_nonzero(kernel) == kernel.size
    # The service's NumPy fast path compiles the pruned ensemble (parity checked at load time).
    variant = describe_variant(
        pruned, splits["train"], val, roles, metadata["classes"], "pr_auc", 5
    )
    assert variant["engine"] == "numpy"
