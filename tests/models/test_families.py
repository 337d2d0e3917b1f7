"""The model families: each builds, trains, saves and reloads with safe_mode, takes raw records, and does its maths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.builder import build_model_parts
from deep_learning_workflow.models.fitting import set_seed, train_model
from deep_learning_workflow.models.preprocessing import as_params, fit_preprocessing
from deep_learning_workflow.models.scoring import model_probabilities, prepare

from ..pipelines.modelling.conftest import ROLES, make_table, modelling_params

FAMILIES = {
    "mlp": {},
    "plr_mlp": {"plr": {"frequencies": 4, "embedding_dim": 3}},
    "tabm": {"tabm": {"members": 4}},
    "tabm_plr": {
        "tabm": {"members": 3, "numeric_embedding": "plr"},
        "plr": {"frequencies": 4, "embedding_dim": 3},
    },
}


def family_params(name: str, **overrides) -> dict:
    settings = dict(FAMILIES[name])
    return modelling_params(
        architecture=name.removesuffix("_plr"), **settings, epochs=2, **overrides
    )


def odd_table(rows: int, seed: int) -> pd.DataFrame:
    """The churn table with column names Keras cannot take as they are, two of them alike once cleaned."""
    frame = make_table(rows, seed).rename(
        columns={"tenure": "Tenure (months)", "monthly_charges": "Monthly Income (€)"}
    )
    frame["Tenure [months]"] = frame["Tenure (months)"] * 2.0
    frame["Vertrag ünd Laufzeit"] = frame.pop("contract")
    return frame


ODD_ROLES = {
    **ROLES,
    "numeric": ["Tenure (months)", "Monthly Income (€)", "Tenure [months]"],
    "categorical": ["Vertrag ünd Laufzeit", "paperless_billing"],
}


@pytest.fixture(scope="module")
def odd_splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    return odd_table(300, seed=1), odd_table(120, seed=2)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_saves_and_reloads_with_raw_column_names(family, odd_splits, tmp_path):
    from deep_learning_workflow.datasets.keras_model_dataset import load_keras_model

    train, val = odd_splits
    result = train_model(train, val, ODD_ROLES, family_params(family), seed=3)
    assert np.isfinite(result.history["loss"]).all()
    names = [tensor.name for tensor in result.model.inputs]
    assert len(set(names)) == len(names) == 5
    assert set(result.model.input) == set(ODD_ROLES["numeric"] + ODD_ROLES["categorical"])

    path = tmp_path / "model.keras"
    result.model.save(path)
    loaded = load_keras_model(str(path))
    before = predict_probabilities(result.model, val, result.roles)
    after = predict_probabilities(loaded, val, result.roles)
    assert before.shape == (len(val), 2)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)

    # One raw record keyed by the raw column names, a missing value and an unseen category included.
    record = {
        "Tenure (months)": np.array([[np.nan]], dtype="float32"),
        "Monthly Income (€)": np.array([[42.0]], dtype="float32"),
        "Tenure [months]": np.array([[10.0]], dtype="float32"),
        "Vertrag ünd Laufzeit": np.array([["never seen"]]),
        "paperless_billing": np.array([["1"]]),
    }
    probabilities = np.asarray(loaded(record, training=False))
    assert probabilities.shape == (1, 2) and np.isfinite(probabilities).all()


def test_plr_layer_computes_the_periodic_embedding_formula():
    from deep_learning_workflow.models.layers import PeriodicEmbedding

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32")
    for lite in (False, True):
        layer = PeriodicEmbedding(3, frequencies=4, embedding_dim=2, sigma=0.5, lite=lite)
        got = np.asarray(layer(x))
        frequencies, kernel, bias = (np.asarray(w, dtype="float64") for w in layer.get_weights())
        config = layer.get_config()
        assert (config["n_features"], config["frequencies"], config["embedding_dim"]) == (3, 4, 2)
        expected = []
        for j in range(3):
            angles = 2 * math.pi * x[:, j : j + 1].astype("float64") * frequencies[j]
            periodic = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
            weight, offset = (kernel, bias) if lite else (kernel[j], bias[j])
            expected.append(np.maximum(periodic @ weight + offset, 0.0))
        np.testing.assert_allclose(got, np.concatenate(expected, axis=1), rtol=1e-5, atol=1e-6)
        assert frequencies.shape == (3, 4)
        assert kernel.shape == ((8, 2) if lite else (3, 8, 2))


def test_tabm_model_outputs_the_mean_of_its_members(odd_splits):
    train, val = odd_splits
    params = as_params(family_params("tabm"))
    roles = ColumnRoles(**ODD_ROLES)
    set_seed(1)
    parts = build_model_parts(fit_preprocessing(train, roles, params), roles, params, 2)
    assert parts.members == 4
    prepared = prepare(parts.preprocessor, val, roles)
    members = np.asarray(parts.head(prepared, training=False))
    assert members.shape == (len(val), 4, 2)
    # The members differ (their adapters start at random signs) and the model averages them.
    assert np.abs(members[:, 0] - members[:, 1]).max() > 1e-4
    np.testing.assert_allclose(
        predict_probabilities(parts.model, val, roles), members.mean(axis=1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        model_probabilities(parts.head, prepared), members.mean(axis=1), rtol=1e-6
    )


def test_tabm_loss_is_the_mean_of_the_members_losses():
    from deep_learning_workflow.models.layers import mean_member_crossentropy

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 3, 2))
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)).astype("float32")
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, size=6)]
    got = np.asarray(mean_member_crossentropy(labels, probabilities))
    expected = np.mean(
        [-np.log((probabilities[:, m] * labels).sum(axis=1)) for m in range(3)], axis=0
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_keras_names_are_plain_distinct_and_stable():
    from deep_learning_workflow.models.names import (
        keras_name,
        keras_names,
        layer_name,
        split_layer_name,
    )

    assert keras_name("tenure") == "tenure"
    odd = keras_names(["Monthly Income (€)", "Monthly Income ($)", "a b", "a-b", "ünï"])
    assert len(set(odd.values())) == 5
    assert odd["a-b"] == "a-b" and odd["Monthly Income (€)"].startswith("Monthly_Income_")
    assert odd["ünï"].startswith("uni_")
    assert split_layer_name(layer_name("impute", "Monthly Income (€)")) == (
        "impute",
        odd["Monthly Income (€)"],
    )
    assert split_layer_name("hidden_1") is None
    with pytest.raises(ValueError, match="both become the Keras name"):
        keras_names(["a b", keras_name("a b")])


def test_ngram_text_encoder_is_adapted_on_train_and_saved(tmp_path):
    import keras

    rows = 200
    rng = np.random.default_rng(0)
    good = rng.random(rows) < 0.5
    text = np.where(good, "not bad at all really good", "really not good at all")
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(rows)],
            "label": pd.Series(np.where(good, "pos", "neg"), dtype="str"),
            "review": pd.Series(text, dtype="str"),
        }
    )
    roles = {"key": "id", "target": "label", "positive_class": "pos", "text": ["review"]}
    params = modelling_params(
        text={"encoder": "ngrams", "ngrams": 2, "max_tokens": 50}, epochs=3, learning_rate=0.02
    )
    result = train_model(frame, frame, roles, params, seed=0)
    vocabulary = result.preprocessing["text"]["review"]["vocabulary"]
    assert "not bad" in vocabulary and "really good" in vocabulary
    assert len(result.preprocessing["text"]["review"]["idf_weights"]) == len(vocabulary)
    path = tmp_path / "text.keras"
    result.model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    probabilities = predict_probabilities(loaded, frame, result.roles)
    np.testing.assert_allclose(
        probabilities, predict_probabilities(result.model, frame, result.roles), rtol=1e-6
    )
    assert probabilities[good, 1].mean() > probabilities[~good, 1].mean()
