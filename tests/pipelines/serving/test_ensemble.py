"""A seed ensemble (the modelling pipeline's default model) through the serving bundle and batch scoring."""

from __future__ import annotations

import numpy as np

from deep_learning_workflow.bundle import read_bundle, write_bundle
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.ensemble import member_count, members
from deep_learning_workflow.pipelines.serving.nodes import (
    export_serving_bundle,
)
from deep_learning_workflow.pipelines.serving.scoring import (
    score_batch,
    validate_scoring_batch,
)
from deep_learning_workflow.service.loader import load_version

from .conftest import release_gate


def seed_ensemble(train, roles):
    """Two heads on one preprocessing, built by the modelling code (untrained heads: the bundle does not care)."""
    from deep_learning_workflow.models.builder import build_model_parts
    from deep_learning_workflow.models.ensemble import build_ensemble
    from deep_learning_workflow.models.fitting import set_seed
    from deep_learning_workflow.models.preprocessing import fit_preprocessing
    from deep_learning_workflow.models.schema import ModellingParams

    params = ModellingParams(units=32)
    state = fit_preprocessing(train, roles, params)
    parts = []
    for seed in (1, 2):
        set_seed(seed)
        parts.append(build_model_parts(state, roles, params, 2))
    return build_ensemble(parts[0].preprocessor, [p.head for p in parts])


def test_an_ensemble_is_exported_scored_and_served_as_it_was_trained(
    tmp_path, train, roles, new_records, decision_threshold, columns, serving_params
):
    model = seed_ensemble(train, roles)
    bundle = export_serving_bundle(
        model, train, decision_threshold, release_gate(model, passed=True), columns, serving_params
    )
    write_bundle(tmp_path / "bundle", bundle.model, bundle.metadata)
    loaded = read_bundle(tmp_path / "bundle", verify=True)
    assert member_count(loaded.model) == 2

    expected = predict_probabilities(model, new_records, roles)
    heads = [predict_probabilities(head, new_records, roles) for head in members(loaded.model)]
    np.testing.assert_allclose(expected, np.mean(heads, axis=0), atol=1e-6)

    predictions = score_batch(validate_scoring_batch(new_records, loaded), loaded, serving_params)
    np.testing.assert_allclose(
        predictions[f"probability_{roles.positive_class}"].to_numpy(), expected[:, 1], atol=1e-6
    )
    version = load_version(tmp_path / "bundle", range_policy="finite", engine="numpy")
    assert version.engine == "numpy"
