"""Preprocessing fitted on train only, the model contract, training, divergence, multi-class and text targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.metrics import score
from deep_learning_workflow.model_inputs import predict_probabilities, to_model_inputs
from deep_learning_workflow.models.builder import build_model, build_model_parts
from deep_learning_workflow.models.fitting import (
    TrainingDivergedError,
    balanced_sample_weights,
    train_model,
)
from deep_learning_workflow.models.preprocessing import fit_preprocessing
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.models.scoring import prepare

from .conftest import ROLES, make_table, modelling_params


def _roles(**changes) -> ColumnRoles:
    return ColumnRoles(**{**ROLES, **changes})


def test_numeric_statistics_are_the_training_split_s(train, val):
    params = ModellingParams(numeric={"clip_quantiles": None})
    state = fit_preprocessing(train, _roles(), params)
    charges = train["monthly_charges"]
    filled = charges.fillna(charges.median())
    assert state["numeric"]["monthly_charges"]["fill_value"] == pytest.approx(charges.median())
    assert state["numeric"]["monthly_charges"]["mean"] == pytest.approx(filled.mean())
    assert state["numeric"]["monthly_charges"]["variance"] == pytest.approx(filled.var(ddof=0))
    # Fitting on other rows gives other values: nothing above came from val.
    assert fit_preprocessing(val, _roles(), params)["numeric"]["tenure"]["mean"] != pytest.approx(
        train["tenure"].mean()
    )

    model = build_model(state, _roles(), params, n_classes=2)
    scale = model.get_layer("scale_monthly_charges")
    assert float(np.ravel(scale.mean)[0]) == pytest.approx(filled.mean(), rel=1e-5)
    assert float(np.ravel(scale.variance)[0]) == pytest.approx(filled.var(ddof=0), rel=1e-5)
    assert model.get_layer("impute_monthly_charges").fill_value == pytest.approx(charges.median())


def test_minmax_scaling_and_clipping_use_train_bounds(train):
    params = ModellingParams(
        numeric={"scaling_by_column": {"tenure": "minmax"}, "clip_quantiles": [0.1, 0.9]}
    )
    state = fit_preprocessing(train, _roles(), params)["numeric"]["tenure"]
    low, high = train["tenure"].quantile([0.1, 0.9])
    assert state["clip"] == pytest.approx([low, high])
    assert state["scaling"] == "minmax"
    assert state["mean"] == pytest.approx(low)
    assert state["variance"] == pytest.approx((high - low) ** 2)


def test_a_category_seen_only_in_validation_maps_to_the_oov_bucket(train):
    state = fit_preprocessing(train, _roles(), ModellingParams())
    assert set(state["categorical"]["contract"]["vocabulary"]) == {
        "Month-to-month",
        "One year",
        "Two year",
    }
    parts = build_model_parts(state, _roles(), ModellingParams(), n_classes=2)
    lookup = parts.model.get_layer("lookup_contract")
    assert lookup.get_vocabulary()[0] == "[UNK]"
    unseen = make_table(20, seed=3, contracts=("Three year",))
    encoded = np.asarray(lookup(to_model_inputs(unseen, _roles())["contract"][:, None]))
    assert encoded.shape == (20, 4)
    assert (encoded[:, 0] == 1).all() and (encoded[:, 1:] == 0).all()


def test_the_model_follows_the_contract(train):
    state = fit_preprocessing(train, _roles(), ModellingParams())
    model = build_model(state, _roles(), ModellingParams(hidden_layers=3, units=128), n_classes=2)
    inputs = {tensor.name: tensor for tensor in model.inputs}
    assert set(inputs) == {"tenure", "monthly_charges", "contract", "paperless_billing"}
    assert inputs["tenure"].dtype == "float32" and tuple(inputs["tenure"].shape) == (None, 1)
    assert inputs["contract"].dtype == "string" and tuple(inputs["contract"].shape) == (None, 1)
    names = {layer.name for layer in model.layers}
    assert {
        "impute_tenure",
        "clip_tenure",
        "scale_tenure",
        "lookup_contract",
        "features",
        "probabilities",
    } <= names
    # An indicator only where train has missing values (monthly_charges), by default.
    assert "missing_monthly_charges" in names and "missing_tenure" not in names
    assert [model.get_layer(f"hidden_{i}").units for i in (1, 2, 3)] == [128, 64, 32]
    assert {type(layer).__name__ for layer in model.layers}.isdisjoint({"Lambda"})
    assert model.get_layer("probabilities").units == 2
    assert model.output.shape[-1] == 2


def test_training_records_history_and_restores_the_best_epoch(train, val, columns):
    # Large steps on few rows: validation PR-AUC peaks before the last epoch, so the restored weights are not the
    # weights training ended with.
    params = modelling_params(
        units=128,
        dropout=0.0,
        learning_rate=0.05,
        epochs=12,
        early_stopping={"patience": 12, "holdout": 0.0},
    )
    trained = train_model(train.head(150), val, columns, params, seed=3)
    history = trained.history
    assert {"loss", "val_loss", "pr_auc", "val_pr_auc", "roc_auc", "val_roc_auc"} <= set(history)
    assert len(history["loss"]) == 12
    # The best validation PR-AUC among the epochs whose validation loss is within loss_tolerance (0.05) of the lowest.
    loss = history["val_loss"]
    eligible = [epoch for epoch in range(12) if loss[epoch] <= min(loss) * 1.05]
    assert trained.best_epoch == max(
        eligible, key=lambda e: (history["val_pr_auc"][e], -loss[e], -e)
    )
    assert trained.best_epoch < 11, "this setting should overfit before its last epoch"
    probabilities = predict_probabilities(trained.model, val, trained.roles)
    returned = score("pr_auc", val["churn"].astype(str), probabilities, trained.classes, "Yes")
    assert returned == pytest.approx(history["val_pr_auc"][trained.best_epoch], abs=1e-6)
    assert returned != pytest.approx(history["val_pr_auc"][-1], abs=1e-6)
    assert probabilities.shape == (len(val), 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert trained.classes == ["No", "Yes"]


def test_a_nan_value_and_an_unseen_category_still_get_probabilities(trained):
    records = make_table(4, seed=5, contracts=("Never seen",))
    records.loc[0, "tenure"] = np.nan
    records.loc[1, "paperless_billing"] = np.nan
    probabilities = predict_probabilities(trained.model, records, trained.roles)
    assert np.isfinite(probabilities).all()


def test_a_diverging_run_stops_with_a_clear_error(train, val, columns):
    params = modelling_params(
        optimizer="sgd", learning_rate=1e12, epochs=5, early_stopping={"enabled": False}
    )
    with pytest.raises(TrainingDivergedError, match="diverged.*learning_rate"):
        train_model(train, val, columns, params, seed=1)


@pytest.mark.slow
def test_callbacks_see_the_validation_metric_and_balanced_weights_train(train, val, columns):
    import keras

    seen: list[dict] = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs or {}))

    params = modelling_params(class_weight="balanced", epochs=2)
    result = train_model(
        train, val, columns, params, seed=3, callbacks=[Record()], primary_metric="roc_auc"
    )
    assert len(seen) == len(result.history["loss"]) == 2
    assert all("val_roc_auc" in logs for logs in seen)


def test_balanced_weights_give_each_class_the_same_total():
    labels = np.array([[1, 0]] * 6 + [[0, 1]] * 2, dtype="float32")
    weights = balanced_sample_weights(labels)
    assert weights[:6].sum() == pytest.approx(weights[6:].sum())
    assert weights.sum() == pytest.approx(len(labels))


def test_a_multi_class_target_gets_one_softmax_column_per_class(train, val):
    def three_classes(frame: pd.DataFrame) -> pd.DataFrame:
        plan = np.where(
            frame["tenure"] < 24, "short", np.where(frame["tenure"] < 48, "mid", "long")
        )
        return frame.assign(plan=pd.Series(plan, dtype="str", index=frame.index))

    roles = {
        **ROLES,
        "target": "plan",
        "positive_class": None,
        "numeric": ["monthly_charges", "tenure"],
    }
    result = train_model(
        three_classes(train), three_classes(val), roles, modelling_params(epochs=2), seed=2
    )
    assert result.classes == ["long", "mid", "short"]
    probabilities = predict_probabilities(result.model, val, result.roles)
    assert probabilities.shape == (len(val), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert "val_pr_auc" in result.history


def _reviews(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    good = [
        "great taste, loved it!",
        "Excellent product. Would buy again",
        "GREAT value and great flavour",
    ]
    bad = ["awful; stale and bland", "not good at all, save your money", "Terrible taste"]
    score = rng.choice(["great", "other"], size=rows)
    review = [rng.choice(good) if s == "great" else rng.choice(bad) for s in score]
    review[0] = None
    return pd.DataFrame(
        {
            "review_id": [f"R{i}" for i in range(rows)],
            "review": pd.Series(review, dtype="str"),
            "score": pd.Series(score, dtype="str"),
        }
    )


def test_a_text_column_is_vectorised_embedded_and_pooled():
    roles = {
        "key": "review_id",
        "target": "score",
        "positive_class": "great",
        "numeric": [],
        "categorical": [],
        "text": ["review"],
    }
    params = modelling_params(epochs=3, text={"output_sequence_length": 6, "embedding_dim": 4})
    train, val = _reviews(300, seed=1), _reviews(100, seed=2)
    result = train_model(train, val, roles, params, seed=1)
    model = result.model
    assert {"vectorize_review", "embed_review", "pool_review"} <= {
        layer.name for layer in model.layers
    }
    vocabulary = model.get_layer("vectorize_review").get_vocabulary()
    assert "great" in vocabulary and "great," not in vocabulary and "GREAT" not in vocabulary
    parts = build_model_parts(
        result.preprocessing, result.roles, ModellingParams(**params), n_classes=2
    )
    tokens = prepare(parts.preprocessor, pd.DataFrame({"review": ["great zyzzyva"]}), result.roles)[
        "review"
    ]
    assert tokens.shape == (1, 6)
    assert tokens[0, 1] == 1  # a word never seen in train: the out-of-vocabulary id
    probabilities = predict_probabilities(model, val, result.roles)
    great = val["score"].eq("great").to_numpy()
    assert probabilities[great, 0].mean() > probabilities[~great, 0].mean()


@pytest.mark.slow
def test_categorical_embeddings_are_an_alternative_to_one_hot(train, val, columns):
    params = modelling_params(epochs=2, categorical={"encoding": "embedding", "embedding_dim": 3})
    result = train_model(train, val, columns, params, seed=4)
    names = {layer.name for layer in result.model.layers}
    assert {"lookup_contract", "embed_contract", "pool_contract", "encoded", "features"} <= names
    assert predict_probabilities(result.model, val, result.roles).shape == (len(val), 2)


@pytest.mark.slow
def test_same_seed_same_data_reproduces_the_model_and_mirrored_training_works(train, val, columns):
    first = train_model(train, val, columns, modelling_params(), seed=11)
    second = train_model(train, val, columns, modelling_params(distribution="mirrored"), seed=11)
    a = predict_probabilities(first.model, val, first.roles)
    b = predict_probabilities(second.model, val, second.roles)
    # The documented CPU tolerance (modelling README): same seed and data give probabilities equal to 1e-5.
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert first.history["loss"] == pytest.approx(second.history["loss"], abs=1e-5)
